"""Experiment tracking (docs/tracking.md): TensorBoard event files under results/ for every finetune and evaluation,
and an MLflow tracking server by choice, here a real `mlflow server` on loopback (tests/mlflow_server.py) read back
with MlflowClient. A server that is down, or stops during the run, makes the jobs warn and go on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DUMMY_HF_TOKEN, REPO, SNAKEMAKE, run_snakemake, small_config, write_config
from maple.track.mlflow_run import TrackedRun, without_secrets
from maple.track.settings import adapter_target, score_target, tracking_environment
from maple.track.tensorboard import EventLog
from mlflow_server import MlflowServer, free_port

STUDY = "small-study"
FINETUNES = {"demo-r4-q4": "results/adapters/tiny/demo/r4-q4", "demo-r4-q16": "results/adapters/tiny/demo/r4-q16"}


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] as TensorBoard reads the folder (every event file in it, purges applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


# --- fast: no training, no server ----------------------------------------------------------------------------------


def test_a_resumed_writer_replaces_what_the_killed_one_logged_after_the_checkpoint(tmp_path):
    killed = EventLog(tmp_path)
    for step in range(1, 8):  # the killed run got to step 7; its last checkpoint is step 5
        killed.scalars({"train/loss": 10.0 + step}, step)
    killed.close()
    resumed = EventLog(tmp_path, purge_step=6)
    for step in range(6, 10):
        resumed.scalars({"train/loss": float(step)}, step)
    resumed.close()
    loss = scalars(tmp_path)["train/loss"]
    assert [s for s, _ in loss] == list(range(1, 10))
    assert [v for _, v in loss] == [11.0, 12.0, 13.0, 14.0, 15.0, 6.0, 7.0, 8.0, 9.0]


def test_folders_come_from_the_output_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("MAPLE_TENSORBOARD_DIR", raising=False)
    monkeypatch.delenv("MAPLE_TENSORBOARD", raising=False)
    target = adapter_target(tmp_path / "results/adapters/tiny/demo/r4-q16")
    assert (target.model, target.variant, target.data) == ("tiny", "demo-r4-q16", "demo")
    assert target.tensorboard_dir == tmp_path / "results/tracking/tensorboard/tiny/demo-r4-q16"
    score = score_target(tmp_path / "results/scores/tiny/base/demo_mc/en.json", "tiny", "base")
    assert score.tensorboard_dir == tmp_path / "results/tracking/tensorboard/tiny/base"
    assert adapter_target(tmp_path / "adapter") is None, "a finetune by hand outside results/: no folder"
    monkeypatch.setenv("MAPLE_TENSORBOARD", "0")
    assert adapter_target(tmp_path / "results/adapters/tiny/demo/r4-q16").tensorboard_dir is None


def test_the_config_names_the_server_and_the_experiment():
    env = tracking_environment({"mlflow_uri": "http://login1:5000"}, ["config/maple.yaml"], {})
    assert env == {
        "MAPLE_TENSORBOARD": "1",
        "MLFLOW_TRACKING_URI": "http://login1:5000",
        "MLFLOW_EXPERIMENT_NAME": "maple",
    }
    env = tracking_environment({"tensorboard": False, "experiment": "x"}, ["c.yaml"], {"MLFLOW_EXPERIMENT_NAME": "y"})
    assert env == {"MAPLE_TENSORBOARD": "0", "MLFLOW_EXPERIMENT_NAME": "x"}, "no URI: the environment's, if any"
    assert tracking_environment({}, ["c.yaml"], {"MLFLOW_EXPERIMENT_NAME": "y"})["MLFLOW_EXPERIMENT_NAME"] == "y"


def test_no_secret_becomes_a_param():
    kept = without_secrets({"rank": 4, "hf_token": "x", "note": f"uses {DUMMY_HF_TOKEN}", "api_key": "k", "lr": 0.1})
    assert kept == {"rank": "4", "lr": "0.1"}


def test_a_server_that_is_down_is_a_warning_at_once(monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    started = time.time()
    run = TrackedRun({"model": "tiny", "variant": "base"})
    run.log(metrics={"loss": 1.0}, step=1, params={"rank": 4})
    run.finish()
    assert not run.active
    assert time.time() - started < 30, "a refused connection is not retried for minutes"
    assert "[maple] Warning: tracking: MLflow at http://127.0.0.1:" in capsys.readouterr().err


# --- slow: the small DAG with a real MLflow server ------------------------------------------------------------------


def tracked_config(work: Path, uri: str) -> Path:
    config = small_config()
    config["tracking"] = {"mlflow_uri": uri, "experiment": STUDY}
    return write_config(work, config)


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """The small config run end to end with a tracking server: (workdir, server); the server stays up for reading."""
    work = tmp_path_factory.mktemp("tracked")
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    try:
        run_snakemake(work, "--cores", "2", "--resources", "gpu=1", config=tracked_config(work, server.uri))
        yield work, server
    finally:
        server.stop()


def score_records(work: Path, variant: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((work / "results/scores/tiny" / variant).glob("*/*.json"))]


def loss_steps(work: Path, adapter: str) -> list[tuple[int, float]]:
    history = json.loads((work / adapter / "train_metrics.json").read_text())["log_history"]
    return [(e["step"], e["loss"]) for e in history if "loss" in e]


@pytest.mark.slow
def test_every_finetune_has_its_loss_at_every_logging_step_in_tensorboard(tracked_run):
    work, _ = tracked_run
    root = work / "results/tracking/tensorboard/tiny"
    assert sorted(p.name for p in root.iterdir()) == ["base", *sorted(FINETUNES)]
    for variant, adapter in FINETUNES.items():
        got = scalars(root / variant)
        expected = loss_steps(work, adapter)
        assert [s for s, _ in got["train/loss"]] == [s for s, _ in expected] and len(expected) >= 3
        assert [v for _, v in got["train/loss"]] == pytest.approx([v for _, v in expected], rel=1e-6)
        for tag in ("learning_rate", "grad_norm", "tokens_per_second", "peak_memory_bytes"):
            assert len(got[f"train/{tag}"]) == len(expected), tag
    for variant in ["base", *FINETUNES]:  # the scores beside the training curves, per task and language
        got = scalars(root / variant)
        for score in score_records(work, variant):
            assert got[f"eval_{score['task']}/{score['lang']}"][-1][1] == pytest.approx(score["value"])


@pytest.mark.slow
def test_each_finetune_is_one_mlflow_run_with_its_loss_history_and_scores(tracked_run):
    work, server = tracked_run
    client = server.client()
    experiment = client.get_experiment_by_name(STUDY)
    runs = {r.data.tags["maple.variant"]: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["base", *sorted(FINETUNES)], "one run per finetune and one for the base model"
    for variant, adapter in FINETUNES.items():
        run = runs[variant]
        rank, bits = variant.split("-")[1:]
        assert run.info.status == "FINISHED"
        tags = run.data.tags
        assert (tags["maple.model"], tags["maple.data"], tags["maple.rank"], tags["maple.bits"]) == (
            "tiny",
            "demo",
            rank[1:],
            bits[1:],
        )
        assert tags["maple.adapter_path"] == str(work / adapter), "the adapter by reference"
        assert not client.list_artifacts(run.info.run_id), "not a copy"
        assert run.data.params["rank"] == rank[1:] and run.data.params["learning_rate"] == "0.003"
        history = client.get_metric_history(run.info.run_id, "train/loss")
        expected = loss_steps(work, adapter)
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
            (s, pytest.approx(v, rel=1e-6)) for s, v in expected
        ]
    for variant in ["base", *FINETUNES]:
        metrics = runs[variant].data.metrics
        records = score_records(work, variant)
        assert len(records) == 5  # demo_mc in en, de, sw; demo_gen in en, de
        for score in records:
            assert metrics[f"eval/{score['task']}/{score['lang']}/{score['metric']}"] == pytest.approx(score["value"])
    assert not any(k.startswith("train/") for k in runs["base"].data.metrics)
    logged = json.dumps([[r.data.params, r.data.tags] for r in runs.values()])
    assert DUMMY_HF_TOKEN not in logged


@pytest.mark.slow
def test_a_server_stopped_during_the_run_loses_no_adapter_and_no_score(tmp_path):
    """The server stops while the first finetune trains: that job and every later one warn and go on."""
    server = MlflowServer(tmp_path / "mlflow")
    work = tmp_path / "run"
    config = tracked_config(work, server.uri)
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(work), "--configfile", str(config)]
    cmd += ["--cores", "2", "--resources", "gpu=1"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    out = tmp_path / "snakemake.out"
    proc = subprocess.Popen(cmd, stdout=open(out, "w"), stderr=subprocess.STDOUT, env=env)
    try:
        client, deadline = server.client(), time.time() + 900
        while True:  # until a finetune has logged a step to the server
            assert proc.poll() is None, out.read_text()[-3000:]
            assert time.time() < deadline, "no finetune step logged within 900 s"
            experiment = client.get_experiment_by_name(STUDY)
            runs = client.search_runs([experiment.experiment_id]) if experiment else []
            if any("train/loss" in r.data.metrics for r in runs):
                break
            time.sleep(0.5)
    finally:
        server.stop()
    assert proc.wait(timeout=1800) == 0, out.read_text()[-3000:]
    assert (work / "results/tables/scores.csv").is_file()
    for adapter in FINETUNES.values():
        assert (work / adapter / "adapter_model.safetensors").is_file()
    for variant in ["base", *FINETUNES]:
        assert len(score_records(work, variant)) == 5
    logs = "".join(p.read_text() for p in (work / "logs").rglob("*.log"))
    assert "[maple] Warning: tracking: MLflow at http://127.0.0.1" in logs
