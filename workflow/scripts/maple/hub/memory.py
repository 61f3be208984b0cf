"""The GPU-memory check of preflight: a model's parameter count and the memory it needs at each bit-width."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

# Bytes per parameter of the base at each bit-width, and the margin on top of the weights for the LoRA weights, their
# optimiser state, activations and the CUDA context: a lower bound, not a forecast (docs/gpus-slurm-offline.md,
# "Preflight").
BYTES_PER_PARAMETER = {4: 0.5, 8: 1.0, 16: 2.0}
MEMORY_MARGIN = 1.2
CUDA_CONTEXT_GIB = 1.0


def local_parameter_count(directory: str) -> int | None:
    """Parameters of a local model from its safetensors headers (no weights read)."""
    files = sorted(Path(directory).glob("*.safetensors")) if os.path.isdir(directory) else []
    if not files:
        return None
    total = 0
    for path in files:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        for name, tensor in header.items():
            if name != "__metadata__":
                count = 1
                for dim in tensor["shape"]:
                    count *= dim
                total += count
    return total


def memory_lines(model: dict, parameters: int | None, available: float | None, out) -> None:
    """GPU memory a model needs at each bit-width (a lower bound) against what a job gets, where known; report lines
    and problems appended to out (maple.hub.preflight.Outcome)."""
    what = f"models.{model['alias']}"
    if parameters is None:
        out.report.append(f"mem  {what}: parameter count unknown; GPU memory not checked")
        return
    for bits in model["bits"]:
        need = parameters * BYTES_PER_PARAMETER[bits] * MEMORY_MARGIN / 2**30 + CUDA_CONTEXT_GIB
        line = f"{what} at {bits} bits needs at least {need:.1f} GiB ({parameters / 1e9:.2f}e9 parameters)"
        if available is None:
            out.report.append(f"mem  {line}; the jobs' GPU memory is unknown (preflight.gpu_memory_gib)")
        elif need > available:
            out.problems.append(f"{line}, more than the {available:g} GiB a job gets (preflight.gpu_memory_gib)")
        else:
            out.report.append(f"mem  {line}; a job gets {available:g} GiB")
