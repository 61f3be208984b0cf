"""Code edits rerun what they change: each stage's code version (maple.config.stage_versions) is a param of its rules,
so bumping one plans exactly that stage and what follows from it, and nothing else (docs/reruns-and-faults.md, "What
reruns").

The run happens in a copy of the workflow, whose stage_versions.py the test edits; the repository is not touched.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, SNAKEMAKE, small_config, write_config

pytestmark = pytest.mark.slow

REPORT = {"aggregate", "summarize", "plot", "all"}


def workflow_copy(dest: Path) -> Path:
    """The repository's files (tracked, and untracked ones git does not ignore) copied with their mtimes."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for rel in listed:
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    return dest


def run(copy: Path, workdir: Path, config: Path, *args: str) -> str:
    cmd = [SNAKEMAKE, "-s", str(copy / "Snakefile"), "--directory", str(workdir), "--configfile", str(config), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout + result.stderr


def planned_rules(output: str) -> set[str]:
    return set(re.findall(r"^(?:local)?rule (\w+):$", output, re.M))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    copy = workflow_copy(tmp_path_factory.mktemp("workflow"))
    workdir = tmp_path_factory.mktemp("run")
    config = small_config()
    config["finetune"]["bits"] = [16]
    config = write_config(workdir, config)
    run(copy, workdir, config, "--cores", "all", "--resources", "gpu=1")
    return copy, workdir, config


def bump(copy: Path, stage: str) -> str:
    """Raise `stage`'s version by one in the copy; returns the file's text before, to restore."""
    path = copy / "workflow" / "scripts" / "maple" / "config" / "stage_versions.py"
    text = path.read_text()
    bumped, n = re.subn(rf'("{stage}": )(\d+)', lambda m: f"{m[1]}{int(m[2]) + 1}", text)
    assert n == 1, stage
    path.write_text(bumped)
    return text


@pytest.mark.parametrize(
    "stage, expected",
    [
        (None, set()),
        ("evaluate", {"evaluate_demo_mc", "evaluate_demo_gen"} | REPORT),
        ("finetune", {"finetune", "evaluate_demo_mc", "evaluate_demo_gen"} | REPORT),
        ("synth_data", {"synth_data", "finetune", "evaluate_demo_mc", "evaluate_demo_gen"} | REPORT),
        ("plot", {"plot", "all"}),
        ("aggregate", REPORT),
    ],
)
def test_a_bumped_stage_version_plans_that_stage_and_what_follows(finished, stage, expected):
    copy, workdir, config = finished
    before = bump(copy, stage) if stage else None
    try:
        output = run(copy, workdir, config, "-n")
    finally:
        if before is not None:
            (copy / "workflow" / "scripts" / "maple" / "config" / "stage_versions.py").write_text(before)
    planned = planned_rules(output)
    assert planned == expected, output[-3000:]
    if stage in ("evaluate", "finetune"):
        # every job of the bumped stage, the base's evaluations too for evaluate (params changed), not one of them
        assert output.count("rule evaluate_demo_mc:") == (2 if stage == "evaluate" else 1)
