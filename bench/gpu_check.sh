#!/usr/bin/env bash
# The GPU check: the CUDA paths the CPU tests cannot reach, in at most 8 minutes on one GPU, one JSON summary on
# stdout and in summary.json (progress on stderr; logs and the benches' JSON under the check's directory).
#
#   bash bench/gpu_check.sh             # on a machine with a CUDA GPU
#   bash bench/gpu_check.sh --dry-run   # the plan, on any machine (CI): nothing runs on a GPU
#
# Steps (each stopped at its budget, and all of them at 8 minutes, so a slow step is reported, not waited for):
#   preflight    nvidia-smi, torch.cuda, bitsandbytes versions
#   demo_dag     the demo DAG on CUDA at bits 4, 8 and 16 (rank 4): bf16 LoRA, NF4 and LLM.int8 QLoRA with paged
#                8-bit AdamW, lm-eval on the GPU; every score's provenance must say device cuda
#   finetune_*   bench/finetune_throughput.py --device cuda --arch llama-2-7b --bits 4 --arms maple: real tokens per
#                second, MFU and peak memory of 4-bit QLoRA of a random-init 7B at sequence length 512 and 2048
#                (packed rows), with and without gradient checkpointing (2 optimiser steps of 8 rows each)
#   eval_overhead  bench/eval_overhead.py --device cuda: measured 7B load (bits 16 and 4) and per-example times in
#                place of its ASSUMED ones
# The budgets below were set without a GPU (none was lent to the session that wrote this script): they are
# estimates, not measurements. A step past its budget shows "timeout" in the summary.
#
# --dry-run prints the plan as the same JSON (dry_run: true, every step "planned" with its command and budget) after
# checking what a CPU machine can: the demo config at bits 4, 8, 16 is written and its DAG dry-run by Snakemake
# (config valid, jobs planned), and the benches accept the options used here.
#
# Environment: PYTHON (default: the repo's .venv/bin/python), GPU_CHECK_DIR (default: a new directory in /tmp).
set -uo pipefail

DRY_RUN=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
    esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
SNAKEMAKE="$(dirname "$PYTHON")/snakemake"
DIR="${GPU_CHECK_DIR:-}"
[[ -n "$DIR" ]] || { DIR="$(mktemp -d /tmp/maple-gpu-check.XXXXXX)"; ((DRY_RUN)) && trap 'rm -rf "$DIR"' EXIT; }
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
TOTAL_BUDGET=480
STEPS="$DIR/steps.tsv"
: >"$STEPS"
START=$SECONDS
PLANNED=0
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PATH="$(dirname "$PYTHON"):$PATH"

log() { echo "[gpu_check] $*" >&2; }

# run_step NAME BUDGET_SECONDS CMD...: run under timeout (at most what is left of the total), record the outcome
run_step() {
    local name="$1" budget="$2"
    shift 2
    local command="$*"
    command="${command//[$'\t\n']/ }"
    local left=$((TOTAL_BUDGET - (SECONDS - START)))
    ((DRY_RUN)) && left=$((TOTAL_BUDGET - PLANNED))
    ((budget > left)) && budget=$left
    PLANNED=$((PLANNED + budget))
    if ((DRY_RUN)); then
        printf '%s\tplanned\t%s\t0\t%s\n' "$name" "$budget" "$command" >>"$STEPS"
        log "plan: $name (budget ${budget}s): $*"
        return 0
    fi
    if ((budget <= 0)); then
        printf '%s\tskipped\t0\t0\t%s\n' "$name" "$command" >>"$STEPS"
        log "$name: skipped (the 8-minute budget is spent)"
        return 1
    fi
    log "$name (budget ${budget}s): $*"
    local t0=$SECONDS status rc
    timeout --kill-after=10 "$budget" "$@" >"$DIR/$name.log" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124 | 137) status=timeout ;;
        *) status=failed ;;
    esac
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$budget" "$((SECONDS - t0))" "$command" >>"$STEPS"
    log "$name: $status (exit $rc) in $((SECONDS - t0))s; log $DIR/$name.log"
    return $rc
}

# --- the demo DAG at bits 4, 8, 16 ----------------------------------------------------------------------------------
DEMO="$DIR/demo"
mkdir -p "$DEMO"
"$PYTHON" - "$REPO/config/config.yaml" "$DEMO/config.yaml" <<'EOF' || exit 1
import sys

import yaml

