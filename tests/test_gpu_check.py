"""bench/gpu_check.sh --rehearse: every step of the GPU check at smoke size on a CPU, with the same commands, files
and JSON keys as on the GPU, so that a missing directory, a renamed option or a renamed key fails here, not in the
GPU's window. docs/gpu-check.md documents the summary's keys."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

STEPS = [
    "install",
    "bitsandbytes",
    "demo",
    "merge_eval",
    "vllm_vs_hf",
    "finetune_q16",
    "finetune_q8",
    "finetune_q4",
    "finetune_q4_s2048",
    "throughput",
]
# The cost estimate's keys (maple.cost.throughput.SUMMARY_KEYS) and what the finetune and merge steps showed.
DIAGNOSTIC_KEYS = {
    "arch",
    "finetune_seq_len",
    "finetune_micro_batch",
    "mfu",
    "bf16_peak_tflops",
    "peak_allocated_bytes",
    "q4_seq2048_micro_batch",
    "q4_seq2048_tokens_per_s",
    "q4_seq2048_peak_reserved_bytes",
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
    assert all(s["status"] == "ok" for name, s in steps.items() if name not in ("install", "vllm_vs_hf"))
    if importlib.util.find_spec("vllm") is None:  # here: the step says why it did not run, and the check is ok
        assert steps["vllm_vs_hf"]["status"] == "skipped" and steps["vllm_vs_hf"]["seconds"] <= 5
        assert summary["vllm_vs_hf"]["status"] == "skipped" and "vllm" in summary["vllm_vs_hf"]["reason"]
    assert sum(s["budget_s"] for s in summary["steps"]) <= summary["budget_s"] <= 480
    table = summary["throughput"]
    from maple.cost.throughput import SUMMARY_KEYS, read_gpu_summary

    assert set(table) == set(SUMMARY_KEYS) | DIAGNOSTIC_KEYS
    assert set(table["finetune_tokens_per_s"]) == {"16", "8", "4"}
    assert all(v > 0 for v in table["finetune_tokens_per_s"].values())
    assert set(table["mfu"]) == {"16", "4"}  # None on a CPU: no bf16 peak is measured there
    assert table["merged_vs_unmerged_16bit"]["within_tolerance"] is True
    # the cost estimate reads it as its throughput table: every figure the check measures replaces its default (the
    # small model's finetune rate is not a step of the check: the one key left at its default, named in one line)
    read = read_gpu_summary(out / "summary.json")
    assert [k for k in SUMMARY_KEYS if read["source"][k] == "default"] == ["small_finetune_tokens_per_s"]
    assert read["warning"].count("small_finetune_tokens_per_s") == 3 and "\n" not in read["warning"]
    assert read["decode_step_s"] > 0 and read["prefill_slowdown"]["4"] > 0 and read["task_setup_s"] >= 0
    assert summary["device"]["ok"] is True and summary["device"]["linear4bit_nf4"]["ok"] is True
    demo = summary["demo"]
    assert {"demo-r4-q4", "demo-r4-q8", "demo-r4-q16", "base"} <= set(demo["variants"])
    assert all(v["eval_device"] == "cpu" for v in demo["variants"].values())


def test_the_check_wants_an_output_directory():
    result = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh")], capture_output=True, text=True)
    assert result.returncode == 2 and "usage" in result.stderr


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_vs_hf_says_it_is_skipped_and_why_where_vllm_cannot_be_imported(tmp_path):
    out = tmp_path / "vllm_vs_hf.json"
    script = REPO / "bench" / "vllm_vs_hf.py"
    result = subprocess.run([sys.executable, str(script), "--demo", str(tmp_path), "--json", str(out)], timeout=60)
    assert result.returncode == 3  # bench/gpu_check.sh records the step as skipped, not failed
    verdict = json.loads(out.read_text())
    assert verdict["status"] == "skipped" and "No module named 'vllm'" in verdict["reason"]


def test_vllm_vs_hf_compares_the_group_jobs_answers_with_the_demos(tmp_path, monkeypatch):
    """The step's own path on CPU: lm-eval's vLLM model replaced at its import (tests/fake_vllm.py), the demo's
    engine hf files stood in for by the same job's (its adapter's answers those of the base, so that they differ)."""
    import types

    import fake_vllm
    from maple.evaluate.job import evaluate_variant
    from test_vllm_groups import local_task

    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import vllm_vs_hf
    from gpu_demo import demo_task

    fake_vllm.install(monkeypatch)
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(__version__="fake"))
    demo = tmp_path / "demo"
    (demo / "models" / "tiny").mkdir(parents=True)
    (demo / "models" / "tiny" / "config.json").write_text("{}")
    (demo / "adapters" / "r4-q16").mkdir(parents=True)
    (demo / "adapters" / "r4-q16" / "adapter_config.json").write_text("{}")
    held_out = local_task(tmp_path).eval_files["en"]
    (demo / "data" / "demo" / "eval" / "eval_gen").mkdir(parents=True)
    Path(held_out).rename(demo / "data" / "demo" / "eval" / "eval_gen" / "en.jsonl")
    task = vllm_vs_hf.replace(
        demo_task("demo_gen", demo / "data" / "demo" / "eval", ["en"], 3), engine="vllm", lora_rank=8
    )
    for variant in vllm_vs_hf.VARIANTS:  # the demo's arm, as bench/gpu_demo.py writes it
        evaluate_variant(
            model_alias="tiny",
            variant=variant,
            base_source=str(demo / "models" / "tiny"),
            adapter_dir=None,
            bits=16,
            task=task,
            score_files={"en": demo / "scores" / variant / "demo_gen" / "en.json"},
            samples_files={"en": demo / "samples" / variant / "demo_gen" / "en.jsonl"},
        )
    out = tmp_path / "vllm_vs_hf.json"
    assert vllm_vs_hf.main(["--demo", str(demo), "--languages", "en", "--limit", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["status"] == "ran" and result["vllm"] == "fake"
    base, adapter = result["variants"]["base"], result["variants"]["demo-r4-q16"]
    assert base["examples"] == 3 and base["identical_answers"] == 1.0 and base["score_difference"] == 0
    assert adapter["identical_answers"] == 0.0  # the adapter's own answers, not the base's
    assert base["hf_examples_per_s"] > 0 and base["vllm_examples_per_s"] > 0
