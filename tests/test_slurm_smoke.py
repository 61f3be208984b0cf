"""profiles/slurm through a real one-node SLURM cluster on this machine (tests/slurm/cluster.sh).

1. A tiny workflow: a GPU rule (`resources: gpu=1`, `threads: workflow.cores` like the real finetune/evaluate
   rules) feeding a CPU rule, an independent CPU rule, and a rule that fails. One run with --keep-going must send
   every job through sbatch, give the GPU job a GPU from SLURM (CUDA_VISIBLE_DEVICES), report the failed rule and
   still finish the independent branches; after the fix, a rerun submits only the job that failed.
2. The demo DAG (the reduced config of conftest.small_config) through the profile: every job a SLURM job, the GPU
   rules with a GPU, and the same scores as the local run of the same config.
3. `gpu` a per-job resource in the profile: with `--resources gpu=1` two GPU jobs of one run run at the same time,
   each with --gpus=1 and its own GPU of the node's two; with `--set-resource-scopes gpu=global` one after the other.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from conftest import planned_jobs
from slurm_cluster import REPO, local_slurm

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PROFILE = REPO / "profiles" / "slurm"

SNAKEFILE = textwrap.dedent(
    r"""
    rule all:
        input:
            "cpu.txt",
            "independent.txt",
            "failed.txt",


    rule gpu_job:
        output:
            "gpu.txt",
        threads: workflow.cores
        resources:
            gpu=1,
        shell:
            'echo "CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-unset}} SLURM_JOB_ID=${{SLURM_JOB_ID:-unset}}'
            ' SLURM_CPUS_PER_TASK=${{SLURM_CPUS_PER_TASK:-unset}} threads={threads}" > {output}'


    rule cpu_job:
        input:
            "gpu.txt",
        output:
            "cpu.txt",
        shell:
            'echo "CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-unset}} SLURM_JOB_ID=${{SLURM_JOB_ID:-unset}}" > {output}'


    rule independent_job:
        output:
            "independent.txt",
        shell:
            'echo "SLURM_JOB_ID=${{SLURM_JOB_ID:-unset}}" > {output}'


    rule failing_job:
        output:
            "failed.txt",
        shell:
            'echo "failing on purpose in SLURM job ${{SLURM_JOB_ID:-unset}}" >&2; exit 7'
    """
)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    with local_slurm(tmp_path_factory) as cluster:
        yield cluster


def read_vars(path: Path) -> dict[str, str]:
    return dict(item.split("=", 1) for item in path.read_text().split())


SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/")


def profile_command(workdir: Path, snakefile: Path, mem_mb: int = 500) -> list[str]:
    """snakemake --profile profiles/slurm, sized for the test node and polling often (the jobs take seconds)."""
    return [
        SNAKEMAKE,
        "--profile",
        str(PROFILE),
        "--directory",
        str(workdir),
        "--snakefile",
        str(snakefile),
        # the test node has 2 CPUs and ~all memory of this machine: small requests, the `debug` partition
        "--cores",
        "2",
        "--default-resources",
        "slurm_partition=debug",
        "runtime=30",
        f"mem_mb={mem_mb}",
        "cpus_per_task=threads",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "1",
        "--latency-wait",
        "5",
    ]


def submitted_jobs(log: str) -> list[tuple[str, str]]:
    """(rule, SLURM job id) of every submission in a snakemake output."""
    return [(rule, job_id) for job_id, rule in SUBMITTED.findall(log)]


def job_env(env: dict) -> dict:
    # Whatever the submitting shell has must not leak into the jobs (sbatch --export=ALL): SLURM has to set it.
    env = dict(env)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop("SLURM_JOB_ID", None)
    return env


def test_profile_runs_jobs_through_sbatch(slurm, tmp_path):
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(SNAKEFILE)
    env = job_env(slurm.env)
    cmd = profile_command(workdir, workdir / "Snakefile") + ["--keep-going"]
    started = time.time()
    result = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.time() - started
    log = result.stdout + result.stderr
    print(f"snakemake --profile profiles/slurm: {elapsed:.1f}s, exit {result.returncode}")
    context = f"\n--- snakemake output ---\n{log[-8000:]}\n{slurm.logs()}"

    # the failing rule fails the run, but --keep-going finished the other branches
    assert result.returncode != 0, "a failed job must make snakemake exit non-zero" + context
    assert re.search(r"Error in rule failing_job", log), context
    assert not (workdir / "failed.txt").exists(), context
    for name in ("gpu.txt", "cpu.txt", "independent.txt"):
        assert (workdir / name).exists(), f"{name} missing" + context

    # every job ran inside a SLURM job, each its own
    gpu = read_vars(workdir / "gpu.txt")
    cpu = read_vars(workdir / "cpu.txt")
    independent = read_vars(workdir / "independent.txt")
    job_ids = {
        "gpu_job": gpu["SLURM_JOB_ID"],
        "cpu_job": cpu["SLURM_JOB_ID"],
        "independent_job": independent["SLURM_JOB_ID"],
    }
    for rule, job_id in job_ids.items():
        assert job_id.isdigit(), f"{rule} did not run in a SLURM job: {job_id}" + context
    assert len(set(job_ids.values())) == 3, job_ids

    # the GPU job got a GPU from SLURM (gres gpu, File=/dev/null on the test node) and --cpus-per-task = threads
    assert gpu["CUDA_VISIBLE_DEVICES"] not in ("", "unset"), gpu
    assert gpu["threads"] == "2" and gpu["SLURM_CPUS_PER_TASK"] == "2", gpu
    assert cpu["CUDA_VISIBLE_DEVICES"] == "unset", f"a CPU job got a GPU: {cpu}"
    gpu_job = slurm.run("scontrol", "show", "job", job_ids["gpu_job"]).stdout
    assert re.search(r"TresPerJob=\S*gres:gpu:1", gpu_job), gpu_job
    cpu_job = slurm.run("scontrol", "show", "job", job_ids["cpu_job"]).stdout
    assert "gpu" not in cpu_job, cpu_job

    # SLURM's view (squeue, as the profile's status command): the jobs and their states
    states = dict(
        line.split("|", 1)
        for line in slurm.run("squeue", "--states=all", "--noheader", "--format=%i|%T").stdout.split()
    )
    for rule, job_id in job_ids.items():
        assert states.get(job_id) == "COMPLETED", (rule, job_id, states)
    failed = [job_id for job_id, state in states.items() if state == "FAILED"]
    assert len(failed) == 1, states

    # slurm-keep-successful-logs: one SLURM log per job, named by its SLURM job id
    logdir = workdir / ".snakemake" / "slurm_logs"
    for rule, job_id in job_ids.items():
        assert (logdir / f"rule_{rule}" / f"{job_id}.log").is_file(), sorted(p.name for p in logdir.rglob("*"))
    failed_log = logdir / "rule_failing_job" / f"{failed[0]}.log"
    assert "failing on purpose" in failed_log.read_text(), failed_log.read_text()

    # fix the failing rule and run again: only that job is submitted, nothing finished is redone
    finished = {name: (workdir / name).stat().st_mtime_ns for name in ("gpu.txt", "cpu.txt", "independent.txt")}
    (workdir / "Snakefile").write_text(SNAKEFILE.replace("exit 7", "echo fixed > {output}"))
    rerun = subprocess.run(
        profile_command(workdir, workdir / "Snakefile"),
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    rerun_log = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, rerun_log[-6000:]
    assert [rule for rule, _ in submitted_jobs(rerun_log)] == ["failing_job"], rerun_log[-6000:]
    assert (workdir / "failed.txt").read_text().strip() == "fixed"
    assert {name: (workdir / name).stat().st_mtime_ns for name in finished} == finished


def placement_line(log: Path) -> dict[str, str]:
    """The `[maple] host=... SLURM_JOB_ID=... CUDA_VISIBLE_DEVICES=...` line a rule's log starts with."""
    line = next(text for text in log.read_text().splitlines() if text.startswith("[maple] host="))
    return dict(item.split("=", 1) for item in line.split()[1:])