with open(sys.argv[1], encoding="utf-8") as f:
    config = yaml.safe_load(f)
config["finetune"].update(ranks=[4], bits=[4, 8, 16])
with open(sys.argv[2], "w", encoding="utf-8") as f:
    yaml.safe_dump(config, f, sort_keys=False, allow_unicode=True)
EOF
DEMO_CMD=("$SNAKEMAKE" -s "$REPO/Snakefile" --directory "$DEMO" --configfile "$DEMO/config.yaml" --cores all
    --resources gpu=1)

FT_COMMON=("$PYTHON" "$REPO/bench/finetune_throughput.py" --device cuda --arch llama-2-7b --bits 4 --arms maple
    --repeats 1 --max-steps 2 --batching packed --effective-batch-size 8 --micro-batch-size 2
    --base "$DEMO/results/models/tiny" --train "$DEMO/results/data/demo/train.jsonl" --model-cache "$DIR/ft-model")
EVAL_CMD=("$PYTHON" "$REPO/bench/eval_overhead.py" --device cuda --repeats 1 --examples 16 --tmpdir "$DIR/eval-models"
    --json "$DIR/eval_overhead.json")

if ((DRY_RUN)); then
    # What a CPU machine can check: the config validates and its DAG plans; the benches take these options.
    "${DEMO_CMD[@]}" -n --quiet rules >"$DIR/demo_dag_dry_run.log" 2>&1 || {
        cat "$DIR/demo_dag_dry_run.log" >&2
        log "the demo DAG at bits 4, 8, 16 does not dry-run"
        exit 1
    }
    for bench in finetune_throughput eval_overhead; do
        "$PYTHON" "$REPO/bench/$bench.py" --help >"$DIR/$bench.help" 2>&1 || { cat "$DIR/$bench.help" >&2; exit 1; }
    done
    for option in --device --arch --bits --arms --repeats --max-steps --batching --effective-batch-size \
        --micro-batch-size --base --train --model-cache --max-seq-length --gradient-checkpointing \
        --no-gradient-checkpointing --json; do
        grep -q -- "$option\b" "$DIR/finetune_throughput.help" || { log "finetune_throughput.py lacks $option"; exit 1; }
    done
    for option in --device --repeats --examples --tmpdir --json; do
        grep -q -- "$option\b" "$DIR/eval_overhead.help" || { log "eval_overhead.py lacks $option"; exit 1; }
    done
fi

cat >"$DIR/preflight.py" <<'PREFLIGHT'
import json
import subprocess

import torch

assert torch.cuda.is_available(), "torch sees no CUDA device"
import bitsandbytes  # noqa: E402

