"""An evaluation's scores, tracked as its score files are written: each (task, language) score in the variant's
TensorBoard folder (tag eval_<task>/<lang>, at the adapter's last training step; 0 for the base model) and on the
variant's MLflow run (eval/<task>/<lang>/<metric>, with its stderr and n). A score of a range of a language's
examples (a split language) is not tracked: only the merged language's is a score."""

from __future__ import annotations

import json
from pathlib import Path

from maple.track.mlflow_run import TrackedRun
from maple.track.settings import mlflow_uri, score_target, warn
from maple.track.tensorboard import EventLog


def adapter_state(adapter_dir) -> tuple[int, str | None]:
    """(last training step, fingerprint) of an adapter from its train_metrics.json; (0, None) for the base model."""
    if not adapter_dir:
        return 0, None
    try:
        metrics = json.loads((Path(adapter_dir) / "train_metrics.json").read_text())
        return int(metrics.get("global_step") or 0), metrics.get("fingerprint")
    except (OSError, ValueError):
        return 0, None


def track_scores(scores: list[tuple[str, dict]]) -> None:
    """(score file, score record) of one job's finished scores, all of one model variant."""
    scores = [(path, s) for path, s in scores if s["provenance"].get("examples_range") is None]
    if not scores:
        return
    try:
        first = scores[0][1]
        step, fingerprint = adapter_state(first["provenance"].get("adapter_dir"))
        target = score_target(scores[0][0], first["model"], first["variant"])
        values = {f"eval_{s['task']}/{s['lang']}": s["value"] for _, s in scores}
        events = EventLog(target.tensorboard_dir)
        events.scalars(values, step)
        events.close()
        if not mlflow_uri():
            return
        identity = {"model": target.model, "variant": target.variant}
        if fingerprint:
            identity["fingerprint"] = fingerprint
        run = TrackedRun(identity, run_name=f"{target.model}/{target.variant}")
        metrics = {}
        for _, s in scores:
            key = f"eval/{s['task']}/{s['lang']}/{s['metric']}"
            metrics.update({key: s["value"], f"{key}/stderr": s.get("stderr"), f"{key}/n": s.get("n")})
        run.log(metrics=metrics, step=step)
        if not fingerprint:  # the base model's run: no finetune ends it
            run.finish()
    except Exception as error:  # noqa: BLE001 (the score files are written; tracking them is a bonus)
        warn(f"scores not tracked: {type(error).__name__}: {error}")
