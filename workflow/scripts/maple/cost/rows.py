"""One row of the estimate (results/plan/estimate.csv) and a job's SLURM runtime from it."""

from __future__ import annotations

import math

RUNTIME_FLOOR_MINUTES = 10  # the shortest SLURM runtime a job asks for (start-up, queue-side accounting)


def job_row(stage, model, variant, task, job, parts, examples, tokens, seconds, kind) -> dict:
    return {
        "stage": stage,
        "kind": kind,
        "model": model,
        "variant": variant,
        "task": task,
        "job": job,
        "parts": " ".join(parts),
        "examples": int(round(examples)),
        "tokens": int(round(tokens)),
        "gpu_seconds": round(seconds, 1),
    }


def runtime_minutes(seconds: float, margin: float) -> int:
    """A job's SLURM runtime: its estimate times the margin, in whole minutes, at least RUNTIME_FLOOR_MINUTES."""
    return max(math.ceil(seconds * margin / 60), RUNTIME_FLOOR_MINUTES)
