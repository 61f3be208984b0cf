"""One GPU per job (maple.runtime.devices, called from maple.runtime.jobs.logged_to): claims, their release on SIGKILL, the threads
of a GPU job, and the checks before any job starts. MAPLE_FAKE_GPU_COUNT stands in for the GPUs of a machine.

The slow test runs a toy DAG whose jobs go through the same entry code as finetune and evaluate_* (logged_to with
the job's resources.gpu) with MAPLE_FAKE_GPU_COUNT=2 and --resources gpu=2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import REPO, SNAKEMAKE, load_default_config, run_snakemake, small_config, write_config
from maple.runtime import devices
from maple.runtime.devices import DeviceError, check_gpu_request, claimed_devices, threads_per_gpu_job, visible_devices

SCRIPTS = REPO / "workflow" / "scripts"


@pytest.fixture
def env(tmp_path):
    """A private environment: two fake GPUs, a lock dir of this test's own, no CUDA_VISIBLE_DEVICES."""
    return {devices.FAKE_COUNT_VARIABLE: "2", devices.LOCK_DIR_VARIABLE: str(tmp_path / "locks")}


def test_two_claims_get_different_devices_and_a_third_waits_then_fails(env):
    base = dict(env)
    with claimed_devices(1, env) as first:
        assert first.how == "claimed" and env["CUDA_VISIBLE_DEVICES"] == first.devices[0]
        with claimed_devices(1, dict(base)) as second:
            assert second.how == "claimed" and second.devices != first.devices
            assert {first.devices[0], second.devices[0]} == {"0", "1"}
            started = time.monotonic()
            with pytest.raises(DeviceError, match="no 1 free GPU"), claimed_devices(1, dict(base), wait_seconds=0.5):
                pass
            assert time.monotonic() - started >= 0.5
        # the second's device is free again once its job ends
        with claimed_devices(1, dict(base)) as third:
            assert third.devices == second.devices
    assert env == base  # the environment is restored


def test_a_claim_is_released_when_the_job_fails(env):
    with pytest.raises(RuntimeError, match="job failed"), claimed_devices(2, env):
        raise RuntimeError("job failed")
    with claimed_devices(2, env) as both:
        assert both.devices == ("0", "1")


def test_a_device_held_by_a_job_killed_with_sigkill_is_free_at_once(env):
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; sys.path.insert(0, sys.argv[1]); from maple.runtime.devices import claimed_devices\n"
            "with claimed_devices(1) as p:\n    print(p.devices[0], flush=True); time.sleep(600)",
            str(SCRIPTS),
        ],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        held = child.stdout.readline().strip()
        assert held == "0"
        with claimed_devices(1, dict(env)) as other:
            assert other.devices == ("1",)
            with pytest.raises(DeviceError):
                with claimed_devices(1, dict(env), wait_seconds=0.2):
                    pass
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            with claimed_devices(1, dict(env), wait_seconds=0) as after:
                assert after.devices == (held,)
    finally:
        child.kill()
        child.wait()


def test_cuda_visible_devices_set_before_the_job_is_kept(env):
    # as under SLURM: the scheduler gave the job its GPU; nothing is claimed, nothing changed
    for preset in ("1", "GPU-8a7b6c5d-0000-1111-2222-333344445555"):
        job_env = {**env, "CUDA_VISIBLE_DEVICES": preset}
        with claimed_devices(1, job_env) as placement:
            assert placement.how == "kept" and placement.devices == (preset,)
            assert job_env["CUDA_VISIBLE_DEVICES"] == preset
        assert not (Path(env[devices.LOCK_DIR_VARIABLE]) / "fake-gpu1.lock").exists()
    # a user who gives a local run some GPUs: they are the pool the jobs claim from
    job_env = {**env, devices.FAKE_COUNT_VARIABLE: "8", "CUDA_VISIBLE_DEVICES": "5,7"}
    with claimed_devices(1, dict(job_env)) as a, claimed_devices(1, dict(job_env)) as b:
        assert {a.devices, b.devices} == {("5",), ("7",)}
    with pytest.raises(DeviceError, match="needs 2 GPU"):
        with claimed_devices(2, {**env, "CUDA_VISIBLE_DEVICES": "3"}):
            pass


