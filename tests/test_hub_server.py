"""Preflight, pins, prefetch and the offline jobs against a real hub server on loopback (olah in its local-mirror
mode, tests/hub_server.py), through the real huggingface_hub.HfApi with HF_ENDPOINT: no stand-in. What such a
server cannot serve (gated repositories, tokens) stays with tests/hub_standin.py (tests/test_preflight.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import DUMMY_HF_TOKEN, planned_jobs, run_snakemake, small_config, write_config
from hub_server import (
    OFFLINE_VARIABLES,
    OlahServer,
    build_mirror,
    commit_files,
    hub_env,
    olah_cli,
    run_here,
)


def _require_olah() -> None:
    if olah_cli() is None:
        message = "olah is not installed: bash envs/setup_olah_venv.sh (envs/setup_venv.sh runs it; or set MAPLE_OLAH)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it (.ci/run): a missing server must not pass as a skip
        pytest.skip(message)


@pytest.fixture(scope="session")
def hub_mirror(tmp_path_factory):
    """(mirrors directory, commits) of the git repositories the server serves (hub_server.build_mirror)."""
    _require_olah()
    root = tmp_path_factory.mktemp("hub-mirror")
    commits = build_mirror(root)
    return root / "mirrors", commits


@pytest.fixture(scope="session")
def hub_server(hub_mirror, tmp_path_factory):
    server = OlahServer(hub_mirror[0], tmp_path_factory.mktemp("olah"))
    yield server
    server.stop()


def slash_revisions_in_paths(server: OlahServer) -> list[str]:
    """Requests that put a revision with slashes into the URL path (a route that does not expect one misses them)."""
    return [p for _, p, _ in server.requests() if "refs%2F" in p or "/revision/refs/" in p or "/tree/refs/" in p]


def preflight_config(tmp_path: Path) -> Path:
    """Hub models at a branch, a tag, a missing repo and a missing branch; a model with pytorch weights only and
    a bare one; a shipped task at refs/convert/parquet and a built-in one on the loading-script branch; an empty
    local model directory and one whose sharded index names a missing shard."""
    empty = tmp_path / "empty-model"
    empty.mkdir()
    sharded = tmp_path / "sharded-model"
    sharded.mkdir()
    (sharded / "config.json").write_text("{}")
    (sharded / "tokenizer.json").write_text("{}")
    (sharded / "model-00001-of-00002.safetensors").write_bytes(b"")
    weight_map = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    config = small_config()
    config["languages"]["sw"]["codes"] = {"xsc": "sw", "xsc_script": "sw"}
    config["models"] = {
        "hubok": {"hub_id": "org/tiny-hub"},
        "tagged": {"hub_id": "org/tiny-hub", "revision": "v1"},
        "gone": {"hub_id": "org/missing"},
        "norev": {"hub_id": "org/tiny-hub", "revision": "no-such-branch"},
        "binonly": {"hub_id": "org/tiny-bin"},
        "bare": {"hub_id": "org/bare"},
        "empty": {"path": str(empty)},
        "sharded": {"path": str(sharded)},
    }
    config["evaluation"]["tasks"] = {
        "xsc": {"source": "lm_eval", "lm_eval_task": "maple_xstorycloze_{code}", "languages": ["sw"]},
        "xsc_script": {"source": "lm_eval", "lm_eval_task": "xstorycloze_{code}", "languages": ["sw"]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def test_preflight_through_a_hub_server(hub_server, hub_mirror, tmp_path):
    """Every revision resolved through list_repo_refs and pinned (a tag, refs/convert/parquet), every problem named
    once (a missing repo, a missing branch, a loading script, incomplete local model directories), parameter counts
    from the safetensors headers or config.json, or "unknown" naming what was tried."""
    from maple.hub.memory import local_parameter_count

    _mirrors, commits = hub_mirror
    outcome = run_here("preflight", str(preflight_config(tmp_path)), env=hub_env(hub_server.endpoint, tmp_path / "hf"))
    pins, report, problems = outcome["pins"], "\n".join(outcome["report"]), outcome["problems"]
    assert {key: entry["commit"] for key, entry in pins["models"].items()} == {
        "org/tiny-hub@main": commits["tiny-hub"],
        "org/tiny-hub@v1": commits["tiny-hub@v1"],
        "org/tiny-bin@main": commits["tiny-bin"],
        "org/bare@main": commits["bare"],
    }
    conversion = pins["datasets"]["juletxara/xstory_cloze@refs/convert/parquet"]
    assert conversion["revision"] == "refs/convert/parquet" and conversion["commit"] == commits["xstory_cloze@parquet"]
    assert pins["task_datasets"]["maple_xstorycloze_sw"] == "juletxara/xstory_cloze@refs/convert/parquet"
    hub = f"the hub at {hub_server.endpoint}"
    expected = [
        f"models.gone: model 'org/missing' does not exist on {hub}",
        f"models.norev: model 'org/tiny-hub' has no revision 'no-such-branch' on {hub} (branches main; tags v1)",
        "evaluation.tasks.xsc_script language sw (xstorycloze_sw): dataset 'juletxara/xstory_cloze' at revision "
        "'main' (" + commits["xstory_cloze"][:12] + ") holds the loading script 'xstory_cloze.py'",
        "models.empty.path: the model directory",
        "is incomplete: missing config.json; weights (model.safetensors or pytorch_model.bin",
        "models.sharded.path: the model directory",
        "is incomplete: missing 1 of the 2 shards model.safetensors.index.json names (model-00002-of-00002.safetensors)",
    ]
    text = "\n".join(problems)
    for line in expected:
        assert line in text, f"{line!r} not among:\n{text}"
    assert len(problems) == 5, text
    assert [p for p in problems if "does not exist" in p] == [p for p in problems if p.startswith("models.gone:")]
    count, _ = local_parameter_count(str(Path(hub_mirror[0]) / "models" / "org" / "tiny-hub"))
    assert (
        f"mem  models.hubok at 16 bits needs at least 1.0 GiB ({count / 1e9:.2f}e9 parameters, from safetensors "
        in report
    )
    assert "models.binonly at 16 bits" in report and "from config.json, estimated)" in report
    assert (
        "mem  models.bare: parameter count unknown (tried: model_info safetensors (absent); safetensors headers "
        "(NotASafetensorsRepoError); config.json (HTTP 404)); GPU memory not checked" in report
    )
    # the shipped task reads the conversion through data_files (on the hub the conversion holds no README either):
    # its size is checked against the card of the main branch, the data the conversion is made from
    assert (
        "size dataset juletxara/xstory_cloze@refs/convert/parquet: workflow/resources/task_sizes.csv agrees with the "
        f"card of its main branch ({commits['xstory_cloze'][:12]}) for maple_xstorycloze_sw" in report
    )
    assert "auth_check" not in " ".join(p for _, p, _ in hub_server.requests())  # no repo here is gated
    assert slash_revisions_in_paths(hub_server) == []


def test_split_sizes_checked_against_the_card_a_hub_server_serves(hub_server, hub_mirror, tmp_path):
    """olah returns a dataset's README front matter as dataset_info's cardData at the commit asked for; preflight
    reads the split sizes from the info it fetched to pin the commit (one request for both languages): the row that
    agrees is reported, the one that differs is a problem naming the table, the task, the language and both figures."""
    commit = hub_mirror[1]["xcopa"]
    config = small_config()
    config["languages"]["sw"]["codes"] = {"xcopa": "sw"}
    config["languages"]["et"] = {"name": "Estonian", "script": "Latn", "resource": "low", "codes": {"xcopa": "et"}}
    config["evaluation"]["tasks"] = {
        "xcopa": {"source": "lm_eval", "lm_eval_task": "xcopa_{code}", "languages": ["sw", "et"]}
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    outcome = run_here("preflight", str(path), env=hub_env(hub_server.endpoint, tmp_path / "hf"))
    assert outcome["problems"] == [
        "workflow/resources/task_sizes.csv: evaluation.tasks.xcopa language et (xcopa_et): the table gives 500 "
        f"examples, the card of dataset 'cambridgeltl/xcopa' at 'main' ({commit[:12]}) gives 499 for config 'et' "
        "split 'test', the split the task scores: correct the row to 499 examples"
    ]
    assert (
        f"size dataset cambridgeltl/xcopa@main ({commit[:12]}): workflow/resources/task_sizes.csv agrees with its card "
        "for xcopa_sw" in outcome["report"]
    )
    infos = [p for _, p, _ in hub_server.requests() if p.startswith("/api/datasets/cambridgeltl/xcopa/revision/")]
    assert infos == [f"/api/datasets/cambridgeltl/xcopa/revision/{commit}"]


def test_prefetch_through_a_hub_server_then_loads_offline(hub_server, hub_mirror, tmp_path):
    """Prefetch downloads each pinned commit through the server into a real HF cache (blobs, symlinked snapshots);
    the loaders then read it with the hub offline (this process: tests/conftest.py)."""
    from maple.hub.access import load_causal_lm, load_dataset, load_tokenizer

    _mirrors, commits = hub_mirror
    pins = {
        "models": {"org/tiny-hub@main": {"repo_id": "org/tiny-hub", "revision": "main", "commit": commits["tiny-hub"]}},
        "datasets": {
            "org/plain@main": {"repo_id": "org/plain", "revision": "main", "commit": commits["plain"], "patterns": None}
        },
    }
    (tmp_path / "pins.json").write_text(json.dumps(pins))
    hf_home = tmp_path / "hf"
    fetched = run_here("prefetch", str(tmp_path / "pins.json"), env=hub_env(hub_server.endpoint, hf_home))
    snapshot = Path(fetched["model:org/tiny-hub@main"]["path"])
    assert snapshot == hf_home / "hub" / "models--org--tiny-hub" / "snapshots" / commits["tiny-hub"]
    weights = snapshot / "model.safetensors"
    assert weights.is_symlink() and weights.resolve().parent.name == "blobs"
    cache = str(hf_home / "hub")
    tokenizer = load_tokenizer("org/tiny-hub", revision=commits["tiny-hub"], cache_dir=cache)
    model = load_causal_lm("org/tiny-hub", revision=commits["tiny-hub"], cache_dir=cache)
    assert model.config.model_type == "llama" and tokenizer("Jambo")["input_ids"]

    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "HF_HUB_CACHE", cache)
        data = load_dataset("org/plain", None, "train", revision=commits["plain"])
    assert data.num_rows == 3 and data[0]["output"] == "0."


def study_config() -> dict:
    """One hub model, the template data, one task on a hub dataset at refs/convert/parquet; hub.prefetch on."""
    config = small_config()
    config["models"] = {"hub": {"hub_id": "org/tiny-hub"}}
    config["finetune"]["bits"] = [16]
    config["finetune"]["oom_retries"] = 0
    config["languages"]["sw"]["codes"] = {"xsc": "sw"}
    config["evaluation"]["tasks"] = {
        "xsc": {"source": "lm_eval", "lm_eval_task": "maple_xstorycloze_{code}", "languages": ["sw"]}
    }
    config["hub"] = {"prefetch": True}
    return config


@pytest.fixture(scope="module")
def hub_study(hub_mirror, tmp_path_factory):
    """The study run end to end through its own server (over a copy of the mirrors, which a test changes): preflight
    and prefetch with the server up, then the server stopped and the whole DAG run with HF_ENDPOINT still naming it.
    Returns a dict of what the tests look at."""
    root = tmp_path_factory.mktemp("hub-study")
    mirrors = root / "mirrors"
    shutil.copytree(hub_mirror[0], mirrors, symlinks=True)
    server = OlahServer(mirrors, root / "olah")
    workdir, hf_home = root / "work", root / "hf"
    config = write_config(workdir, study_config())
    with pytest.MonkeyPatch.context() as mp:
        for name in OFFLINE_VARIABLES:
            mp.delenv(name, raising=False)
        mp.setenv("HF_ENDPOINT", server.endpoint)
        mp.setenv("HF_HOME", str(hf_home))
        try:
            run_snakemake(workdir, "--cores", "2", "preflight", "prefetch", config=config, timeout=600)
        finally:
            server.stop()
        requests = server.requests()
        run_snakemake(workdir, "--cores", "2", "--resources", "gpu=1", config=config, timeout=900)
    return {
        "root": root,
        "mirrors": mirrors,
        "workdir": workdir,
        "hf_home": hf_home,
        "config": config,
        "server": server,
        "requests": requests,
        "commits": hub_mirror[1],
    }


@pytest.mark.slow
def test_study_through_a_hub_server_runs_offline_after_prefetch(hub_study):
    """A hub model and a task at refs/convert/parquet, end to end: preflight pins both commits, prefetch fills the
    HF cache through the server; the server is then stopped, and every job after it (the GPU jobs with the hub
    offline) runs and every score lands, each loading the pinned commits."""
    workdir, hf_home, commits, requests = (hub_study[k] for k in ("workdir", "hf_home", "commits", "requests"))
    pins = json.loads((workdir / "results" / "preflight" / "pins.json").read_text())
    model_commit = pins["models"]["org/tiny-hub@main"]["commit"]
    task = pins["datasets"]["juletxara/xstory_cloze@refs/convert/parquet"]
    assert model_commit == commits["tiny-hub"] and task["commit"] == commits["xstory_cloze@parquet"]
    model_snapshot = hf_home / "hub" / "models--org--tiny-hub" / "snapshots" / model_commit
    task_snapshot = hf_home / "hub" / "datasets--juletxara--xstory_cloze" / "snapshots" / task["commit"]
    assert (model_snapshot / "model.safetensors").is_file() and (model_snapshot / "tokenizer.json").is_file()
    assert sorted(str(p.relative_to(task_snapshot)) for p in task_snapshot.rglob("*.parquet")) == [
        "sw/eval/0000.parquet",
        "sw/train/0000.parquet",
    ]
    downloads = [p for method, p, status in requests if method == "GET" and "/resolve/" in p and status == 200]
    assert any(p.startswith(f"/org/tiny-hub/resolve/{model_commit}/") for p in downloads), requests
    assert any(p.startswith(f"/datasets/juletxara/xstory_cloze/resolve/{task['commit']}/") for p in downloads)
    assert [p for _, p, _ in requests if "refs%2F" in p or "/revision/refs/" in p] == []
    assert hub_study["server"].requests() == requests  # down since prefetch: no job could reach it

    metrics = json.loads(
        (workdir / "results" / "adapters" / "hub" / "demo" / "r4-q16" / "train_metrics.json").read_text()
    )
    assert metrics["params"]["revision"] == model_commit
    for variant in ("base", "demo-r4-q16"):
        score = json.loads((workdir / "results" / "scores" / "hub" / variant / "xsc" / "sw.json").read_text())
        provenance = score["provenance"]
        assert provenance["model_revision"] == model_commit
        # loaded offline from the HF cache, whose only snapshot of the model is that commit's
        assert provenance["model_fingerprint"] == {"kind": "hub_commit", "value": model_commit}
        assert provenance["dataset_revisions"] == {"juletxara/xstory_cloze": task["commit"]}
    for log in (
        workdir / "logs" / "finetune" / "hub" / "demo" / "r4-q16.log",
        workdir / "logs" / "evaluate" / "hub" / "base" / "xsc.log",
    ):
        text = log.read_text()
        assert "[maple] hub offline (hub.prefetch): HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1" in text, text[:2000]


@pytest.mark.slow
def test_new_commit_on_the_server_reruns_that_model_only(hub_study):
    """Preflight again with the commits unchanged: nothing to do. The model moves on to a new commit on the server:
    preflight pins it, prefetch fetches it, and only that model's jobs are planned; without its snapshot a job fails
    at once naming prefetch."""
    workdir, config, mirrors, hf_home = (hub_study[k] for k in ("workdir", "config", "mirrors", "hf_home"))
    server = OlahServer(mirrors, hub_study["root"] / "olah-again")
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name in OFFLINE_VARIABLES:
                mp.delenv(name, raising=False)
            mp.setenv("HF_ENDPOINT", server.endpoint)
            mp.setenv("HF_HOME", str(hf_home))
            run_snakemake(workdir, "--cores", "1", "preflight", "--forcerun", "preflight", config=config)
            assert planned_jobs(workdir, config=config) == {}
            model = mirrors / "models" / "org" / "tiny-hub"
            new_commit = commit_files(model, {"README.md": "# tiny, updated\n"}, "an update", keep=True)
            run_snakemake(workdir, "--cores", "1", "preflight", "prefetch", "--forcerun", "preflight", config=config)
            pins = json.loads((workdir / "results" / "preflight" / "pins.json").read_text())
            assert pins["models"]["org/tiny-hub@main"]["commit"] == new_commit
            assert planned_jobs(workdir, config=config) == {
                "finetune": 1,
                "evaluate_xsc": 2,
                "aggregate": 1,
                "summarize": 1,
                "plot": 1,
                "all": 1,
            }
    finally:
        server.stop()
    # a job that would need the network (the new commit's snapshot gone from the cache) fails naming prefetch
    shutil.rmtree(hf_home / "hub" / "models--org--tiny-hub")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(hf_home))
        mp.setenv("HF_ENDPOINT", server.endpoint)
        result = run_snakemake(
            workdir,
            "--cores",
            "1",
            "results/adapters/hub/demo/r4-q16",
            "--resources",
            "gpu=1",
            config=config,
            check=False,
        )
    assert result.returncode != 0
    log = (workdir / "logs" / "finetune" / "hub" / "demo" / "r4-q16.log").read_text() + result.stdout + result.stderr
    assert "this job runs with the hub offline (hub.prefetch: true): run `snakemake preflight prefetch" in log, log[
        -3000:
    ]
    assert DUMMY_HF_TOKEN not in log


@pytest.mark.slow
def test_empty_model_directory_stops_the_run_at_preflight(tmp_path):
    """A `path:` model directory that holds no model: one preflight line naming the key and what is missing, and no
    job starts."""
    empty = tmp_path / "empty-model"
    empty.mkdir()
    config = small_config()
    config["models"] = {"local": {"path": str(empty)}}
    workdir = tmp_path / "work"
    result = run_snakemake(workdir, "--cores", "1", config=write_config(workdir, config), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith("models.local.path:")]
    assert len(set(lines)) == 1, output[-3000:]
    assert "is incomplete: missing config.json; weights" in lines[0] and "tokenizer files" in lines[0]
    for rule in ("synth_data", "finetune", "evaluate_demo_mc"):
        assert not (workdir / "logs" / rule).exists(), rule
