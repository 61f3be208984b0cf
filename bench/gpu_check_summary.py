"""The GPU check's summary (bench/gpu_check.sh): summary.json, the throughput table the cost estimate reads, with
each step's outcome and time; check.log and benches.json beside it. docs/gpu-check.md documents every key.

  python bench/gpu_check_summary.py --work WORK --out OUT --rehearse 0 --seconds 300 --budget 420
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

FINETUNES = {"16": "finetune_q16", "8": "finetune_q8", "4": "finetune_q4"}
BENCHES = (
    "merge_eval",
    "vllm_vs_hf",
    "finetune_q16",
    "finetune_q8",
    "finetune_q4",
    "finetune_q4_s2048",
    "throughput",
)


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def last_json_line(path: Path):
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def finetune_run(benches: dict, name: str) -> dict | None:
    data = benches.get(name)
    if not data:
        return None
    run = data["arms"]["maple"]["runs"][0]  # bench/finetune_throughput.py's --json layout
    return run | {"bf16_peak_flops": (data.get("bf16_peak") or {}).get("flops_per_second")}


# The keys of the cost estimate's throughput table (maple.cost.throughput.DEFAULT_THROUGHPUT) that
# bench/throughput_check.py measures, under the same names and units.
MEASURED_KEYS = (
    "model_params_b",
    "kv_bytes_per_token",
    "small_model_params_b",
    "prefill_tokens_per_s",
    "small_prefill_tokens_per_s",
    "prefill_slowdown",
    "decode_slowdown",
    "decode_step_s",
    "small_decode_step_s",
    "decode_batch",
    "decode_context",
    "startup_s",
    "load_s",
    "small_load_s",
    "task_index_s",
    "task_setup_s",
)
FINETUNE_RATE = {"wall": "steady_real_tokens_per_second", "cpu": "real_tokens_per_cpu_second"}


def cost_table(
    measured: dict | None, finetunes: dict, small_finetunes: dict | None = None, clock: str = "wall"
) -> dict:
    """The throughput table in the estimate's keys and units: bench/throughput_check.py's figures, and the finetune
    steps' tokens per second by bits (the large model's; small_finetunes: the small model's, where measured). A figure
    not measured (a step failed or did not run) is None: the estimate keeps its default for it and says so."""
    measured = measured or {}
    table = {key: measured.get(key) for key in MEASURED_KEYS}

    def rates(runs):
        return {b: (finetune_run({b: r}, b) or {}).get(FINETUNE_RATE[clock]) for b, r in (runs or {}).items()}

    table["finetune_tokens_per_s"] = rates(finetunes)
    table["small_finetune_tokens_per_s"] = rates(small_finetunes) if small_finetunes else None
    return table


def throughput(benches: dict, settings: dict) -> dict:
    """The cost estimate's table (cost_table) and, beside it, what the finetune and merge steps showed."""
    runs = {bits: finetune_run(benches, name) for bits, name in FINETUNES.items()}
    long = finetune_run(benches, "finetune_q4_s2048")
    peak = next((r["bf16_peak_flops"] for r in runs.values() if r and r["bf16_peak_flops"]), None)
    merge = benches.get("merge_eval") or {}
    agreement = (merge.get("agreement") or [{}])[0]
    return {
        **cost_table(benches.get("throughput"), {b: benches.get(name) for b, name in FINETUNES.items()}),
        "arch": settings["arch"],
        "finetune_seq_len": settings["seq"],
        "finetune_micro_batch": settings["micro"],
        "mfu": {b: runs[b] and runs[b].get("steady_mfu") for b in ("16", "4")},
        "bf16_peak_tflops": peak / 1e12 if peak else None,
        "peak_allocated_bytes": {b: r and r.get("peak_memory_bytes") for b, r in runs.items()},
        "q4_seq2048_micro_batch": settings["micro_long"],
        "q4_seq2048_tokens_per_s": long and long.get("steady_real_tokens_per_second"),
        "q4_seq2048_peak_reserved_bytes": long and long.get("peak_reserved_bytes"),
        "merged_vs_unmerged_16bit": {
            "within_tolerance": agreement.get("within_tolerance"),
            "max_score_difference": agreement.get("max_score_difference"),
            "max_loglik_difference": agreement.get("max_loglik_difference"),
            "tolerance": merge.get("tolerance"),
        },
    }


def step_ok(step: dict, rehearse: bool, vllm: dict) -> bool:
    """A step counts against the check unless it ran, or was skipped for want of what it needs: the wheels (in the
    rehearsal), vLLM (vllm_vs_hf said so itself)."""
    if step["status"] == "ok":
        return True
    if step["status"] != "skipped":
        return False
    return (rehearse and step["name"] == "install") or (step["name"] == "vllm_vs_hf" and vllm["status"] == "skipped")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rehearse", type=int, default=0)
    parser.add_argument("--seconds", type=int, required=True)
    parser.add_argument("--budget", type=int, required=True)
    args = parser.parse_args(argv)
    work, rehearse = args.work, bool(args.rehearse)

    steps = []
    with open(work / "steps.tsv", encoding="utf-8") as f:
        for name, status, budget, seconds, cpu, command in csv.reader(f, delimiter="\t"):
            step = {
                "name": name,
                "status": status,
                "budget_s": int(budget),
                "seconds": int(seconds),
                "cpu_seconds": int(cpu),
                "command": command,
            }
            if status not in ("ok", "skipped"):
                log = work / f"{name}.log"
                step["log_tail"] = log.read_text(errors="replace").strip().splitlines()[-5:] if log.exists() else []
            steps.append(step)
    benches = {name: read_json(work / f"{name}.json") for name in BENCHES}
    settings = {
        "arch": "llama-smoke" if rehearse else "llama-2-7b",
        "seq": 64 if rehearse else 512,
        "micro": 4 if rehearse else 16,
        "micro_long": 1 if rehearse else 4,
    }
    for name in FINETUNES.values():  # what the runs themselves say, where they ran
        settings_run = (benches.get(name) or {}).get("settings") or {}
        settings["arch"] = settings_run.get("arch", settings["arch"])
    vllm = benches.get("vllm_vs_hf") or {"status": "not run", "reason": "an earlier step failed or the budget ran out"}
    summary = {
        "gpu_check": "rehearsal: smoke sizes on a CPU, figures are not GPU figures" if rehearse else "ran",
        "rehearsal": rehearse,
        "ok": bool(steps) and all(step_ok(s, rehearse, vllm) for s in steps),
        "budget_s": args.budget,
        "seconds": args.seconds,
        "steps": steps,
        "device": last_json_line(work / "bitsandbytes.log"),
        "throughput": throughput(benches, settings),
        "demo": last_json_line(work / "demo.log"),
        "vllm_vs_hf": vllm,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=1, default=str)
    (args.out / "summary.json").write_text(text + "\n", encoding="utf-8")
    (args.out / "benches.json").write_text(json.dumps(benches, default=str) + "\n", encoding="utf-8")
    shutil.copyfile(work / "check.log", args.out / "check.log")
    print(text)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