def test_no_gpu_runs_on_the_cpu_and_a_job_without_gpu_sees_none(env):
    with claimed_devices(1, {**env, devices.FAKE_COUNT_VARIABLE: "0"}) as placement:
        assert placement.how == "cpu" and placement.devices == ()
    with claimed_devices(1, {**env, "CUDA_VISIBLE_DEVICES": "-1"}) as placement:
        assert placement.how == "cpu"
    job_env = dict(env)
    with claimed_devices(0, job_env) as placement:
        assert placement.how == "none" and job_env["CUDA_VISIBLE_DEVICES"] == ""


def test_lock_dir_is_per_slurm_allocation(env):
    assert devices.lock_dir(env) == Path(env[devices.LOCK_DIR_VARIABLE])
    assert devices.lock_dir({**env, "SLURM_JOB_ID": "123"}) == Path(env[devices.LOCK_DIR_VARIABLE]) / "slurm-123"


def test_visible_devices_parsing():
    assert visible_devices({}) is None
    assert visible_devices({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "0, 2"}) == ["0", "2"]
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "1,-1,2"}) == ["1"]


def test_gpu_request_checked_against_the_machine(env):
    assert check_gpu_request(2, 1, env) is None
    assert check_gpu_request(None, 1, env) is None
    with pytest.raises(DeviceError, match=r"gpu=3 asks for more GPUs than this machine has \(2: 0,1\)"):
        check_gpu_request(3, 1, env)
    with pytest.raises(DeviceError, match="more GPUs than CUDA_VISIBLE_DEVICES has"):
        check_gpu_request(2, 1, {**env, "CUDA_VISIBLE_DEVICES": "1"})
    with pytest.raises(DeviceError, match="a GPU job asks for 4 GPUs"):
        check_gpu_request(1, 4, env)
    # no GPU at all (the demo on a laptop): the GPU jobs run on the CPU, with a warning for gpu > 1
    assert check_gpu_request(1, 1, {**env, devices.FAKE_COUNT_VARIABLE: "0"}) is None
    assert "no GPU found" in check_gpu_request(2, 1, {**env, devices.FAKE_COUNT_VARIABLE: "0"})
    with pytest.raises(DeviceError, match="MAPLE_FAKE_GPU_COUNT"):
        check_gpu_request(1, 1, {devices.FAKE_COUNT_VARIABLE: "two"})


def test_threads_per_gpu_job():
    assert threads_per_gpu_job("auto", cores=16, gpu_slots=4, local=True, all_cores=4096) == 4
    assert threads_per_gpu_job("auto", cores=2, gpu_slots=2, local=True, all_cores=4096) == 1
    assert threads_per_gpu_job("auto", cores=3, gpu_slots=8, local=True, all_cores=4096) == 1
    assert threads_per_gpu_job("auto", cores=16, gpu_slots=None, local=True, all_cores=4096) == 16
    assert threads_per_gpu_job("auto", cores=8, gpu_slots=1, local=False, all_cores=4096) == 4096  # SLURM: --cores
    assert threads_per_gpu_job("auto", cores=None, gpu_slots=2, local=True, all_cores=4096) == 4096  # --report
    assert threads_per_gpu_job(6, cores=16, gpu_slots=4, local=True, all_cores=4096) == 6


