"""Security: remote code runs only where the config sets trust_remote_code for that model, and a hub token in the
environment reaches no output (conftest.py puts a dummy HF_TOKEN in the environment of every test and job).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import DUMMY_HF_TOKEN, REPO, small_config

SCRIPTS = REPO / "workflow" / "scripts"


@pytest.mark.slow
def test_no_token_reaches_any_output(small_run):
    workdir, _ = small_run
    assert os.environ["HF_TOKEN"] == DUMMY_HF_TOKEN  # the jobs of small_run inherited it
    scanned, leaks = [], []
    for path in sorted(workdir.rglob("*")):
        if path.is_file():
            scanned.append(path)
            data = path.read_bytes()
            if DUMMY_HF_TOKEN.encode() in data or DUMMY_HF_TOKEN[3:].encode() in data:
                leaks.append(path)
    assert not leaks, f"the hub token was written to {leaks}"
    names = {p.name for p in scanned}
    # The scan covered what matters: scores, logs of every stage, the table, Snakemake's own logs and metadata.
    assert any(p.match("results/scores/*/*/*/*.json") for p in scanned)
    assert {"scores.csv", "r4-q4.log", "demo.log", "tiny.log"} <= names
    assert any(".snakemake" in p.parts and "metadata" in p.parts for p in scanned)


def test_trust_remote_code_is_off_unless_set_per_model():
    from maple.config.validation import checked_study

    config = small_config()
    config["models"]["remote"] = {"hub_id": "org/custom-arch", "trust_remote_code": True}
    config["models"]["other"] = {"hub_id": "org/plain"}
    study = checked_study(config)[1]
    assert {alias: m.trust_remote_code for alias, m in study.models.items()} == {
        "tiny": False,
        "remote": True,
        "other": False,
    }


@pytest.mark.slow
def test_the_runs_jobs_got_trust_remote_code_false(small_run):
    workdir, _ = small_run
    for metrics in workdir.glob("results/adapters/*/*/*/train_metrics.json"):
        assert json.loads(metrics.read_text())["params"]["trust_remote_code"] is False, metrics


def test_no_code_enables_remote_code_and_every_load_passes_the_flag():
    """Static (AST): no call in the scripts passes trust_remote_code=True literally, and every Auto*.from_pretrained
    call and lm-eval HFLM model passes the configured flag explicitly (never the library default by omission)."""
    checked = 0
    for path in SCRIPTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            flags = {k.arg: k.value for k in node.keywords}
            value = flags.get("trust_remote_code")
            assert not (isinstance(value, ast.Constant) and value.value is True), f"{path}:{node.lineno}"
            func = node.func
            loads = (
                isinstance(func, ast.Attribute)
                and func.attr == "from_pretrained"
                and isinstance(func.value, ast.Name)
                and func.value.id.startswith("Auto")
            ) or (isinstance(func, ast.Name) and func.id == "HFLM")
            if loads:
                assert "trust_remote_code" in flags, f"{path}:{node.lineno}: loads a model without the flag"
                checked += 1
    assert checked >= 3


TRAP = """
import os
open(os.environ["MAPLE_TRAP_MARKER"], "w").write("remote code ran")
from transformers import LlamaConfig


class TrapConfig(LlamaConfig):
    pass
"""

LOAD = """
import sys
from maple.train.models import load_base
try:
    load_base(sys.argv[1], 16, trust_remote_code=sys.argv[2] == "1")
except Exception as error:  # with the flag on the trap's config class may not load a model: only the marker counts
    print("load failed:", type(error).__name__, error)
"""


@pytest.mark.slow
def test_remote_code_in_a_model_directory_runs_only_with_the_flag(small_run, tmp_path):
    """A model directory whose config.json points AutoConfig at its own Python file (what a hub repo with custom
    code does): loading it as the jobs do runs that file only with trust_remote_code true."""
    workdir, _ = small_run
    model = tmp_path / "model"
    shutil.copytree(workdir / "results/models/tiny", model)
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "trap.TrapConfig"}
    (model / "config.json").write_text(json.dumps(config))
    (model / "trap.py").write_text(TRAP)

    def load(flag: str):
        marker = tmp_path / f"marker-{flag}"
        env = {
            **os.environ,
            "MAPLE_TRAP_MARKER": str(marker),
            "HF_MODULES_CACHE": str(tmp_path / "modules"),
            "PYTHONPATH": str(SCRIPTS),
        }
        out = subprocess.run(
            [sys.executable, "-c", LOAD, str(model), flag], capture_output=True, text=True, env=env, timeout=300
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return marker.exists()

    assert load("0") is False, "remote code ran with trust_remote_code off"
    assert load("1") is True, "the trap did not fire with the flag on: this test would prove nothing"
