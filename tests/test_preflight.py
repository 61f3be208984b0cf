"""Preflight, pinned revisions and prefetch (docs/gpus-slurm-offline.md, "Preflight", "Pinned hub revisions", "Compute
nodes without internet"), against a stand-in for the hub at the workflow's one seam (maple.hub.api: MAPLE_HUB_API names
tests/hub_standin.py), for what a hub server on loopback cannot serve: gated repositories, tokens, a model_info
safetensors block. tests/test_hub_server.py runs the same checks, pins, prefetch and offline jobs against a real
server (olah) through the real HfApi. The checks, the pins, the HF cache and the loaders that read it are the real
code; no test reaches the network (HF_ENDPOINT points at a closed local port in the runs that switch the hub on)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from conftest import DUMMY_HF_TOKEN, REPO, run_snakemake, small_config, write_config
from hub_standin import SPEC_VARIABLE, StandInHubApi

STANDIN = f"{REPO / 'tests' / 'hub_standin.py'}:StandInHubApi"
SHIPPED = REPO / "workflow" / "resources" / "lm_eval_tasks"
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def lm_eval_dir():
    from maple.config.validation import lm_eval_tasks_dir

    return lm_eval_tasks_dir()


def plan_of(config: dict, gpu_memory_gib=None) -> dict:
    from maple.config.validation import checked_study
    from maple.hub.preflight import preflight_plan

    return preflight_plan(checked_study(config)[1], gpu_memory_gib)


class NoHub:
    def __getattr__(self, name):
        raise AssertionError(f"preflight called the hub ({name}) for a study that reads nothing from it")


# --- Fast: the checks as functions ------------------------------------------------------------------------------


def test_local_study_passes_offline_without_asking_the_hub():
    from maple.hub.preflight import reads_hub, run_preflight

    plan = plan_of(small_config())
    assert not reads_hub(plan)
    outcome = run_preflight(plan, shipped_dir=SHIPPED, lm_eval_dir=lm_eval_dir(), api_factory=NoHub)
    assert outcome.problems == []
    assert outcome.pins == {"models": {}, "datasets": {}, "task_datasets": {}}


def test_hub_study_offline_fails_naming_what_it_could_not_check(monkeypatch):
    from maple.hub.preflight import run_preflight

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = {**small_config(), "models": {"llama": {"hub_id": "meta-llama/Llama-2-7b-hf"}}}
    outcome = run_preflight(plan_of(config), shipped_dir=SHIPPED, lm_eval_dir=lm_eval_dir(), api_factory=NoHub)
    assert len(outcome.problems) == 1
    assert "the hub is offline here" in outcome.problems[0] and "meta-llama/Llama-2-7b-hf" in outcome.problems[0]
    assert "run preflight where the hub is reachable" in outcome.problems[0]


def xcopa_config(languages=("sw",)) -> dict:
    config = small_config()
    config["languages"]["sw"]["codes"] = {"xcopa": "sw"}
    config["languages"]["et"] = {"name": "Estonian", "script": "Latn", "resource": "low", "codes": {"xcopa": "et"}}
    config["evaluation"]["tasks"] = {
        "xcopa": {"source": "lm_eval", "lm_eval_task": "xcopa_{code}", "languages": list(languages)}
    }
    return config


def test_split_sizes_offline_are_not_checked_and_fail_nothing(monkeypatch, tmp_path):
    """Offline, the split sizes are "not checked" in the report and add no problem: a study that reads the hub fails
    only on the one offline line; one whose task data comes from a dataset_mirrors entry passes."""
    from maple.hub.preflight import run_preflight

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = xcopa_config(("sw", "et"))
    outcome = run_preflight(plan_of(config), shipped_dir=SHIPPED, lm_eval_dir=lm_eval_dir(), api_factory=NoHub)
    assert len(outcome.problems) == 1 and "the hub is offline here" in outcome.problems[0]
    assert "size not checked: xcopa_sw, xcopa_et: the hub is offline here" in outcome.report
    (tmp_path / "xcopa").mkdir()
    config["dataset_mirrors"] = {"cambridgeltl/xcopa": str(tmp_path / "xcopa")}
    outcome = run_preflight(plan_of(config), shipped_dir=SHIPPED, lm_eval_dir=lm_eval_dir(), api_factory=NoHub)
    assert outcome.problems == []
    assert (
        "size not checked: xcopa_sw, xcopa_et: its data is not read from the hub (dataset_mirrors or a local "
        "directory)" in outcome.report
    )


def test_split_sizes_against_the_dataset_card():
    """The table's rows against the card in dataset_info as huggingface_hub parses the hub's answer (DatasetInfo
    from the JSON of /api/datasets/<id>/revision/<commit>; tests/test_hub_server.py asks a real server): a figure
    that differs is one problem naming the table, the task and language, both figures and the fix; a config or
    split the card does not size, a read through data_files, a card without sizes and a task without a row are
    "not checked" with the reason."""
    from huggingface_hub.hf_api import DatasetInfo
    from maple.hub.pins import HubRepo
    from maple.hub.preflight import DatasetNeed
    from maple.hub.split_sizes import check_sizes

    def need(lang, scored="test", table=(500, "test"), **kwargs):
        row = {"examples": table[0], "split": table[1]} if table else None
        label = f"evaluation.tasks.xcopa language {lang} (xcopa_{lang})"
        return DatasetNeed(label, lang, task=f"xcopa_{lang}", scored=scored, table=row, **kwargs)

    card = {
        "language": ["sw", "et"],
        "dataset_info": [
            {
                "config_name": "sw",
                "splits": [{"name": "validation", "num_examples": 100}, {"name": "test", "num_examples": 500}],
            },
            {"config_name": "et", "splits": [{"name": "test", "num_examples": 499}]},
            {"config_name": "it", "splits": [{"name": "validation", "num_examples": 100}]},
        ],
    }
    info = DatasetInfo(id="cambridgeltl/xcopa", sha=sha("x"), private=False, cardData=card)
    repo = HubRepo("dataset", "cambridgeltl/xcopa", "main")
    needs = [
        need("sw"),
        need("et"),
        need("it", scored="validation"),  # the row is for the test split
        need("qu"),  # no config qu in the card
        need("ht", data_files={"test": "ht/test/*.parquet"}),
        need("zz", table=None),
        DatasetNeed("datasets.x.seed_data"),  # a data backend's read: no task, no size
    ]
    lines, problems = check_sizes(repo, sha("x"), info, needs)
    at = f"at 'main' ({sha('x')[:12]})"
    assert problems == [
        "workflow/resources/task_sizes.csv: evaluation.tasks.xcopa language et (xcopa_et): the table gives 500 "
        f"examples, the card of dataset 'cambridgeltl/xcopa' {at} gives 499 for config 'et' split 'test', the "
        "split the task scores: correct the row to 499 examples",
        "workflow/resources/task_sizes.csv: evaluation.tasks.xcopa language it (xcopa_it): the table gives 500 "
        f"examples (its row is for split 'test'), the card of dataset 'cambridgeltl/xcopa' {at} gives 100 for "
        "config 'it' split 'validation', the split the task scores: correct the row to 100 examples of split "
        "'validation'",
    ]
    where = "(dataset cambridgeltl/xcopa@main)"
    assert lines == [
        f"size dataset cambridgeltl/xcopa@main ({sha('x')[:12]}): workflow/resources/task_sizes.csv agrees with its "
        "card for xcopa_sw",
        f"size not checked: xcopa_zz {where}: no row in workflow/resources/task_sizes.csv",
        f"size not checked: xcopa_qu {where}: the dataset card at {sha('x')[:12]} gives no size for the config and "
        "split the task scores",
        f"size not checked: xcopa_ht {where}: read through data_files, whose split sizes a dataset card does not "
        "describe",
    ]
    # A card of one config without config_name sizes a task without dataset_name; a card without sizes, nothing.
    single = DatasetInfo(
        id="org/one", sha=sha("o"), cardData={"dataset_info": {"splits": [{"name": "test", "num_examples": 7}]}}
    )
    one = DatasetNeed(
        "evaluation.tasks.one language en (one_en)",
        None,
        task="one_en",
        scored="test",
        table={"examples": 7, "split": "test"},
    )
    assert check_sizes(HubRepo("dataset", "org/one", "main"), sha("o"), single, [one])[1] == []
    bare = DatasetInfo(id="org/one", sha=sha("o"), cardData=None)
    lines, problems = check_sizes(HubRepo("dataset", "org/one", "main"), sha("o"), bare, [one])
    assert problems == [] and lines == [
        f"size not checked: one_en (dataset org/one@main): no split sizes (dataset_info) in the dataset card at "
        f"{sha('o')[:12]}"
    ]


def test_split_sizes_of_the_parquet_conversion_against_the_main_branch_card():
    """A task reading refs/convert/parquet through data_files (<config>/<split>/...): its row against the card of
    the main branch (source_card: the branch's commit from the refs, its dataset_info): agreeing, differing (a
    problem naming the main branch), not sized there; without a main branch (or an answer), not checked."""
    from types import SimpleNamespace

    from huggingface_hub.hf_api import DatasetInfo
    from maple.hub.pins import HubRepo
    from maple.hub.preflight import DatasetNeed
    from maple.hub.split_sizes import check_sizes, source_card

    card = {
        "dataset_info": [
            {"config_name": f"mlqa.{c}", "splits": [{"name": "test", "num_examples": n}]}
            for c, n in (("de.de", 4517), ("ar.ar", 5334))
        ]
    }
    main_info = DatasetInfo(id="facebook/mlqa", sha=sha("m"), cardData=card)
    asked = []

    class Api:
        def dataset_info(self, repo_id, revision, token):
            asked.append((repo_id, revision))
            return main_info

    refs = SimpleNamespace(branches=[SimpleNamespace(name="main", target_commit=sha("m"))])
    repo = HubRepo("dataset", "facebook/mlqa", "refs/convert/parquet")
    source = source_card(Api(), repo, refs, None, (OSError,))
    assert source == (sha("m"), main_info) and asked == [("facebook/mlqa", sha("m"))]
    assert source_card(Api(), repo, SimpleNamespace(branches=[]), None, (OSError,)) is None

    def need(config, examples):
        lang = config.split(".")[0]
        return DatasetNeed(
            f"evaluation.tasks.mlqa language {lang} (maple_mlqa_{config.replace('.', '_')})",
            None,
            task=f"maple_mlqa_{config.replace('.', '_')}",
            scored="test",
            table={"examples": examples, "split": "test"},
            data_files={"validation": f"mlqa.{config}/validation/*.parquet", "test": f"mlqa.{config}/test/*.parquet"},
        )

    conversion = DatasetInfo(id="facebook/mlqa", sha=sha("p"), cardData=None)  # the converter keeps no README
    needs = [need("de.de", 4517), need("ar.ar", 5335), need("hi.hi", 4918)]
    lines, problems = check_sizes(repo, sha("p"), conversion, needs, source)
    assert problems == [
        "workflow/resources/task_sizes.csv: evaluation.tasks.mlqa language ar (maple_mlqa_ar_ar): the table gives "
        f"5335 examples, the card of dataset 'facebook/mlqa' at 'main' ({sha('m')[:12]}) gives 5334 for config "
        "'mlqa.ar.ar' split 'test', the split the task scores: correct the row to 5334 examples"
    ]
    assert lines == [
        "size dataset facebook/mlqa@refs/convert/parquet: workflow/resources/task_sizes.csv agrees with the card of "
        f"its main branch ({sha('m')[:12]}) for maple_mlqa_de_de",
        "size not checked: maple_mlqa_hi_hi (dataset facebook/mlqa@refs/convert/parquet): read through data_files, "
        "and no size for its config and split in the card of the main branch",
    ]
    lines, problems = check_sizes(repo, sha("p"), conversion, needs, None)
    assert problems == [] and lines[-1].endswith(
        "read through data_files, whose split sizes a dataset card does not describe"
    )


def test_pins_and_memory_estimates(monkeypatch):
    """A model's commit pinned from its revision; the GPU memory estimate at each bit-width against
    preflight.gpu_memory_gib: 7e9 parameters fit 10 GiB at 4 bits, not at 16."""
    from maple.hub.preflight import run_preflight

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    config = {**small_config(), "models": {"big": {"hub_id": "org/big"}}}
    hub = StandInHubApi({"models": {"org/big": {"revisions": {"main": sha("big")}, "parameters": 7_000_000_000}}})
    outcome = run_preflight(
        plan_of(config, gpu_memory_gib=10), shipped_dir=SHIPPED, lm_eval_dir=lm_eval_dir(), api_factory=lambda: hub
    )
    assert outcome.pins["models"]["org/big@main"]["commit"] == sha("big")
    assert len(outcome.problems) == 1, outcome.problems
    assert re.match(r"models\.big at 16 bits needs at least 1\d\.\d GiB .*more than the 10 GiB", outcome.problems[0])
    assert any(line.startswith("mem  models.big at 4 bits") for line in outcome.report)


def test_gated_repo_on_a_server_without_auth_check_is_a_warning_naming_it(monkeypatch):
    """A gated model on an endpoint that does not answer auth_check (a site mirror): a warning naming the endpoint,
    not "does not exist"; a non-gated model is never asked about."""
    from hub_standin import _error
    from huggingface_hub.errors import RepositoryNotFoundError
    from maple.hub.preflight import run_preflight

    for name in OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    class NoAuthCheck(StandInHubApi):
        endpoint = "http://127.0.0.1:9"  # as HfApi.endpoint (HF_ENDPOINT, read by huggingface_hub at import)

        def auth_check(self, repo_id, **kwargs):
            self.calls.append(("auth_check", repo_id, None))
            url = f"http://127.0.0.1:9/api/models/{repo_id}/auth-check"
            raise _error(RepositoryNotFoundError, f"404 Client Error. Repository Not Found for url: {url}", url, 404)

    hub = NoAuthCheck(
        {
            "models": {
                "org/gated": {"revisions": {"main": sha("g")}, "gated": "manual", "parameters": 10},
                "org/open": {"revisions": {"main": sha("o")}, "parameters": 10},
            }
        }
    )
    config = {**small_config(), "models": {"g": {"hub_id": "org/gated"}, "o": {"hub_id": "org/open"}}}
    outcome = run_preflight(plan_of(config), shipped_dir=SHIPPED, lm_eval_dir=lm_eval_dir(), api_factory=lambda: hub)
    assert outcome.problems == []
    warnings = [line for line in outcome.report if line.startswith("warn ")]
    assert len(warnings) == 1 and warnings[0].startswith("warn models.g: model 'org/gated': gated (manual), and ")
    assert "http://127.0.0.1:9 does not answer auth_check (HTTP 404)" in warnings[0]
    assert [c for c in hub.calls if c[0] == "auth_check"] == [("auth_check", "org/gated", None)]
    assert outcome.pins["models"]["org/gated@main"]["commit"] == sha("g")


def test_parameter_count_estimated_from_config_and_model_directories_checked(tmp_path):
    """config.json's estimate of a tiny Llama against the exact count of its safetensors headers; the files a model
    directory must hold (a sharded index's shards among them)."""
    from maple.hub.memory import config_parameter_count, local_parameter_count
    from maple.hub.model_files import missing_model_files
    from tiny_models import build_tiny_llama

    built = Path(build_tiny_llama(tmp_path / "tiny", seed=0))
    exact, source = local_parameter_count(str(built))
    assert source == "safetensors headers"
    assert config_parameter_count(json.loads((built / "config.json").read_text())) == pytest.approx(exact, rel=0.01)
    assert missing_model_files(built) == []
    (built / "model.safetensors").rename(built / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (built / "model.safetensors.index.json").write_text(json.dumps(index))
    assert missing_model_files(built) == [
        "1 of the 2 shards model.safetensors.index.json names (model-00002-of-00002.safetensors)"
    ]
    (built / "model-00001-of-00002.safetensors").rename(built / "model-00002-of-00002.safetensors")
    (built / "model-00001-of-00002.safetensors").write_bytes(b"")
    assert missing_model_files(built) == []
    assert local_parameter_count(str(built))[1] == "config.json, estimated"  # unreadable headers: the config's


def test_prefetched_snapshot_is_found_offline_or_names_prefetch(tmp_path, monkeypatch):
    from huggingface_hub import constants
    from maple.hub.access import HubAccessError
    from maple.hub.cache import snapshot_dir

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    files = tmp_path / "files"
    (files / "sw" / "test").mkdir(parents=True)
    (files / "sw" / "test" / "0000.parquet").write_bytes(b"PAR1")
    hub = StandInHubApi({"datasets": {"org/data": {"revisions": {"main": sha("d")}, "dirs": {sha("d"): str(files)}}}})
    path = hub.snapshot_download("org/data", repo_type="dataset", revision="main")
    assert Path(path) == tmp_path / "hub" / "datasets--org--data" / "snapshots" / sha("d")
    assert snapshot_dir("org/data", sha("d")) == path  # the real huggingface_hub cache lookup
    with pytest.raises(HubAccessError, match=r"run `snakemake preflight prefetch --forcerun prefetch`"):
        snapshot_dir("org/data", sha("other"))


def test_pinned_task_reads_its_commit_or_its_snapshot(tmp_path):
    """A built-in lm-eval task staged at the pinned commit of its dataset; offline, from the commit's snapshot."""
    from maple.hub import task_files, task_sources

    def staged_xcopa_sw(out_dir, **snapshots):
        staged = task_sources.stage_tasks(
            ["xcopa_sw"],
            out_dir,
            shipped_dir=SHIPPED,
            lm_eval_dir=lm_eval_dir(),
            revisions={"cambridgeltl/xcopa": sha("x")},
            **snapshots,
        )
        return task_files.merged_config(staged["xcopa_sw"])

    cfg = staged_xcopa_sw(tmp_path / "a")
    assert cfg["dataset_path"] == "cambridgeltl/xcopa" and cfg["dataset_kwargs"]["revision"] == sha("x")
    assert cfg["dataset_name"] == "sw"
    cfg = staged_xcopa_sw(tmp_path / "b", snapshots={"cambridgeltl/xcopa": str(tmp_path / "snap")})
    assert cfg["dataset_path"] == str(tmp_path / "snap") and "revision" not in (cfg.get("dataset_kwargs") or {})


# --- Slow: real Snakemake runs against the stand-in -------------------------------------------------------------


def hub_env(spec: dict, workdir: Path, hf_home: Path, token: str | None = DUMMY_HF_TOKEN) -> dict:
    """The environment of a run with the hub "online" through the stand-in; HF_ENDPOINT is a closed local port, so
    that anything that went past the seam would fail at once rather than reach the internet."""
    spec_file = workdir / "hub.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    env = {"MAPLE_HUB_API": STANDIN, SPEC_VARIABLE: str(spec_file), "HF_HOME": str(hf_home)}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    if token:
        env["HF_TOKEN"] = env["HUGGING_FACE_HUB_TOKEN"] = token
    return env


def with_env(env: dict, call, *args, **kwargs):
    with pytest.MonkeyPatch.context() as mp:
        for name in (*OFFLINE_VARIABLES, "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            mp.delenv(name, raising=False)
        for name, value in env.items():
            mp.setenv(name, value)
        return call(*args, **kwargs)


def a2_config() -> dict:
    config = small_config()
    config["languages"]["sw"]["codes"] = {"xcopa": "sw", "xstorycloze": "sw"}
    config["languages"]["et"] = {"name": "Estonian", "script": "Latn", "resource": "low", "codes": {"xcopa": "et"}}
    config["models"] = {
        "tiny": {"build": "tiny_llama"},
        "hubok": {"hub_id": "org/tiny-a"},
        "gone": {"hub_id": "org/missing"},
        "gated": {"hub_id": "org/gated"},
    }
    config["evaluation"]["tasks"] = {
        "xcopa": {"source": "lm_eval", "lm_eval_task": "xcopa_{code}", "languages": ["sw", "et"]},
        "xstorycloze": {"source": "lm_eval", "lm_eval_task": "xstorycloze_{code}", "languages": ["sw"]},
    }
    config["dataset_mirrors"] = {"facebook/belebele": "mirrors/belebele"}
    return config


A2_HUB = {
    "token": DUMMY_HF_TOKEN,
    "models": {
        "org/tiny-a": {"revisions": {"main": sha("a1")}, "files": {sha("a1"): ["config.json"]}},
        "org/gated": {"revisions": {"main": sha("g")}, "gated": "manual", "access": False},
    },
    "datasets": {
        "juletxara/xstory_cloze": {
            "revisions": {"main": sha("s"), "refs/convert/parquet": sha("sp")},
            "files": {
                sha("s"): ["README.md", "xstory_cloze.py"],
                sha("sp"): ["sw/train/0000.parquet", "sw/eval/0000.parquet"],
            },
        },
        "cambridgeltl/xcopa": {
            "revisions": {"main": sha("x"), "refs/convert/parquet": sha("xp")},
            "files": {
                sha("x"): ["README.md", "data/sw/test.jsonl", "data/et/test.jsonl"],
                sha("xp"): ["sw/validation/0000.parquet", "sw/test/0000.parquet", "et/test/0000.parquet"],
            },
        },
    },
}


@pytest.mark.slow
def test_preflight_reports_every_problem_in_one_run_and_no_job_starts(tmp_path):
    workdir = tmp_path / "work"
    config = write_config(workdir, a2_config())
    env = hub_env(A2_HUB, workdir, tmp_path / "hf")
    result = with_env(env, run_snakemake, workdir, "--cores", "2", "--resources", "gpu=1", config=config, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    expected = [
        "models.gone: model 'org/missing' does not exist on the hub",
        "models.gated: model 'org/gated' is gated and the licence is not accepted for the account of HF_TOKEN",
        "dataset 'juletxara/xstory_cloze' at revision 'main' ",
        "holds the loading script 'xstory_cloze.py'",
        "evaluation.tasks.xcopa language et (xcopa_et): dataset 'cambridgeltl/xcopa' has no split 'validation' of "
        "config 'et'",
        "dataset_mirrors.facebook/belebele: no such file or directory 'mirrors/belebele'",
    ]
    for line in expected:
        assert line in output, f"{line!r} not reported:\n{output[-4000:]}"
    log = (workdir / "logs" / "preflight" / "preflight.log").read_text()
    assert all(line in log for line in expected)
    assert "xcopa language sw" not in output  # sw has both splits
    assert "ok   models.hubok: model org/tiny-a@main -> " + sha("a1") in log
    # no job after preflight started: nothing built, generated, trained or evaluated, and no pins
    for rule in ("build_tiny_model", "synth_data", "finetune", "evaluate", "prefetch"):
        assert not (workdir / "logs" / rule).exists(), rule
    assert not (workdir / "results").exists() or not any((workdir / "results").rglob("*.*"))

    # The same study without a token: the gated model is named with the missing token.
    env = hub_env(A2_HUB, workdir, tmp_path / "hf", token=None)
    result = with_env(env, run_snakemake, workdir, "--cores", "1", "preflight", config=config, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "models.gated: model 'org/gated' is gated and no hub token is set (HF_TOKEN missing" in output


def test_prefetched_task_dataset_runs_offline_through_lm_eval(tmp_path, monkeypatch):
    """A built-in task (xcopa_sw) whose dataset was pinned and prefetched: with the hub offline the evaluation reads
    the commit's snapshot in the HF cache (a repository laid out with README configs, as on the hub) through
    lm_eval.simple_evaluate, via the real datasets loader."""
    import lm_eval
    from datasets import Dataset
    from huggingface_hub import constants
    from lm_eval.api.model import LM
    from maple.hub import task_sources

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "xcopa"
    rows = [
        {
            "premise": f"Mtu alianguka {i}.",
            "choice1": "Alijikwaa",
            "choice2": "Aliimba",
            "question": "cause",
            "label": 0,
        }
        for i in range(3)
    ]
    for split in ("validation", "test"):
        (repo / "sw").mkdir(parents=True, exist_ok=True)
        Dataset.from_list(rows).to_parquet(str(repo / "sw" / f"{split}-00000-of-00001.parquet"))
    (repo / "README.md").write_text(
        "---\nconfigs:\n- config_name: sw\n  data_files:\n  - split: validation\n    path: sw/validation-*.parquet\n"
        "  - split: test\n    path: sw/test-*.parquet\n---\n"
    )
    hub = StandInHubApi(
        {"datasets": {"cambridgeltl/xcopa": {"revisions": {"main": sha("x")}, "dirs": {sha("x"): str(repo)}}}}
    )
    hub.snapshot_download("cambridgeltl/xcopa", repo_type="dataset", revision=sha("x"))

    class First(LM):
        def loglikelihood(self, requests, disable_tqdm=False):
            return [(0.0 if i % 2 == 0 else -5.0, False) for i, _ in enumerate(requests)]

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            raise NotImplementedError

        def generate_until(self, requests, disable_tqdm=False):
            raise NotImplementedError

    manager = task_sources.task_manager(
        ["xcopa_sw"], tmp_path / "tasks", shipped_dir=SHIPPED, revisions={"cambridgeltl/xcopa": sha("x")}
    )
    results = lm_eval.simple_evaluate(model=First(), tasks=["xcopa_sw"], task_manager=manager)
    assert results["results"]["xcopa_sw"]["acc,none"] == pytest.approx(1.0)  # the first choice, label 0, each time
    assert results["n-samples"]["xcopa_sw"]["effective"] == 3
    staged = (tmp_path / "tasks" / "xcopa_sw.yaml").read_text()
    assert str(tmp_path / "hub" / "datasets--cambridgeltl--xcopa" / "snapshots" / sha("x")) in staged


def test_data_backend_reads_a_prefetched_dataset_offline(tmp_path, monkeypatch):
    """hub_access.load_dataset at a pinned commit with the hub offline: the commit's snapshot in the HF cache, read
    as a local directory (seed data of the translate backend, say); missing, a message naming prefetch."""
    from datasets import Dataset
    from huggingface_hub import constants
    from maple.hub.access import HubAccessError, load_dataset

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "alpaca"
    (repo / "data").mkdir(parents=True)
    Dataset.from_list([{"instruction": "Say hi.", "input": "", "output": "Hi."}] * 2).to_parquet(
        str(repo / "data" / "train-00000-of-00001.parquet")
    )
    hub = StandInHubApi(
        {"datasets": {"org/alpaca": {"revisions": {"main": sha("al")}, "dirs": {sha("al"): str(repo)}}}}
    )
    hub.snapshot_download("org/alpaca", repo_type="dataset", revision="main")
    data = load_dataset("org/alpaca", None, "train", revision=sha("al"))
    assert data.num_rows == 2 and data[0]["output"] == "Hi."
    with pytest.raises(HubAccessError, match="prefetch"):
        load_dataset("org/alpaca", None, "train", revision=sha("other"))


def test_loading_script_matters_only_where_datasets_gets_the_hub_id(monkeypatch):
    """Bactrian-X holds a loading script: the hub backend reading it by id is a problem; reading its data_files as
    hf:// paths (a packaged builder) is not. Either way its commit is pinned for the synth_data job."""
    from maple.hub.preflight import run_preflight

    for name in OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    hub = StandInHubApi(
        {
            "datasets": {
                "MBZUAI/Bactrian-X": {
                    "revisions": {"main": sha("bx")},
                    "files": {sha("bx"): ["Bactrian-X.py", "data/sw.json.gz", "README.md"]},
                }
            }
        }
    )
    for data_files, problems in ((None, 1), ("data/{subset}.json.gz", 0)):
        config = small_config()
        spec = {"backend": "hub", "dataset": "MBZUAI/Bactrian-X", "languages": ["sw"], "data_files": data_files}
        config["datasets"]["bx"] = {k: v for k, v in spec.items() if v is not None}
        outcome = run_preflight(
            plan_of(config), shipped_dir=SHIPPED, lm_eval_dir=lm_eval_dir(), api_factory=lambda: hub
        )
        assert len(outcome.problems) == problems, outcome.problems
        if problems:
            assert "datasets.bx.dataset: dataset 'MBZUAI/Bactrian-X'" in outcome.problems[0]
            assert "holds the loading script 'Bactrian-X.py'" in outcome.problems[0]
        assert outcome.pins["datasets"]["MBZUAI/Bactrian-X@main"]["commit"] == sha("bx")


def test_hub_backend_reads_prefetched_data_files_offline(tmp_path, monkeypatch):
    """The hub backend's data_files (Bactrian-X's data/<lang>.json.gz) at a pinned commit, the hub offline: read from
    the commit's snapshot in the HF cache instead of an hf:// path."""
    import gzip

    from huggingface_hub import constants
    from maple.data.hub_dataset import load_subset

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "bx"
    (repo / "data").mkdir(parents=True)
    with gzip.open(repo / "data" / "sw.json.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"instruction": "Sema jambo.", "input": "", "output": "Jambo."}) + "\n")
    hub = StandInHubApi(
        {"datasets": {"MBZUAI/Bactrian-X": {"revisions": {"main": sha("bx")}, "dirs": {sha("bx"): str(repo)}}}}
    )
    hub.snapshot_download("MBZUAI/Bactrian-X", repo_type="dataset", revision="main")
    data = load_subset("MBZUAI/Bactrian-X", "sw", "train", sha("bx"), False, data_files="data/{subset}.json.gz")
    assert data.num_rows == 1 and data[0]["output"] == "Jambo."
