"""Resumable finetune runs: a work directory beside the adapter, `<adapter>.work/run-<fingerprint>/`, keyed on a hash of
everything that determines the result, whose checkpoints a rerun or a retry resumes from (docs/reruns-and-faults.md,
"After a crash or a kill")."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from maple.runtime.provenance import file_sha256
from maple.train.params import FinetuneParams

CHECKPOINT_MARKER = "maple_checkpoint_complete.json"
# Params that change how fast a run goes (or how often it is saved) but not what it computes: they may differ
# between a killed run and the rerun that resumes it.
NOT_IN_FINGERPRINT = ("micro_batch_size", "checkpoint_steps")


def _base_identity(source: str, revision: str) -> dict:
    """A local base: name, size and mtime of its files (cheap; a rebuilt model changes them). A hub id: id and
    revision."""
    if os.path.isdir(source):
        files = sorted(p for p in Path(source).rglob("*") if p.is_file())
        return {
            "path": os.path.abspath(source),
            "files": [[str(p.relative_to(source)), p.stat().st_size, p.stat().st_mtime_ns] for p in files],
        }
    return {"hub_id": source, "revision": revision}


def run_fingerprint(base_source: str, train_file: str | os.PathLike, params: FinetuneParams) -> str:
    """Hash of what determines a training run; a checkpoint is resumed only by a run with the same fingerprint."""
    from importlib.metadata import version

    fields = {k: v for k, v in asdict(params).items() if k not in NOT_IN_FINGERPRINT}
    key = {
        "params": fields,
        "train_sha256": file_sha256(train_file),
        "base": _base_identity(base_source, params.revision),
        "versions": {p: version(p) for p in ("torch", "transformers", "trl", "peft")},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def work_dir_for(adapter_dir: str | os.PathLike) -> Path:
    adapter_dir = Path(adapter_dir)
    return adapter_dir.with_name(adapter_dir.name + ".work")


def checkpoint_step(path: Path) -> int:
    try:
        return int(path.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def prepare_run_dir(adapter_dir: str | os.PathLike, fingerprint: str) -> tuple[Path, Path | None]:
    """(run directory, newest complete checkpoint or None). Removes run directories of other fingerprints (stale:
    other params, data or base) and checkpoints whose save never finished."""
    work = work_dir_for(adapter_dir)
    run_dir = work / f"run-{fingerprint}"
    if work.exists():
        for other in work.iterdir():
            if other != run_dir:
                print(f"[maple] removing stale {other} (not this run's fingerprint {fingerprint})", flush=True)
                shutil.rmtree(other) if other.is_dir() else other.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    complete = []
    for ckpt in sorted(run_dir.glob("checkpoint-*"), key=checkpoint_step):
        if (ckpt / CHECKPOINT_MARKER).is_file():
            complete.append(ckpt)
        else:
            print(f"[maple] removing incomplete checkpoint {ckpt}", flush=True)
            shutil.rmtree(ckpt)
    return run_dir, (complete[-1] if complete else None)
