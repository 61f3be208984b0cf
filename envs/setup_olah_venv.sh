#!/usr/bin/env bash
# Create .venv-olah with olah, the hub mirror server the tests start on loopback (tests/hub_server.py), pinned in
# envs/olah.txt. A venv of its own: olah's dependencies pin psutil<6, requirements.lock psutil 7 (snakemake); the
# server is a separate process, so the two never meet. Usage: bash envs/setup_olah_venv.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-olah}"
PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --no-deps -r envs/olah.txt
"$VENV/bin/python" -m pip check
"$VENV/bin/olah-cli" --help >/dev/null
echo "olah: $VENV/bin/olah-cli"