query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
print(
    json.dumps(
        {
            "gpu": torch.cuda.get_device_name(),
            "nvidia_smi": subprocess.run(query, capture_output=True, text=True).stdout.strip(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "bitsandbytes": bitsandbytes.__version__,
        }
    )
)
PREFLIGHT
run_step preflight 20 "$PYTHON" "$DIR/preflight.py"
PREFLIGHT_OK=$?
if ((!DRY_RUN && PREFLIGHT_OK != 0)); then
    log "no usable CUDA GPU here: the GPU steps are not run (see $DIR/preflight.log)"
else
    run_step demo_dag 170 "${DEMO_CMD[@]}"
    run_step finetune_s512 75 "${FT_COMMON[@]}" --max-seq-length 512 --no-gradient-checkpointing --json "$DIR/ft-s512.json"
    run_step finetune_s512_gc 35 "${FT_COMMON[@]}" --max-seq-length 512 --gradient-checkpointing --json "$DIR/ft-s512-gc.json"
    run_step finetune_s2048 35 "${FT_COMMON[@]}" --max-seq-length 2048 --no-gradient-checkpointing --json "$DIR/ft-s2048.json"
    run_step finetune_s2048_gc 35 "${FT_COMMON[@]}" --max-seq-length 2048 --gradient-checkpointing --json "$DIR/ft-s2048-gc.json"
    ((DRY_RUN)) || rm -rf "$DIR/ft-model"  # 13 GB of random weights
    run_step eval_overhead 105 "${EVAL_CMD[@]}"
fi

# --- the one JSON summary -------------------------------------------------------------------------------------------
"$PYTHON" - "$DIR" "$DRY_RUN" "$((SECONDS - START))" "$TOTAL_BUDGET" <<'EOF'
import csv
import glob
import json
import os
import sys

directory, dry_run, seconds, budget = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), int(sys.argv[4])


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def last_json_line(path):
    try:
        lines = [line for line in open(path, encoding="utf-8") if line.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def demo_figures():
    demo = os.path.join(directory, "demo")
    scores = [read_json(p) for p in glob.glob(f"{demo}/results/scores/**/*.json", recursive=True)]
    scores = [s for s in scores if s]
    if not scores:
        return None
    prov = [s["provenance"] for s in scores]
    finetune_s = {}
    for path in glob.glob(f"{demo}/benchmarks/finetune/**/*.tsv", recursive=True):
        with open(path, encoding="utf-8") as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        finetune_s[os.path.basename(path)[: -len(".tsv")]] = float(row["s"])
    return {
        "score_files": len(scores),
        "devices": sorted({str(p.get("device")) for p in prov}),
        "dtypes": sorted({str(p.get("dtype")) for p in prov}),
        "bits": sorted({p.get("bits") for p in prov if p.get("bits") is not None}),
        "all_on_cuda": all(p.get("device") == "cuda" for p in prov),
        "finetune_seconds": finetune_s,
        "mean_score_by_variant": {
            v: sum(s["value"] for s in scores if s["variant"] == v and s["value"] is not None)
            / max(1, sum(1 for s in scores if s["variant"] == v and s["value"] is not None))
            for v in sorted({s["variant"] for s in scores})
        },
    }


def finetune_figures(name):
    data = read_json(os.path.join(directory, name))
    if not data:
        return None
    run = data["arms"]["maple"]["runs"][0]  # bench/finetune_throughput.py's --json layout
    keep = ("real_tokens_per_second", "mfu", "peak_memory_bytes", "loop_seconds", "steps", "micro_batch")
    peak = (data.get("bf16_peak") or {}).get("flops_per_second", 0)
    return {k: run.get(k) for k in keep} | {"bf16_peak_tflops": peak / 1e12}


figures = {
    "preflight": lambda: last_json_line(os.path.join(directory, "preflight.log")),
    "demo_dag": demo_figures,
    "finetune_s512": lambda: finetune_figures("ft-s512.json"),
    "finetune_s512_gc": lambda: finetune_figures("ft-s512-gc.json"),
    "finetune_s2048": lambda: finetune_figures("ft-s2048.json"),
    "finetune_s2048_gc": lambda: finetune_figures("ft-s2048-gc.json"),
    "eval_overhead": lambda: read_json(os.path.join(directory, "eval_overhead.json")),
}
steps = []
with open(os.path.join(directory, "steps.tsv"), encoding="utf-8") as f:
    for name, status, step_budget, step_seconds, command in csv.reader(f, delimiter="\t"):
        step = {"name": name, "status": status, "budget_s": int(step_budget)}
        if dry_run:
            step["command"] = command
        else:
            step["seconds"] = int(step_seconds)
            step["log"] = os.path.join(directory, f"{name}.log")
            step["figures"] = figures[name]() if name in figures else None
            if status != "ok":
                try:
                    tail = open(step["log"], encoding="utf-8", errors="replace").read().strip().splitlines()[-3:]
                except OSError:
                    tail = []
                step["log_tail"] = tail
        steps.append(step)
def planned_jobs(path):
    """Rule -> job count from the `snakemake -n --quiet rules` table."""
    counts = {}
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        return counts
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "count"):
            counts[parts[0]] = int(parts[1])
    return counts


summary = {
    "gpu_check": "dry run: nothing ran on a GPU; the budgets are estimates" if dry_run else "ran",
    "dry_run": dry_run,
    "directory": directory,
    "budget_s": budget,
    "planned_budget_s": sum(s["budget_s"] for s in steps),
    "seconds": seconds,
    "ok": (not dry_run) and bool(steps) and all(s["status"] == "ok" for s in steps),
    "steps": steps,
}
if dry_run:
    summary["checked_here"] = {
        "demo_dag_jobs_at_bits_4_8_16": planned_jobs(os.path.join(directory, "demo_dag_dry_run.log")),
        "bench_options": "accepted by finetune_throughput.py and eval_overhead.py (--help)",
    }
text = json.dumps(summary, indent=1, default=str)
with open(os.path.join(directory, "summary.json"), "w", encoding="utf-8") as f:  # kept beside the benches' JSON
    f.write(text + "\n")
print(text)
sys.exit(0 if dry_run or summary["ok"] else 1)
EOF
