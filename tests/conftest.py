"""Shared test set-up: offline Hugging Face and Snakemake runs in temp dirs (the maple package and tests/ are on
sys.path through pytest's `pythonpath`, pyproject.toml)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Nothing may come from a hub, in tests or in the Snakemake jobs they start.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A dummy hub token in every test and job (the hub is offline, so it is never sent): test_security.py checks that
# it reaches no log, score or other output of the runs.
DUMMY_HF_TOKEN = "hf_mapleDummyTokenThatMustNeverBeLogged0123"
os.environ["HF_TOKEN"] = DUMMY_HF_TOKEN
os.environ["HUGGING_FACE_HUB_TOKEN"] = DUMMY_HF_TOKEN

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


# Parallel workers (pytest-xdist, `-n 2`, as CI runs the suite). Each worker builds its own session fixtures, so the
# tests of one module (its module-scoped DAG run) go to one worker, and so do all the modules that read one shared
# DAG run (small_run, demo_run). xdist's own `--dist loadgroup` cannot do it here: it marks a test's group in the
# node id, which pytest 9 no longer lets a plugin change. Slow tests are queued first, so that the long DAG runs
# start at once and the short tests fill the gaps at the end.
SHARED_RUNS = ("small_run", "demo_run")
TORCH_THREADS = pytest.StashKey[int]()


def shared_run_of_modules() -> dict[str, str]:
    """Test module file name -> the shared DAG run its tests read (the first of SHARED_RUNS it names)."""
    found = {}
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        text = path.read_text(encoding="utf-8")
        for name in SHARED_RUNS:
            if name in text:
                found[path.name] = name
                break
    return found


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    shared = shared_run_of_modules()

    class SharedRunScheduling(LoadScopeScheduling):
        """Work units of whole modules, the modules of one shared run together."""

        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return shared.get(Path(module).name, module)

    return SharedRunScheduling(config, log)


def pytest_configure(config):
    import torch

    config.stash[TORCH_THREADS] = torch.get_num_threads()


def pytest_collection_finish(session):
    """pytest-xdist imports every test module in every worker: a module that sets torch's thread count at import sets
    it for every test of the worker, and a test that compares an in-process run with a Snakemake job's (same threads
    as the job, tests/test_finetune.py) then compares two thread counts, whose float sums differ."""
    import torch

    if torch.get_num_threads() != session.config.stash[TORCH_THREADS]:
        raise pytest.UsageError(
            f"a test module set torch's thread count at import ({session.config.stash[TORCH_THREADS]} -> "
            f"{torch.get_num_threads()}): set it in a fixture that restores it"
        )


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: file order kept within each tier


def load_default_config() -> dict:
    with open(REPO / "config" / "config.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def write_config(workdir: Path, config: dict) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


def run_snakemake(
    workdir: Path, *args: str, config: Path | None = None, check: bool = True, timeout: int = 1800
) -> subprocess.CompletedProcess:
    """Run this repo's workflow with workdir as the working directory."""
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    if config is not None:
        cmd += ["--configfile", str(config)]
    cmd += list(args)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}): {' '.join(cmd)}\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
        )
    return result


def planned_jobs(workdir: Path, *args: str, config: Path | None = None) -> dict[str, int]:
    """Rule -> job count from a dry run (`snakemake -n`): what would run now."""
    out = run_snakemake(workdir, "-n", "--quiet", "rules", *args, config=config)
    counts: dict[str, int] = {}
    text = out.stdout + out.stderr
    in_table = False
    for line in text.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table and len(parts) == 2 and parts[1].isdigit():
            if parts[0] != "total":
                counts[parts[0]] = int(parts[1])
        elif in_table and parts and not set(line.strip()) <= set("- "):
            in_table = False
    return counts


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The default demo config, run once end to end in a temp dir: (workdir, seconds)."""
    import time

    workdir = tmp_path_factory.mktemp("demo")
    config = write_config(workdir, load_default_config())
    started = time.time()
    run_snakemake(workdir, "--cores", "all", "--resources", "gpu=1", config=config)
    return workdir, time.time() - started, config


# A GPU-check summary for plans that only decode (tests/test_sharded_evaluation.py, tests/test_vllm_groups.py).
DECODE_ONLY_SUMMARY = {
    "throughput": {  # loglikelihood free, no fixed costs, one decode step 1.5 s at any size: 20.5-21 steps a batch
        "prefill_tokens_per_s": 1e12,  # of 32 for the demo's generation task, so just under a second per generated example
        "small_prefill_tokens_per_s": 1e12,
        "decode_step_s": 1.5,
        "small_decode_step_s": 1.5,
        **dict.fromkeys(("startup_s", "load_s", "small_load_s", "task_index_s", "task_setup_s"), 0),
        "prefill_slowdown": {"4": 1, "8": 1, "16": 1},
        "decode_slowdown": {"4": 1, "8": 1, "16": 1},
    }
}

TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"


def small_config() -> dict:
    """The test config (.test/config/config.yaml): a reduced demo that keeps every rule, about a minute on 2 cores."""
    with open(TEST_CONFIG, encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """The small config, run once end to end: (workdir, config path). Tests that change it work on a copy
    (copy_run) so that the others see the finished state."""
    workdir = tmp_path_factory.mktemp("small")
    config = write_config(workdir, small_config())
    run_snakemake(workdir, "--cores", "all", "--resources", "gpu=1", config=config)
    return workdir, config


def copy_run(run_dir: Path, dest: Path) -> Path:
    """A copy of a finished run (results, Snakemake metadata, mtimes kept) to change without touching the original."""
    shutil.copytree(run_dir, dest, symlinks=True, dirs_exist_ok=False)
    return dest
