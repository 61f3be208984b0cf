"""bench/gpu_check.sh --rehearse: every step of the GPU check at smoke size on a CPU, with the same commands, files
and JSON keys as on the GPU, so that a missing directory, a renamed option or a renamed key fails here, not in the
GPU's window. docs/gpu-check.md documents the summary's keys."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

STEPS = [
    "install",
    "bitsandbytes",
    "demo",
    "merge_eval",
    "finetune_q16",
    "finetune_q8",
    "finetune_q4",
    "finetune_q4_s2048",
    "eval_7b",
]
THROUGHPUT_KEYS = {
    "load_seconds",
    "arch",
    "finetune_seq_len",
    "finetune_micro_batch",
    "finetune_tokens_per_s",
    "mfu",
    "bf16_peak_tflops",
    "peak_allocated_bytes",
    "q4_seq2048_micro_batch",
    "q4_seq2048_tokens_per_s",
    "q4_seq2048_peak_reserved_bytes",
    "generate_examples_per_s",
    "loglikelihood_examples_per_s",
    "eval_batch_size",
    "load_s",
    "merged_vs_unmerged_16bit",
}


@pytest.mark.slow
def test_the_rehearsal_runs_every_step_of_the_gpu_check(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), "--rehearse", "--keep-going", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHON": sys.executable,
            "GPU_CHECK_WORK": str(tmp_path / "work"),
            "HOME": str(tmp_path),
        },
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert sorted(p.name for p in out.iterdir()) == ["benches.json", "check.log", "summary.json"]  # at most 8
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rehearsal"] is True and summary["ok"] is True
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps) == STEPS
    assert all(s["status"] == "ok" for name, s in steps.items() if name != "install")
    assert sum(s["budget_s"] for s in summary["steps"]) <= summary["budget_s"] <= 480
    table = summary["throughput"]
    assert set(table) == THROUGHPUT_KEYS
    assert set(table["finetune_tokens_per_s"]) == {"16", "8", "4"}
    assert all(v > 0 for v in table["finetune_tokens_per_s"].values())
    assert set(table["mfu"]) == {"16", "4"}  # None on a CPU: no bf16 peak is measured there
    assert table["generate_examples_per_s"]["xquad"] > 0 and table["loglikelihood_examples_per_s"]["belebele"] > 0
    assert table["merged_vs_unmerged_16bit"]["within_tolerance"] is True
    # the cost estimate reads it as its throughput table: every figure the check measures replaces its default
    from maple.config.throughput import read_gpu_summary

    read = read_gpu_summary(out / "summary.json")
    measured = ("finetune_tokens_per_s", "loglikelihood_examples_per_s", "generate_examples_per_s", "load_seconds")
    assert all(read["source"][key] == str(out / "summary.json") for key in measured), read["source"]
    assert read["generate_examples_per_s"] > 0 and read["finetune_tokens_per_s"]["4"] > 0
    assert summary["device"]["ok"] is True and summary["device"]["linear4bit_nf4"]["ok"] is True
    demo = summary["demo"]
    assert {"demo-r4-q4", "demo-r4-q8", "demo-r4-q16", "base"} <= set(demo["variants"])
    assert all(v["eval_device"] == "cpu" for v in demo["variants"].values())


def test_the_check_wants_an_output_directory():
    result = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh")], capture_output=True, text=True)
    assert result.returncode == 2 and "usage" in result.stderr
