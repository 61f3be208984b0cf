#!/usr/bin/env bash
# The GPU check: the CUDA paths the CPU tests cannot reach, on one GPU within its budget, one JSON summary
# (summary.json) with the throughput table the cost estimate reads (docs/gpu-check.md: its keys, each step's budget).
#
#   bash bench/gpu_check.sh OUT_DIR                       # on the GPU machine (its python3, the wheels in .whl/)
#   bash bench/gpu_check.sh --rehearse OUT_DIR            # every step at smoke size on a CPU, the same commands
#   bash bench/gpu_check.sh --keep-going OUT_DIR          # a failed step does not stop the ones after it
#
# OUT_DIR gets three files: summary.json, check.log (every step's output) and benches.json (the benches' own JSON).
# Steps, each under its budget (seconds on the GPU; the whole check under TOTAL_BUDGET):
#   install       the carried wheels (.whl/, bench/build_carry.sh) installed beside the machine's torch
#   bitsandbytes  a Linear4bit and a Linear8bitLt forward on the device (bench/bnb_check.py)
#   demo          tiny model, data, LoRA finetunes at bits 4, 8, 16 and their evaluations (bench/gpu_demo.py)
#   merge_eval    the 16-bit adapter evaluated merged and unmerged: agreement within bf16's tolerance
#   vllm_vs_hf    the demo's generation task on engine vllm (the adapter a LoRA request) against the demo's engine hf:
#                 examples/s, identical answers, score difference; `skipped` where vLLM cannot be imported
#   finetune_q16, finetune_q8, finetune_q4   7B-shaped LoRA / QLoRA: steady tokens/s and MFU (warm-up step left out)
#   finetune_q4_s2048  4-bit at sequence length 2048: peak reserved memory
#   throughput    the estimate's evaluation figures in its units (bench/throughput_check.py): start-up, loads,
#                 prefill tokens/s, decode step seconds at a batch and context, slowdowns at 4 and 8 bits, lm-eval's
#                 set-up per job and per language; on the 7B-shaped model (large) and the demo's tiny one (small)
# The rehearsal runs the same steps with the same files and JSON keys on a CPU at smoke size (a tiny model of the 7B's
# architecture); install there only checks that the wheels install for Python 3.12 (when .whl/ holds any).
#
# Environment: PYTHON (default: python3 on the GPU, the repo's .venv/bin/python in the rehearsal), GPU_CHECK_WORK
# (the working directory: models, data, logs; default a new one in /tmp).
set -uo pipefail

REHEARSE=0
KEEP_GOING=0
OUT=""
for arg in "$@"; do
    case "$arg" in
        --rehearse) REHEARSE=1 ;;
        --keep-going) KEEP_GOING=1 ;;
        -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
        -*) echo "usage: $0 [--rehearse] [--keep-going] OUT_DIR" >&2; exit 2 ;;
        *) OUT="$arg" ;;
    esac
done
[[ -n "$OUT" ]] || { echo "usage: $0 [--rehearse] [--keep-going] OUT_DIR" >&2; exit 2; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="${GPU_CHECK_WORK:-$(mktemp -d /tmp/maple-gpu-check.XXXXXX)}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
TOTAL_BUDGET=420
# The rehearsal's timeouts: each budget times this (a shared CPU is slower than the GPU at some steps); the budgets
# themselves are the GPU's and are reported as such.
TIME_FACTOR=1
if ((REHEARSE)); then
    TIME_FACTOR=6
    PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
    DEVICE=cpu ARCH=llama-smoke SMOKE=--smoke
    SEQ=64 MICRO=4 SEQ_LONG=128 MICRO_LONG=1 LIMIT=4 LANGUAGES=en,sw EVAL_BATCH=4 EVAL_CONTEXT=64
    export CUDA_VISIBLE_DEVICES=""
else
    PYTHON="${PYTHON:-python3}"
    DEVICE=cuda ARCH=llama-2-7b SMOKE=""
    # the study's micro-batch (config/maple.yaml: 16 x 512 tokens); at 2048 the same 8192 tokens per micro-batch
    SEQ=512 MICRO=16 SEQ_LONG=2048 MICRO_LONG=4 LIMIT=20 LANGUAGES=en,de,ru,zh,ar,hi,sw EVAL_BATCH=32 EVAL_CONTEXT=512
fi
STEPS="$WORK/steps.tsv"
: >"$STEPS"
: >"$WORK/check.log"
START=$SECONDS
FAILED=0
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

log() { echo "[gpu_check] $*" >&2; }

# CPU seconds (user + system) of this script's finished child processes so far
# (`times` is run by this shell itself, its output read from a file: a subshell would count its own children only)
child_cpu() {
    times >"$WORK/.times"
    awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%d", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' \
        "$WORK/.times"
}

# run_step NAME BUDGET_SECONDS CMD...: under timeout (at most what is left of the total), outcome and time recorded
run_step() {
    local name="$1" budget="$2"
    shift 2
    local command="$*" left=$((TOTAL_BUDGET * TIME_FACTOR - (SECONDS - START))) limit
    command="${command//[$'\t\n']/ }"
    limit=$((budget * TIME_FACTOR))
    ((limit > left)) && limit=$left
    if ((FAILED && !KEEP_GOING)) || ((limit <= 0)); then
        printf '%s\tskipped\t%s\t0\t0\t%s\n' "$name" "$budget" "$command" >>"$STEPS"
        log "$name: skipped ($( ((limit <= 0)) && echo 'the budget is spent' || echo 'an earlier step failed; --keep-going runs it'))"
        return 1
    fi
    log "$name (budget ${budget}s): $command"
    local t0=$SECONDS c0 status rc cpu
    child_cpu >"$WORK/.cpu0"
    c0=$(cat "$WORK/.cpu0")
    timeout --kill-after=10 "$limit" "$@" >"$WORK/$name.log" 2>&1
    rc=$?
    child_cpu >"$WORK/.cpu1"
    cpu=$(($(cat "$WORK/.cpu1") - c0))
    case $rc in
        0) status=ok ;;
        3) status=skipped ;; # the step found nothing to run here (vllm_vs_hf without vLLM): its JSON says why
        124 | 137) status=timeout ;;
        *) status=failed ;;
    esac
    ((rc == 0 || rc == 3)) || FAILED=1
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$budget" "$((SECONDS - t0))" "$cpu" "$command" >>"$STEPS"
    { echo "===== $name: $status (exit $rc) in $((SECONDS - t0))s: $command"; cat "$WORK/$name.log"; } >>"$WORK/check.log"
    log "$name: $status (exit $rc) in $((SECONDS - t0))s, ${cpu} CPU s (budget ${budget}s)"
    return $rc
}

