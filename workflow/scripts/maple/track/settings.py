"""Where a job's tracking goes, from its output paths and the environment (common.smk sets the environment from the
config's `tracking` keys, so that no rule's params change; by hand the same variables work).

TensorBoard: results/tracking/tensorboard/{model}/{variant}/, found from the adapter directory
(results/adapters/{model}/{data}/r{rank}-q{bits}) or the score file (results/scores/{model}/{variant}/{task}/{lang}.json);
a path outside that layout (a finetune by hand into /tmp) has no TensorBoard folder unless MAPLE_TENSORBOARD_DIR names
the root. MLflow: MLFLOW_TRACKING_URI (unset: no MLflow), MLFLOW_EXPERIMENT_NAME (unset: "maple")."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

TENSORBOARD_ENV = "MAPLE_TENSORBOARD"  # "0": no TensorBoard event files (config tracking.tensorboard: false)
TENSORBOARD_DIR_ENV = "MAPLE_TENSORBOARD_DIR"  # the root of the per-variant folders, instead of the one beside results
TRACKING_SUBDIR = ("tracking", "tensorboard")
DEFAULT_EXPERIMENT = "maple"
# A tracking server that is down answers at once (connection refused) or not at all: a job then waits at most this
# long per call, once; mlflow's own defaults (7 retries with backoff, 120 s timeout) would stall a job for minutes.
MLFLOW_CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


@dataclass(frozen=True)
class Target:
    """One tracked model variant: its names and where its TensorBoard events go (None: nowhere)."""

    model: str
    variant: str
    tensorboard_dir: Path | None
    data: str | None = None  # an adapter's dataset


def warn(message: str) -> None:
    print(f"[maple] Warning: tracking: {message}", file=sys.stderr, flush=True)


def tensorboard_dir(results_dir: Path, model: str, variant: str) -> Path | None:
    if os.environ.get(TENSORBOARD_ENV, "1") == "0":
        return None
    root = os.environ.get(TENSORBOARD_DIR_ENV) or Path(results_dir).joinpath(*TRACKING_SUBDIR)
    return Path(root) / model / variant


def adapter_target(adapter_dir: str | os.PathLike) -> Target | None:
    """results/adapters/{model}/{data}/r{rank}-q{bits} -> model, {data}-r{rank}-q{bits}; None outside that layout
    unless MAPLE_TENSORBOARD_DIR is set (the model then "adapter", the variant the directory's name)."""
    path = Path(adapter_dir).absolute()
    if len(path.parts) >= 5 and path.parents[2].name == "adapters":
        model, variant = path.parents[1].name, f"{path.parent.name}-{path.name}"
        return Target(model, variant, tensorboard_dir(path.parents[3], model, variant), path.parent.name)
    if os.environ.get(TENSORBOARD_DIR_ENV):
        return Target("adapter", path.name, tensorboard_dir(path.parent, "adapter", path.name))
    return None


def score_target(score_file: str | os.PathLike, model: str, variant: str) -> Target:
    """results/scores/{model}/{variant}/{task}/{lang}.json -> the variant's folder beside its finetune's."""
    path = Path(score_file).absolute()
    in_layout = len(path.parts) >= 6 and path.parents[3].name == "scores"
    results = path.parents[4] if in_layout else None
    folder = tensorboard_dir(results, model, variant) if results or os.environ.get(TENSORBOARD_DIR_ENV) else None
    return Target(model, variant, folder)


def mlflow_uri() -> str | None:
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def experiment_name() -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def tracking_environment(tracking: dict, configfiles: list, environ) -> dict:
    """The environment variables the jobs read their tracking from, for the config's `tracking` keys: the config's
    URI and experiment before the environment's, the experiment by default the last config file's name."""
    env = {TENSORBOARD_ENV: "1" if tracking.get("tensorboard", True) else "0"}
    if tracking.get("mlflow_uri"):
        env["MLFLOW_TRACKING_URI"] = str(tracking["mlflow_uri"])
    experiment = tracking.get("experiment") or environ.get("MLFLOW_EXPERIMENT_NAME")
    if not experiment and configfiles:
        experiment = Path(str(configfiles[-1])).name.removesuffix(".yaml").removesuffix(".yml")
    env["MLFLOW_EXPERIMENT_NAME"] = experiment or DEFAULT_EXPERIMENT
    return env
