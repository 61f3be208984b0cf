#!/usr/bin/env bash
# The wheels the GPU machine lacks, built here into .whl/ (git-ignored) for bench/gpu_check.sh to install there
# (`pip install --no-index --no-deps --target`, beside the machine's own torch): cp312 manylinux x86_64 wheels at
# the versions of requirements.lock, within the 64 MiB a device call carries. Needs PyPI; prints each wheel's size.
#
#   bash bench/build_carry.sh            # then: carry .whl with bench/gpu_check.sh (docs/gpu-check.md)
#
# The machine has Python 3.12, torch 2.11 (CUDA 13.0), transformers 5.17, peft, accelerate, numpy, pandas, pyarrow,
# scikit-learn, sacrebleu ... (its image's package list). Carried: bitsandbytes (cut to its CUDA 13.0 and CPU
# libraries), trl, datasets, lm_eval and what they import that the machine lacks, and transformers 5.23 and peft
# 0.21 (the versions the workflow is tested with, in place of the machine's: no code path runs untested there), with
# regex and fsspec at versions they and datasets accept. The machine's huggingface_hub (1.33), tokenizers (0.23.2),
# safetensors and accelerate meet transformers 5.23's bounds and stay; pyarrow (a 40 MiB wheel) stays too.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
DEST="$REPO/.whl"
LIMIT_BYTES=$((64 * 1024 * 1024))
# pure Python or cp312 wheels on PyPI
BINARY=(bitsandbytes transformers peft trl datasets lm_eval evaluate dill multiprocess pytablewriter DataProperty
    mbstrdecoder pathvalidate tabledata tcolorpy typepy chardet more-itertools regex nltk fsspec)
# sdists only on PyPI (pure Python): built into wheels here
SOURCE=(rouge_score sqlitedict word2number)

pin() {  # NAME -> NAME==VERSION from requirements.lock (names compared as pip does: case, - _ . alike)
    local want line
    want="$(echo "$1" | tr 'A-Z_.' 'a-z--')"
    while IFS= read -r line; do
        [[ "$(echo "${line%%==*}" | tr 'A-Z_.' 'a-z--')" == "$want" ]] && { echo "$line"; return; }
    done <"$REPO/requirements.lock"
    echo "no pin of $1 in requirements.lock" >&2
    exit 1
}

rm -rf "$DEST"
mkdir -p "$DEST"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$DEST" $(for name in "${BINARY[@]}"; do pin "$name"; done)
"$PYTHON" -m pip wheel -q --no-deps -w "$DEST" $(for name in "${SOURCE[@]}"; do pin "$name"; done)

# bitsandbytes: its CUDA 13.0 library (the machine's torch is cu130) and the CPU one, the RECORD rewritten to match
"$PYTHON" - "$DEST" <<'PY'
import csv
import io
import pathlib
import re
import sys
import zipfile

(wheel,) = pathlib.Path(sys.argv[1]).glob("bitsandbytes-*.whl")
keep = re.compile(r"libbitsandbytes_(cuda130|cpu)\.so$")
trimmed = wheel.with_suffix(".trim")
with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(trimmed, "w", zipfile.ZIP_DEFLATED) as dst:
    dropped = {n for n in src.namelist() if n.endswith(".so") and not keep.search(n)}
    for info in src.infolist():
        if info.filename in dropped:
            continue
        data = src.read(info.filename)
        if info.filename.endswith(".dist-info/RECORD"):
            rows = [r for r in csv.reader(io.StringIO(data.decode())) if r and r[0] not in dropped]
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(rows)
            data = out.getvalue().encode()
        dst.writestr(info, data)
trimmed.replace(wheel)
print(f"bitsandbytes: left out {len(dropped)} libraries ({', '.join(sorted(p.rsplit('/', 1)[-1] for p in dropped))})")
PY

total=0
for wheel in "$DEST"/*.whl; do
    size=$(stat -c %s "$wheel")
    total=$((total + size))
    printf '%10.2f MiB  %s\n' "$(echo "$size / 1048576" | bc -l)" "$(basename "$wheel")"
done
printf '%10.2f MiB  in all (%d wheels; the limit of a device call: 64 MiB with the working tree)\n' \
    "$(echo "$total / 1048576" | bc -l)" "$(ls "$DEST"/*.whl | wc -l)"
((total <= LIMIT_BYTES)) || { echo "over 64 MiB" >&2; exit 1; }