def test_demo_dag_through_slurm_equals_local_run(slurm, small_run, tmp_path):
    local_dir, local_config = small_run
    workdir = tmp_path / "demo"
    workdir.mkdir()
    config = workdir / "config.yaml"
    config.write_text(local_config.read_text())
    # local rules (all, preflight) run in the Snakemake process, not through sbatch
    planned = {rule: n for rule, n in planned_jobs(workdir, config=config).items() if rule not in ("all", "preflight")}
    cmd = profile_command(workdir, REPO / "Snakefile", mem_mb=4000) + ["--configfile", str(config)]
    result = subprocess.run(cmd, cwd=workdir, env=job_env(slurm.env), capture_output=True, text=True, timeout=1500)
    log = result.stdout + result.stderr
    context = f"\n--- snakemake output ---\n{log[-8000:]}\n{slurm.logs()}"
    assert result.returncode == 0, context

    # every job with work to do went through sbatch, each its own SLURM job, its log kept under that job id
    jobs = submitted_jobs(log)
    assert Counter(rule for rule, _ in jobs) == Counter(planned), context
    assert {"build_tiny_model", "synth_data", "finetune", "evaluate_demo_mc", "aggregate"} <= set(planned)
    assert len({job_id for _, job_id in jobs}) == len(jobs), jobs
    for rule, job_id in jobs:
        assert list((workdir / ".snakemake" / "slurm_logs" / f"rule_{rule}").rglob(f"{job_id}.log")), (rule, job_id)

    # the GPU rules ran with the GPU SLURM gave them; the CPU rules without one
    job_ids = {job_id for _, job_id in jobs}
    gpu_logs = list((workdir / "logs" / "finetune").rglob("*.log")) + list(
        (workdir / "logs" / "evaluate").rglob("*.log")
    )
    assert len(gpu_logs) == planned["finetune"] + planned["evaluate_demo_mc"] + planned["evaluate_demo_gen"], gpu_logs
    for path in gpu_logs:
        where = placement_line(path)
        assert where["SLURM_JOB_ID"] in job_ids, (path, where)
        assert where["CUDA_VISIBLE_DEVICES"] not in ("", "unset"), (path, where)
    for path in (workdir / "logs" / "synth_data" / "demo.log", workdir / "logs" / "aggregate" / "aggregate.log"):
        where = placement_line(path)
        assert where["SLURM_JOB_ID"] in job_ids and where["CUDA_VISIBLE_DEVICES"] == "unset", (path, where)

    # the same scores as the local run of the same config
    on_slurm = pd.read_csv(workdir / "results" / "tables" / "scores.csv")
    local = pd.read_csv(local_dir / "results" / "tables" / "scores.csv")
    pd.testing.assert_frame_equal(on_slurm, local, check_exact=False, rtol=1e-9, atol=1e-12)