# --- install: the carried wheels beside the machine's torch ---------------------------------------------------------
shopt -s nullglob
WHEELS=("$REPO"/.whl/*.whl)
INSTALL=("$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site"
    --only-binary=:all: --implementation cp --python-version 3.12 --platform manylinux_2_28_x86_64
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 "${WHEELS[@]}")
if ((${#WHEELS[@]})); then
    run_step install 15 "${INSTALL[@]}"
    # on the GPU the check imports them from there; the rehearsal's Python (not 3.12) keeps its own
    ((REHEARSE)) || export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
elif ((REHEARSE)); then
    printf 'install\tskipped\t15\t0\t0\tno wheels in .whl/ (bench/build_carry.sh builds them)\n' >>"$STEPS"
    log "install: skipped (no wheels in .whl/; bench/build_carry.sh builds them)"
else
    run_step install 15 false "no wheels in $REPO/.whl: run bench/build_carry.sh and carry .whl"
fi

# --- the steps ------------------------------------------------------------------------------------------------------
FT=("$PYTHON" "$REPO/bench/finetune_throughput.py" --device "$DEVICE" --arch "$ARCH" --arms maple --repeats 1
    --max-steps 3 --warmup-steps 1 --batching packed --base "$WORK/demo/models/tiny"
    --train "$WORK/demo/data/demo/train.jsonl" --model-cache "$WORK/ft-model" --no-gradient-checkpointing)
run_step bitsandbytes 20 "$PYTHON" "$REPO/bench/bnb_check.py" --device "$DEVICE"
run_step demo 90 "$PYTHON" "$REPO/bench/gpu_demo.py" --out "$WORK/demo" --limit "$LIMIT" --epochs 1 $SMOKE
run_step merge_eval 35 "$PYTHON" "$REPO/bench/merge_eval.py" --device "$DEVICE" --base "$WORK/demo/models/tiny" \
    --adapter "$WORK/demo/adapters/r4-q16" --eval-dir "$WORK/demo/data/demo/eval" --prompt-format plain \
    --languages "$LANGUAGES" --limit "$LIMIT" --repeats 1 --batch-size 16 --json "$WORK/merge_eval.json"
run_step vllm_vs_hf 30 "$PYTHON" "$REPO/bench/vllm_vs_hf.py" --demo "$WORK/demo" --languages "$LANGUAGES" \
    --limit "$LIMIT" --json "$WORK/vllm_vs_hf.json"
run_step finetune_q16 35 "${FT[@]}" --bits 16 --max-seq-length "$SEQ" --micro-batch-size "$MICRO" \
    --effective-batch-size "$MICRO" --json "$WORK/finetune_q16.json"
run_step finetune_q8 50 "${FT[@]}" --bits 8 --max-seq-length "$SEQ" --micro-batch-size "$MICRO" \
    --effective-batch-size "$MICRO" --json "$WORK/finetune_q8.json"
run_step finetune_q4 35 "${FT[@]}" --bits 4 --max-seq-length "$SEQ" --micro-batch-size "$MICRO" \
    --effective-batch-size "$MICRO" --json "$WORK/finetune_q4.json"
run_step finetune_q4_s2048 35 "${FT[@]}" --bits 4 --max-seq-length "$SEQ_LONG" --micro-batch-size "$MICRO_LONG" \
    --effective-batch-size "$MICRO_LONG" --json "$WORK/finetune_q4_s2048.json"
run_step throughput 75 "$PYTHON" "$REPO/bench/throughput_check.py" --device "$DEVICE" --small "$WORK/demo/models/tiny" \
    --large "$WORK/ft-model/$ARCH" --eval-dir "$WORK/demo/data/demo/eval" --languages "$LANGUAGES" --batch "$EVAL_BATCH" \
    --context "$EVAL_CONTEXT" --repeats 2 --json "$WORK/throughput.json"
rm -rf "$WORK/ft-model"  # 13 GB of random weights on the GPU machine

# --- the one JSON summary -------------------------------------------------------------------------------------------
"$PYTHON" "$REPO/bench/gpu_check_summary.py" --work "$WORK" --out "$OUT" --rehearse "$REHEARSE" \
    --seconds "$((SECONDS - START))" --budget "$TOTAL_BUDGET"
