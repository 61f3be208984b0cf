"""profiles/slurm through a real one-node SLURM cluster on this machine (tests/slurm/cluster.sh).

A tiny workflow: a GPU rule (`resources: gpu=1`, `threads: workflow.cores` like the real finetune/evaluate rules)
feeding a CPU rule, an independent CPU rule, and a rule that fails. One run with --keep-going must send every job
through sbatch, give the GPU job a GPU from SLURM (CUDA_VISIBLE_DEVICES), report the failed rule, and still finish
the independent branches.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from slurm_cluster import REPO, local_slurm

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PROFILE = REPO / "profiles" / "slurm"

SNAKEFILE = textwrap.dedent(
    r'''
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
    '''
)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    with local_slurm(tmp_path_factory) as cluster:
        yield cluster


def read_vars(path: Path) -> dict[str, str]:
    return dict(item.split("=", 1) for item in path.read_text().split())


def test_profile_runs_jobs_through_sbatch(slurm, tmp_path):
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(SNAKEFILE)
    env = dict(slurm.env)
    # Whatever the submitting shell has must not leak into the jobs (sbatch --export=ALL): SLURM has to set it.
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [
        SNAKEMAKE,
        "--profile", str(PROFILE),
        "--directory", str(workdir),
        "--snakefile", str(workdir / "Snakefile"),
        # the test node has 2 CPUs and ~all memory of this machine: small requests, the `debug` partition
        "--cores", "2",
        "--default-resources", "slurm_partition=debug", "runtime=10", "mem_mb=500", "cpus_per_task=threads",
        # poll soon and often: the jobs take seconds
        "--slurm-init-seconds-before-status-checks", "1",
        "--seconds-between-status-checks", "1",
        "--latency-wait", "5",
        "--keep-going",
    ]
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
    job_ids = {"gpu_job": gpu["SLURM_JOB_ID"], "cpu_job": cpu["SLURM_JOB_ID"],
               "independent_job": independent["SLURM_JOB_ID"]}
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
