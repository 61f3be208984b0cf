"""bench/gpu_check.sh --dry-run: the plan of the GPU check, on a CPU machine (CI). Nothing runs on a GPU; the
dry run validates the demo config at bits 4, 8, 16 (Snakemake dry run) and the benches' options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_gpu_check_dry_run_prints_the_plan(tmp_path):
    check_dir = tmp_path / "check"
    result = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "GPU_CHECK_DIR": str(check_dir), "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True and "nothing ran on a GPU" in plan["gpu_check"]
    assert plan["planned_budget_s"] <= plan["budget_s"] == 480  # at most 8 minutes on one GPU
    steps = {step["name"]: step for step in plan["steps"]}
    assert all(step["status"] == "planned" for step in steps.values())
    assert list(steps) == [
        "preflight",
        "demo_dag",
        "finetune_s512",
        "finetune_s512_gc",
        "finetune_s2048",
        "finetune_s2048_gc",
        "eval_overhead",
    ]
    assert "--resources gpu=1" in steps["demo_dag"]["command"]
    # the demo DAG at bits 4, 8 and 16: one finetune per bits, dry-run by Snakemake here
    jobs = plan["checked_here"]["demo_dag_jobs_at_bits_4_8_16"]
    assert jobs["finetune"] == 3 and jobs["evaluate_demo_mc"] == 4, jobs
    config = (check_dir / "demo" / "config.yaml").read_text()
    assert "- 8" in config and "- 4" in config and "- 16" in config
    for name, seq, gc in (
        ("finetune_s512", 512, False),
        ("finetune_s512_gc", 512, True),
        ("finetune_s2048", 2048, False),
        ("finetune_s2048_gc", 2048, True),
    ):
        command = steps[name]["command"].split()
        assert Path(command[1]).name == "finetune_throughput.py"
        for option in ("--device cuda", "--arch llama-2-7b", "--bits 4", f"--max-seq-length {seq}"):
            assert option in steps[name]["command"], (name, option)
        assert ("--gradient-checkpointing" if gc else "--no-gradient-checkpointing") in command
    assert "eval_overhead.py --device cuda" in steps["eval_overhead"]["command"]
