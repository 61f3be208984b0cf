"""A finetune's tracking: a transformers TrainerCallback that writes every logging step (loss, learning rate, grad
norm, tokens/s, peak memory) to the variant's TensorBoard folder and its MLflow run, and the finished adapter's
reference. A resumed finetune continues at its checkpoint's step, in the same folder and the same run."""

from __future__ import annotations

import os
from pathlib import Path

from maple.track.mlflow_run import TAG, TrackedRun
from maple.track.settings import adapter_target
from maple.track.tensorboard import EventLog

# log entry key -> tag (TensorBoard) and metric name (MLflow)
STEP_METRICS = {
    "loss": "train/loss",
    "learning_rate": "train/learning_rate",
    "grad_norm": "train/grad_norm",
    "real_tokens": "train/real_tokens",
    "train_seconds": "train/seconds",
}
SUMMARY_METRICS = ("train_loss", "global_step", "wall_seconds", "real_tokens_per_second", "peak_memory_bytes")


def tracking_callback(adapter_dir, params: dict, fingerprint: str, trainer, peak_memory):
    """The callback for one finetune into adapter_dir (params: the finetune's, flat; trainer: the measured trainer,
    its meter counts the tokens; peak_memory: () -> {"peak_memory_bytes": ...}), or None where nothing is tracked (an
    adapter directory outside results/adapters/ and no tracking URI)."""
    from transformers import TrainerCallback

    target = adapter_target(adapter_dir)
    if target is None and not os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    model = target.model if target else "adapter"
    variant = target.variant if target else Path(adapter_dir).name

    class Tracking(TrainerCallback):
        def __init__(self):
            self.events = None
            self.run = None
            self.before = (0, 0.0)  # (real tokens, train seconds) at the previous log

        def on_train_begin(self, args, state, control, **kwargs):
            # TensorBoard drops what a killed writer logged after the checkpoint this run resumes from
            self.events = EventLog(target.tensorboard_dir if target else None, purge_step=state.global_step + 1)
            self.events.hparams(params, ["train/loss"])
            self.run = TrackedRun(
                {"model": model, "variant": variant, "fingerprint": fingerprint},
                tags={"data": target.data if target else "", "rank": params["rank"], "bits": params["bits"]},
                run_name=f"{model}/{variant}",
            )
            self.run.log(params=params)
            running = trainer.meter.running()
            self.before = (running["real_tokens"], running["train_seconds"])

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" not in logs:
                return
            values = {tag: logs[key] for key, tag in STEP_METRICS.items() if key in logs}
            tokens, seconds = logs.get("real_tokens"), logs.get("train_seconds")
            if tokens is not None and seconds is not None and seconds > self.before[1]:
                values["train/tokens_per_second"] = (tokens - self.before[0]) / (seconds - self.before[1])
                self.before = (tokens, seconds)
            values["train/peak_memory_bytes"] = peak_memory()["peak_memory_bytes"]
            self.events.scalars(values, state.global_step)
            self.run.log(metrics=values, step=state.global_step)

        def on_train_end(self, args, state, control, **kwargs):
            self.events.close()

        def finished(self, adapter_dir, metrics: dict) -> None:
            """The adapter is in place: its path as a reference (not a copy) and the run's summary."""
            path = Path(adapter_dir).absolute()
            self.run.log(
                metrics={f"final/{k}": metrics.get(k) for k in SUMMARY_METRICS},
                step=int(metrics.get("global_step") or 0),
                tags={f"{TAG}adapter_uri": path.as_uri(), f"{TAG}adapter_path": str(path)},
            )
            self.run.finish()

    return Tracking()
