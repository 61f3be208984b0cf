#!/usr/bin/env bash
# A venv for the evaluation jobs of tasks with engine: vllm (evaluation.tasks.<task>.engine), on a CUDA machine:
# vLLM with its own torch, then lm-eval and what the evaluation job imports at requirements.lock's pins (the same as
# envs/vllm.yaml). Usage: bash envs/setup_vllm.sh [VENV_DIR]   (default .venv-vllm), then run snakemake from it.
# Not yet run by this repository: bench/gpu_check.sh is where it is to be checked on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-vllm}"
PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q "vllm==0.33.0"
pins=$(sed -n '/- pip:/,$p' envs/vllm.yaml | sed -n 's/^ *- \([A-Za-z_].*==.*\)$/\1/p' | grep -v '^vllm==')
# snakemake and the rest of the workflow's own requirements at the lock's pins, leaving torch and transformers to vLLM
"$VENV/bin/python" -m pip install -q $pins $(grep -iE '^(snakemake|snakemake-executor-plugin-slurm)==' requirements.lock)
"$VENV/bin/python" -c "import vllm, lm_eval.models.vllm_causallms, peft; print('vllm', vllm.__version__, 'lm_eval vllm model ok')"
