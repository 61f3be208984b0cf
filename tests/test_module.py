"""The workflow as a Snakemake module, deployed the way snakedeploy does (docs/module.md): a release tag of a git
repository, fetched into a checkout of its own; a new directory with the user's Snakefile (`module maple:` naming
the checkout's workflow/Snakefile, `use rule * from maple`) and the user's own copy of config/. The demo (the small
test config) runs there end to end: every output and log lands in the user's directory, nothing in the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SNAKEMAKE, TEST_CONFIG
from hub_server import GIT

TAG = "v0.0.0-test"

USER_SNAKEFILE = """\
configfile: "config/config.yaml"


module maple:
    snakefile:
        {snakefile}
    config:
        config


use rule * from maple
"""


def tagged_repository(dest: Path) -> Path:
    """A git repository of this checkout's files (committed or not, as git would commit them), tagged TAG."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    subprocess.run([*GIT, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", "release"], cwd=dest, check=True)
    subprocess.run([*GIT, "tag", TAG], cwd=dest, check=True)
    return dest


def user_directory(dest: Path, snakefile: str) -> Path:
    """What snakedeploy deploy-workflow writes: workflow/Snakefile with the module, and a copy of config/."""
    (dest / "workflow").mkdir(parents=True)
    (dest / "workflow" / "Snakefile").write_text(USER_SNAKEFILE.format(snakefile=snakefile))
    (dest / "config").mkdir()
    shutil.copy2(TEST_CONFIG, dest / "config" / "config.yaml")
    return dest


def snakemake_in(work: Path, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    return subprocess.run([SNAKEMAKE, *args], cwd=work, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return tagged_repository(tmp_path_factory.mktemp("maple-workflow-repo"))


@pytest.mark.slow
def test_the_demo_runs_as_a_module_into_the_users_directory(release, tmp_path):
    checkout = tmp_path / "maple-workflow"
    subprocess.run([*GIT, "clone", "-q", "--branch", TAG, str(release), str(checkout)], check=True)
    work = user_directory(tmp_path / "study", repr(str(checkout / "workflow" / "Snakefile")))
    result = snakemake_in(work, "--cores", "2", "--resources", "gpu=1")
    assert result.returncode == 0, result.stderr[-5000:]

    for target in (
        "results/tables/scores.csv",
        "results/adapters/tiny/demo/r4-q16/adapter_model.safetensors",
        "results/adapters/tiny/demo/r4-q4/adapter_model.safetensors",
        "results/scores/tiny/base/demo_mc/sw.json",
        "results/tracking/tensorboard/tiny/demo-r4-q16",
        "logs/finetune/tiny/demo/r4-q16.log",
        "benchmarks",
    ):
        assert (work / target).exists(), target
    assert len(list((work / "results/plots").rglob("*.png"))) >= 1
    # the checkout is as cloned: no output, log or Snakemake state in it (Python's bytecode caches aside)
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert [line for line in status if "__pycache__/" not in line] == []
    # and the user's directory holds only what the run wrote beside the deployment
    assert sorted(p.name for p in work.iterdir()) == [
        ".snakemake",
        "benchmarks",
        "config",
        "logs",
        "results",
        "workflow",
    ]


@pytest.mark.slow
def test_a_remote_module_stops_with_a_message_naming_the_local_checkout(release, tmp_path):
    """gitfile()/github() fetch the Snakefiles alone, without the package the rules import."""
    work = user_directory(tmp_path / "study", f'gitfile({str(release)!r}, path="workflow/Snakefile", tag={TAG!r})')
    result = snakemake_in(work, "-n", "--cores", "1", timeout=300)
    assert result.returncode != 0
    assert "maple-workflow runs from a local checkout" in result.stderr + result.stdout
