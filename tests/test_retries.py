"""Runtimes that grow (docs/gpus-slurm-offline.md, "Runtimes"): evaluation, data and finetune jobs are retried
(evaluation.retries, data_retries, finetune.oom_retries), each attempt with the first attempt's runtime times the
attempt. On the local SLURM cluster (tests/slurm/): an evaluation job whose first runtime (1 minute) is shorter than
it needs is killed by SLURM at its limit, retried with 2 minutes, resumes from the requests it had answered
(maple.evaluate.request_cache) and writes the scores of an uninterrupted run."""

from __future__ import annotations

import re
import subprocess
import time
from types import SimpleNamespace

import pytest
import yaml
from conftest import REPO, SNAKEMAKE, small_config, write_config
from maple.runtime.jobs import runtime_for_attempt
from test_request_cache import (
    DELAY_VARIABLE,
    JOB_FILES,
    JOB_LOG,
    counts,
    job_env,
    last_attempt,
    resume_run,
    saved_chunks,
    without_times,
)
from test_shards import planned_workflow


def test_runtime_for_attempt_reads_minutes_and_timespans():
    assert [runtime_for_attempt(45, a) for a in (1, 2, 3)] == [45, 90, 135]
    assert runtime_for_attempt("2h", 2) == 240 and runtime_for_attempt("90m", 1) == 90


def test_each_attempt_of_a_job_asks_for_more_time(tmp_path):
    config = small_config()
    config["finetune"]["resources"] = {"runtime": 90}
    config["evaluation"]["retries"] = 1
    config["data_retries"] = 3
    with planned_workflow(write_config(tmp_path, config), tmp_path) as workflow:
        rules = {rule.name: rule for rule in workflow.rules}
        estimate = workflow.globals["EVALUATE_RUNTIME"]

        def runtimes(rule, **wildcards):
            runtime = rules[rule].resources["runtime"]
            return [runtime.evaluate(SimpleNamespace(**wildcards), attempt=a).value for a in (1, 2, 3)]

        first = estimate[("tiny", "base", "demo_mc")]
        assert runtimes("evaluate_demo_mc", model="tiny", variant="base") == [first, 2 * first, 3 * first]
        assert runtimes("finetune", model="tiny", data="demo", rank="4", bits="16") == [90, 180, 270]
        light = workflow.globals["LIGHT_DATA_RUNTIME_MINUTES"]
        assert runtimes("synth_data", data="demo") == [light, 2 * light, 3 * light]
        # the rule's own retries (restart_times needs the settings of a run)
        assert rules["evaluate_demo_mc"]._restart_times == rules["evaluate_demo_gen"]._restart_times == 1
        assert rules["synth_data"]._restart_times == 3
        assert rules["finetune"]._restart_times == config["finetune"]["oom_retries"]


def snakemake_command(work, config_path) -> list[str]:
    return [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(work), "--configfile", str(config_path)]


# --- on the local SLURM cluster ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    from slurm_cluster import local_slurm

    with local_slurm(tmp_path_factory) as cluster:
        yield cluster


@pytest.mark.slow
@pytest.mark.slurm
def test_an_evaluation_killed_at_its_time_limit_is_retried_with_more_time_and_resumes(slurm, small_run, tmp_path):
    from test_slurm_smoke import job_env as slurm_env
    from test_slurm_smoke import profile_command, submitted_jobs

    # the same job run through locally, without a time limit: the scores to match
    whole, whole_config = resume_run(small_run, tmp_path / "uninterrupted")
    run = subprocess.run(
        [*snakemake_command(whole, whole_config), "--cores", "2", *JOB_FILES, "--resources", "gpu=1"],
        env=job_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    total = sum(n for _, _, n, _, _ in counts(last_attempt((whole / JOB_LOG).read_text())))

    work, config_path = resume_run(small_run, tmp_path / "slurm")
    config = yaml.safe_load(config_path.read_text())
    config["evaluation"].update(resources={"runtime": 1}, retries=1)  # 1 minute, then 2
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    # SLURM's shortest limit is a minute: the test knob slows each computed request so that the job needs about 100 s
    # of requests besides its start (imports, model load), more than a minute and less than two
    env = slurm_env({**slurm.env, **job_env(**{DELAY_VARIABLE: f"{100 / total:.3f}"})})
    cmd = profile_command(work, REPO / "Snakefile", mem_mb=4000) + [*JOB_FILES, "--configfile", str(config_path)]
    started = time.time()
    result = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    log = result.stdout + result.stderr
    context = f"\n--- snakemake output ---\n{log[-8000:]}\n{slurm.logs()}"
    assert result.returncode == 0, context
    print(f"two attempts through SLURM: {time.time() - started:.0f} s")

    jobs = [job_id for rule, job_id in submitted_jobs(log) if rule == "evaluate_demo_mc"]
    assert len(jobs) == 2, context
    shown = {job_id: slurm.run("scontrol", "show", "job", job_id).stdout for job_id in jobs}
    assert re.search(r"JobState=TIMEOUT\b", shown[jobs[0]]), shown[jobs[0]]
    assert "TimeLimit=00:01:00" in shown[jobs[0]] and "TimeLimit=00:02:00" in shown[jobs[1]], shown
    assert re.search(r"JobState=COMPLETED\b", shown[jobs[1]]), shown[jobs[1]]

    # the retry read what the first attempt saved and computed only the rest
    resumed = counts(last_attempt((work / JOB_LOG).read_text()))
    cached = sum(c for _, _, _, c, _ in resumed)
    assert 0 < cached < total, resumed
    assert sum(k for *_, k in resumed) == total - cached, resumed
    assert not saved_chunks(work)
    for name in JOB_FILES:
        if name.endswith(".jsonl"):
            assert (work / name).read_bytes() == (whole / name).read_bytes(), name
        else:  # but for the job's times and the GPU SLURM gave it (the test node's fake one)
            assert placeless(work / name) == placeless(whole / name), name


def placeless(score_file) -> dict:
    score = without_times(str(score_file))
    score["provenance"].pop("cuda_visible_devices")
    return score
