"""One MLflow run per model variant (a finetune and its evaluations; the base model's evaluations), in one experiment
per study, through MlflowClient with short timeouts. A server that is down, slow or refuses is a warning: the run
object then logs nothing more, and the job goes on.

A run is found by its tags (maple.model, maple.variant and, for an adapter, maple.fingerprint, which a finetune from
scratch with other params changes): a resumed finetune and the evaluations of its adapter log to the run the finetune
opened. Two jobs that open the same run at once (the base model's evaluations of two tasks) both keep the oldest."""

from __future__ import annotations

import os
import re
import time

from maple.track.settings import MLFLOW_CLIENT_ENV, experiment_name, mlflow_uri, warn

TAG = "maple."
# Never logged: a param whose name says secret, or whose value looks like a token (hub tokens start with hf_).
SECRET_NAME = re.compile(r"token|secret|password|passwd|api_key|credential|auth", re.I)
SECRET_VALUE = re.compile(r"\bhf_[A-Za-z0-9]{8,}|\b(?:ghp|gho|sk)_[A-Za-z0-9]{8,}")
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value


def without_secrets(params: dict) -> dict:
    """params as strings, leaving out any whose name or value looks like a secret."""
    kept = {}
    for key, value in params.items():
        text = str(value)
        if SECRET_NAME.search(key) or SECRET_VALUE.search(text):
            continue
        kept[key] = text[:MAX_PARAM_CHARS]
    return kept


class TrackedRun:
    """The MLflow run of one variant, or nothing where no tracking URI is set or the server fails."""

    def __init__(self, identity: dict, tags: dict | None = None, run_name: str | None = None):
        self.client = self.run_id = None
        self.uri = mlflow_uri()
        if not self.uri:
            return
        for key, value in MLFLOW_CLIENT_ENV.items():
            os.environ.setdefault(key, value)
        self._guarded("open a run", lambda: self._open(identity, tags or {}, run_name))

    @property
    def active(self) -> bool:
        return self.run_id is not None

    def _guarded(self, what: str, action):
        try:
            return action()
        except Exception as error:  # noqa: BLE001 (any failure of a tracker is a warning)
            warn(
                f"MLflow at {self.uri}: could not {what} ({type(error).__name__}: {str(error)[:300]}); going on without it"
            )
            self.client = self.run_id = None
            return None

    def _open(self, identity: dict, tags: dict, run_name: str | None) -> None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        experiment_id = self._experiment(client, experiment_name())
        filters = " and ".join(f"tags.`{TAG}{k}` = '{v}'" for k, v in identity.items())
        found = self._oldest(client, experiment_id, filters)
        if found is None:
            all_tags = {f"{TAG}{k}": str(v) for k, v in {**identity, **tags}.items()}
            client.create_run(experiment_id, tags=all_tags, run_name=run_name)
            found = self._oldest(client, experiment_id, filters)  # ours, or one opened at the same time before it
        self.client, self.run_id = client, found.info.run_id

    @staticmethod
    def _experiment(client, name: str) -> str:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(name)
        except Exception:  # another job created it since
            return client.get_experiment_by_name(name).experiment_id

    @staticmethod
    def _oldest(client, experiment_id: str, filters: str):
        runs = client.search_runs([experiment_id], filter_string=filters, order_by=["attributes.start_time ASC"])
        return min(runs, key=lambda r: (r.info.start_time, r.info.run_id)) if runs else None

    def log(self, metrics: dict | None = None, step: int = 0, params: dict | None = None, tags: dict | None = None):
        """One batch: numeric metrics at step, params (secrets left out; a param already logged keeps its value) and
        tags."""
        if not self.active:
            return

        def send():
            from mlflow.entities import Metric, Param, RunTag

            now = int(time.time() * 1000)
            numbers = {
                k: float(v)
                for k, v in (metrics or {}).items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            logged = self.client.get_run(self.run_id).data.params if params else {}
            self.client.log_batch(
                self.run_id,
                metrics=[Metric(k, v, now, step) for k, v in numbers.items()],
                params=[Param(k, v) for k, v in without_secrets(params or {}).items() if k not in logged],
                tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
            )

        self._guarded("log to the run", send)

    def finish(self, status: str = "FINISHED") -> None:
        if self.active:
            self._guarded("end the run", lambda: self.client.set_terminated(self.run_id, status))
