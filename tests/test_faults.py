"""Faults: Snakemake killed (SIGKILL, the whole process group: Snakemake and its job) during a finetune and again
during an evaluation; what the user then runs (docs/reruns-and-faults.md, "After a crash or a kill"):

    snakemake --unlock && snakemake --cores all --rerun-incomplete

completes the run, keeps nothing of a killed job as complete and recomputes nothing that had finished.

The scenario runs once (module fixture) on a copy of the small run with rank 8 added, so that both kills land in
real jobs: two new finetunes and their four evaluations.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, SNAKEMAKE, copy_run, planned_jobs, run_snakemake

pytestmark = pytest.mark.slow

RUN_ARGS = ("--cores", "2", "--resources", "gpu=1")
DOWNSTREAM = ("results/tables", "results/plots")  # rerun by design when a rank is added


def start_snakemake(workdir: Path, config: Path, *args: str, log: Path) -> subprocess.Popen:
    """Snakemake in its own session (process group), so that the test can kill it together with its jobs."""
    cmd = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        *RUN_ARGS,
        *args,
    ]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_for(predicate, process: subprocess.Popen, timeout: float = 900):
    """Poll until predicate() returns something truthy; fail if Snakemake exits first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        if process.poll() is not None:
            raise AssertionError(f"snakemake exited ({process.returncode}) before the awaited job started")
        time.sleep(0.2)
    raise AssertionError("timed out waiting for a job to start")


def live_members(group: int) -> list[str]:
    """The processes of a process group that are still running (not zombies awaiting their reaper)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(stat.parent.name)
    return members


def kill_group(process: subprocess.Popen) -> float:
    """SIGKILL Snakemake and its running job (its process group), as a crash or an OOM killer would."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.time() + 30
    while live_members(process.pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not live_members(process.pid), "a job survived the kill"
    return time.time()


def state(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (mtime_ns, size) of every file under root."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file()}


def new_files(workdir: Path, pattern: str, before: set):
    return sorted(p for p in workdir.glob(pattern) if p not in before)


@pytest.fixture(scope="module")
def scenario(small_run, tmp_path_factory):
    src, config_path = small_run
    work = copy_run(src, tmp_path_factory.mktemp("faults") / "run")
    config = yaml.safe_load(Path(config_path).read_text())
    config["finetune"]["ranks"] = [4, 8]
    config_file = work / "config-rank8.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    facts = {"work": work, "config": config_file, "before": state(work)}

    # 1. Kill during a finetune of rank 8: once its job has started and a few seconds into it.
    old_logs = set(work.glob("logs/**/*.log"))
    first = start_snakemake(work, config_file, log=work / "run1.out")
    log = wait_for(lambda: new_files(work, "logs/finetune/tiny/demo/r8-q*.log", old_logs), first)[0]
    time.sleep(3)
    name = log.stem  # r8-q4 or r8-q16
    assert not (work / f"benchmarks/finetune/tiny/demo/{name}.tsv").exists(), "the finetune ended before the kill"
    facts["killed_finetune"] = name
    facts["kill1"] = kill_group(first)
    facts["after_kill1"] = {
        "adapter_exists": (work / f"results/adapters/tiny/demo/{name}").exists(),
        "locks": sorted(p.name for p in (work / ".snakemake" / "locks").glob("*")),
    }

    # 2. The rerun without --unlock is refused: the killed Snakemake left its lock.
    facts["locked_rerun"] = run_snakemake(work, *RUN_ARGS, config=config_file, check=False)
    run_snakemake(work, "--unlock", config=config_file)

    # 3. Rerun as documented; kill again during the first evaluation of a rank-8 adapter.
    old_logs = set(work.glob("logs/**/*.log"))
    second = start_snakemake(work, config_file, "--rerun-incomplete", log=work / "run2.out")
    log = wait_for(lambda: new_files(work, "logs/evaluate/tiny/demo-r8-q*/*.log", old_logs), second)[0]
    time.sleep(2)
    variant, task = log.parent.name, log.stem
    assert not (work / f"benchmarks/evaluate/tiny/{variant}/{task}.tsv").exists(), (
        "the evaluation ended before the kill"
    )
    facts["killed_evaluation"] = (variant, task)
    facts["mid"] = state(work)
    facts["kill2"] = kill_group(second)
    facts["plan_after_kill2"] = planned_jobs(work, "--rerun-incomplete", config=config_file)

    # 4. What the user runs after a kill: unlock, rerun with --rerun-incomplete.
    run_snakemake(work, "--unlock", config=config_file)
    started = time.time()
    run_snakemake(work, *RUN_ARGS, "--rerun-incomplete", config=config_file)
    facts["resume_seconds"] = time.time() - started
    facts["after"] = state(work)
    return facts


def test_a_killed_finetune_leaves_no_adapter_and_a_lock(scenario):
    assert scenario["after_kill1"]["adapter_exists"] is False
    assert scenario["after_kill1"]["locks"], "no lock left behind: the --unlock step would be unneeded"
    locked = scenario["locked_rerun"]
    assert locked.returncode != 0
    assert "cannot be locked" in locked.stdout + locked.stderr and "--unlock" in locked.stdout + locked.stderr


def test_the_killed_jobs_are_planned_again_and_nothing_else_upstream(scenario):
    plan = scenario["plan_after_kill2"]
    variant, task = scenario["killed_evaluation"]
    # The killed evaluation and whatever had not run yet; no rank-4 or base job, no data, no model.
    assert plan.get(f"evaluate_{task}", 0) >= 1
    assert "synth_data" not in plan and "build_tiny_model" not in plan
    assert plan.get("finetune", 0) <= 1  # at most the rank-8 finetune that had not started yet


def test_resume_completes_and_recomputes_nothing_finished(scenario):
    work, after = scenario["work"], scenario["after"]
    assert planned_jobs(work, config=scenario["config"]) == {}
    # Every file finished before the first kill, and every file finished before the second kill except the
    # killed job's, is untouched (same mtime and size); only the report stage downstream of the new rank reran.
    variant, task = scenario["killed_evaluation"]
    killed_outputs = (f"results/scores/tiny/{variant}/{task}/", f"logs/evaluate/tiny/{variant}/{task}")
    for label, earlier in (("before the first kill", scenario["before"]), ("before the second kill", scenario["mid"])):
        for path, stamp in earlier.items():
            # results/tracking/: TensorBoard events, appended while jobs run (no output of a rule)
            skipped = DOWNSTREAM + killed_outputs + ("results/tracking/",)
            if not path.startswith(("results/", "benchmarks/")) or path.startswith(skipped):
                continue
            assert after.get(path) == stamp, f"{path}, finished {label}, was recomputed or removed"


def test_the_killed_jobs_outputs_are_all_new(scenario):
    work = scenario["work"]
    adapter = work / "results/adapters/tiny/demo" / scenario["killed_finetune"]
    assert (adapter / "adapter_model.safetensors").stat().st_mtime > scenario["kill1"]
    assert (adapter / "train_metrics.json").exists()
    variant, task = scenario["killed_evaluation"]
    scores = sorted((work / "results/scores/tiny" / variant / task).glob("*.json"))
    assert scores and all(s.stat().st_mtime > scenario["kill2"] for s in scores)
    assert not list(work.glob("results/adapters/**/*.work")), "a killed finetune's work directory was left behind"
    table = pd.read_csv(work / "results/tables/scores.csv")
    assert {"demo-r8-q4", "demo-r8-q16"} <= set(table["variant"])
    assert pd.read_csv(work / "results/tables/missing.csv").empty