GPU_PAIR_SNAKEFILE = textwrap.dedent(
    r"""
    rule all:
        input:
            expand("gpu_{i}.json", i=range(2)),


    rule gpu_job:
        output:
            "gpu_{i}.json",
        log:
            "logs/gpu_{i}.log",
        threads: 1
        resources:
            gpu=1,
        shell:
            "python JOB_PY {log} {output}"
    """
)

# A GPU job through the workflow's own entry code (maple.runtime.jobs.logged_to with resources.gpu): under SLURM it keeps
# the CUDA_VISIBLE_DEVICES SLURM set. It holds its GPU for a while, so that two jobs can be seen running together.
GPU_PAIR_JOB = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, SCRIPTS_DIR)
    from maple.runtime.jobs import logged_to

    log, out = sys.argv[1:3]
    with logged_to(log, gpus=1):
        start = time.time()
        time.sleep(8)
        record = {k: os.environ.get(k, "unset") for k in ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES")}
        record.update(start=start, end=time.time())
    with open(out, "w") as f:
        json.dump(record, f)
    """
)


def run_gpu_pair(slurm, workdir: Path, *extra: str) -> list[dict]:
    workdir.mkdir()
    job = workdir / "job.py"
    job.write_text(GPU_PAIR_JOB.replace("SCRIPTS_DIR", repr(str(REPO / "workflow" / "scripts"))))
    (workdir / "Snakefile").write_text(GPU_PAIR_SNAKEFILE.replace("JOB_PY", str(job)))
    cmd = profile_command(workdir, workdir / "Snakefile") + ["--resources", "gpu=1", *extra]
    started = time.time()
    result = subprocess.run(cmd, cwd=workdir, env=job_env(slurm.env), capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    print(f"{' '.join(extra) or 'profile'}: {time.time() - started:.1f} s")
    assert result.returncode == 0, f"{log[-6000:]}\n{slurm.logs()}"
    records = [json.loads((workdir / f"gpu_{i}.json").read_text()) for i in range(2)]
    for i, record in enumerate(records):
        # the GPU SLURM gave the job (--gpus=1), kept as it is by the claiming code
        assert re.search(
            r"TresPerJob=\S*gres:gpu:1\b", slurm.run("scontrol", "show", "job", record["SLURM_JOB_ID"]).stdout
        )
        line = next(t for t in (workdir / "logs" / f"gpu_{i}.log").read_text().splitlines() if t.startswith("[maple]"))
        assert f"CUDA_VISIBLE_DEVICES={record['CUDA_VISIBLE_DEVICES']} " in line and "(kept)" in line, line
    assert records[0]["SLURM_JOB_ID"] != records[1]["SLURM_JOB_ID"]
    return records


def test_gpu_is_a_per_job_resource_with_the_profile(slurm, tmp_path):
    """`--resources gpu=1` with the profile caps a job, not the cluster: the two GPU jobs of the run are running at the
    same time, each with its own GPU of the node's two (--gpus=1 each). With the scope made global on purpose
    (docs/gpus-slurm-offline.md, "On a SLURM cluster": how a site caps the GPUs a study holds) the same command runs
    them one after the other."""
    together = run_gpu_pair(slurm, tmp_path / "per_job")
    assert max(r["start"] for r in together) < min(r["end"] for r in together), together
    assert {r["CUDA_VISIBLE_DEVICES"] for r in together} == {"0", "1"}, together
    capped = run_gpu_pair(slurm, tmp_path / "capped", "--set-resource-scopes", "gpu=global")
    first, second = sorted(capped, key=lambda r: r["start"])
    assert first["end"] <= second["start"], capped