def test_the_log_names_the_claimed_device(env, tmp_path):
    log = tmp_path / "job.log"
    code = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); from maple.runtime.jobs import logged_to\n"
        "with logged_to(sys.argv[2], gpus=1):\n    print('inside', os.environ['CUDA_VISIBLE_DEVICES'])\n"
        "print('after', os.environ.get('CUDA_VISIBLE_DEVICES', 'unset'))"
    )
    job_env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(SCRIPTS), str(log)],
        env={**job_env, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    first, second = log.read_text().splitlines()[:2]
    assert (
        first.startswith("[maple] host=") and "CUDA_VISIBLE_DEVICES=0 " in first and first.endswith("gpus=0(claimed)")
    )
    assert second == "inside 0"
    assert done.stdout.strip() == "after unset"


@pytest.mark.slow
def test_workflow_shares_cores_and_refuses_more_gpus_than_the_machine_has(tmp_path, monkeypatch):
    """The real workflow, dry run: with 2 GPUs and --cores 4 --resources gpu=2 a GPU job gets 2 threads (not 4, which
    would run one at a time); gpu_job_threads in the config sets it; gpu=3 stops the run before any job starts,
    except with the SLURM profile."""
    monkeypatch.setenv(devices.FAKE_COUNT_VARIABLE, "2")
    config = write_config(tmp_path / "wf", load_default_config())
    workdir = config.parent
    out = run_snakemake(workdir, "-n", "--cores", "4", "--resources", "gpu=2", config=config)
    text = out.stdout + out.stderr
    blocks = [b for b in text.split("\nrule ") if b.startswith(("finetune:", "evaluate_"))]
    assert blocks and all("threads: 2" in b for b in blocks), text[-3000:]
    # the tiny model's build pretrains a model: a GPU job like a finetune, claiming its device (resources gpu)
    tiny = [b for b in text.split("\nrule ") if b.startswith("build_tiny_model:")]
    assert tiny and "gpu=1" in tiny[0] and "threads: 2" in tiny[0], tiny
    out = run_snakemake(
        workdir, "-n", "--cores", "4", "--resources", "gpu=2", "--config", "gpu_job_threads=3", config=config
    )
    blocks = [b for b in (out.stdout + out.stderr).split("\nrule ") if b.startswith("finetune:")]
    assert blocks and all("threads: 3" in b for b in blocks)
    refused = run_snakemake(workdir, "-n", "--cores", "4", "--resources", "gpu=3", config=config, check=False)
    assert refused.returncode != 0
    assert "gpu=3 asks for more GPUs than this machine has (2: 0,1)" in refused.stdout + refused.stderr
    assert not (workdir / "logs").exists() and not (workdir / "results").exists()
    # with the SLURM profile (gpu a per-job resource) the GPUs of the submitting machine do not count, in a dry run
    # too, and a GPU job gets every core of its SLURM job (the profile's --cores 8)
    slurm = run_snakemake(
        workdir, "-n", "--profile", str(REPO / "profiles" / "slurm"), "--resources", "gpu=4", config=config
    )
    blocks = [b for b in (slurm.stdout + slurm.stderr).split("\nrule ") if b.startswith("finetune:")]
    assert blocks and all("threads: 8" in b for b in blocks)


TOY_JOB = textwrap.dedent(
    """
    import json, os, signal, sys, time
    sys.path.insert(0, sys.argv[5])
    from maple.runtime.jobs import logged_to

    name, log, gpus, out = sys.argv[1:5]
    with logged_to(log, gpus=int(gpus)):
        record = {"name": name, "pid": os.getpid(), "device": os.environ["CUDA_VISIBLE_DEVICES"], "start": time.time()}
        if name == "killed":
            time.sleep(1)
            record["killed_at"] = time.time()
            with open("killed.json", "w") as f:
                json.dump(record, f)
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(3)
        record["end"] = time.time()
    with open(out, "w") as f:
        json.dump(record, f)
    """
)

TOY_SNAKEFILE = textwrap.dedent(
    r"""
    rule all:
        input:
            expand("done/{i}.json", i=range(4)),
            "done/killed.json",


    # starts first (priority), so that the jobs after it need the device it held when it was killed
    rule killed_job:
        output:
            "done/killed.json",
        log:
            "logs/killed.log",
        priority: 100
        threads: 1
        resources:
            gpu=1,
        shell:
            "python job.py killed {log} {resources.gpu} {output} SCRIPTS_DIR"


    rule gpu_job:
        output:
            "done/{i}.json",
        wildcard_constraints:
            i=r"\d+",
        log:
            "logs/{i}.log",
        threads: 1
        resources:
            gpu=1,
        shell:
            "python job.py {wildcards.i} {log} {resources.gpu} {output} SCRIPTS_DIR"
    """
)


@pytest.mark.slow
def test_gpu_jobs_of_a_run_share_two_gpus_one_each(tmp_path):
    """MAPLE_FAKE_GPU_COUNT=2, --resources gpu=2, 4 jobs plus one that is SIGKILLed while holding its GPU."""
    workdir = tmp_path / "toy"
    workdir.mkdir()
    (workdir / "job.py").write_text(TOY_JOB)
    (workdir / "Snakefile").write_text(TOY_SNAKEFILE.replace("SCRIPTS_DIR", str(SCRIPTS)))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        devices.FAKE_COUNT_VARIABLE: "2",
        devices.LOCK_DIR_VARIABLE: str(tmp_path / "locks"),
        devices.WAIT_VARIABLE: "30",  # a stale claim would fail a job after 30 s instead of hanging the test
    }
    env.pop("CUDA_VISIBLE_DEVICES", None)
    started = time.time()
    result = subprocess.run(
        [SNAKEMAKE, "--cores", "4", "--resources", "gpu=2", "--keep-going", "--directory", str(workdir)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = result.stdout + result.stderr
    print(f"toy DAG: {time.time() - started:.1f} s")
    assert result.returncode != 0 and "Error in rule killed_job" in log, log[-4000:]
    killed = json.loads((workdir / "killed.json").read_text())
    jobs = [json.loads((workdir / "done" / f"{i}.json").read_text()) for i in range(4)]
    assert len({job["pid"] for job in jobs}) == 4, log[-4000:]

    # at most two at once, two at once at some point, and the ones running together on different devices
    intervals = [(j["start"], j["end"], j["device"]) for j in jobs] + [
        (killed["start"], killed["killed_at"], killed["device"])
    ]
    most = 0
    for start, _, _ in intervals:
        running = [iv for iv in intervals if iv[0] <= start < iv[1]]
        most = max(most, len(running))
        assert len({device for _, _, device in running}) == len(running), running
    assert most == 2, intervals
    # every device named in the logs' placement lines
    placements = [
        line
        for path in sorted((workdir / "logs").glob("*.log"))
        for line in path.read_text().splitlines()
        if line.startswith("[maple] host=")
    ]
    assert len(placements) == 5, placements
    named = {item.split("=", 1)[1] for line in placements for item in line.split() if item.startswith("CUDA_VISIBLE")}
    assert named == {"0", "1"}, placements
    # the killed job's device was claimed again after the kill, while the other device was busy
    after = [j for j in jobs if j["start"] > killed["killed_at"] and j["device"] == killed["device"]]
    assert after, (killed, jobs)


@pytest.mark.slow
def test_demo_gpu_jobs_claim_devices_and_scores_name_them(tmp_path, monkeypatch):
    """The real rules (the small demo) on two fake GPUs: every finetune and evaluation log names its claimed device,
    both devices are used, and each score file's provenance names the device its evaluation had."""
    monkeypatch.setenv(devices.FAKE_COUNT_VARIABLE, "2")
    monkeypatch.setenv(devices.LOCK_DIR_VARIABLE, str(tmp_path / "locks"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    config = write_config(tmp_path / "demo", small_config())
    workdir = config.parent
    started = time.time()
    run_snakemake(workdir, "--cores", "2", "--resources", "gpu=2", config=config)
    print(f"small demo on 2 fake GPUs: {time.time() - started:.1f} s")
    seen = set()
    gpu_logs = sorted((workdir / "logs" / "finetune").rglob("*.log")) + sorted(
        (workdir / "logs" / "evaluate").rglob("*.log")
    )
    assert gpu_logs
    for path in gpu_logs:
        line = next(text for text in path.read_text().splitlines() if text.startswith("[maple] host="))
        where = dict(item.split("=", 1) for item in line.split()[1:])
        assert where["CUDA_VISIBLE_DEVICES"] in ("0", "1") and where["gpus"].endswith("(claimed)"), (path, line)
        seen.add(where["CUDA_VISIBLE_DEVICES"])
    assert seen == {"0", "1"}
    scores = list((workdir / "results" / "scores").rglob("*.json"))
    assert scores
    for path in scores:
        assert json.loads(path.read_text())["provenance"]["cuda_visible_devices"] in ("0", "1"), path
