"""Script-free data sources (maple.hub.task_sources): the shipped task YAMLs that wrap lm-eval's tasks and read the hub's
parquet conversion, and the `dataset_mirrors` key that points any task or data backend at a local directory.

The hub is never reached: every run reads small local fixtures laid out as the parquet conversion is
(`{config}/{split}/0000.parquet`, the real column names), through lm_eval.simple_evaluate with a stand-in LM.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import REPO
from maple.hub import task_files, task_sources

STUDY_CONFIG = REPO / "config" / "maple.yaml"
SHIPPED = REPO / "workflow" / "resources" / "lm_eval_tasks"

# The study's tasks whose source changed: shipped task -> (hub dataset, parquet config, the lm-eval task it wraps).
CHANGED = {
    "maple_mlqa_de_de": ("facebook/mlqa", "mlqa.de.de", "mlqa_de_de"),
    "maple_xstorycloze_eu": ("juletxara/xstory_cloze", "eu", "xstorycloze_eu"),
    "maple_xlsum_swahili": ("csebuetnlp/xlsum", "swahili", None),  # our own task: no lm-eval original
}
BUILTIN_MIRRORED = {"xcopa_et": ("cambridgeltl/xcopa", "et")}  # a built-in task pointed at a mirror


def lm_eval_dir() -> Path:
    return task_files.lm_eval_tasks_dir()


def study() -> dict:
    return yaml.safe_load(STUDY_CONFIG.read_text(encoding="utf-8"))


def write_parquet(root: Path, config: str, split: str, rows: list[dict]) -> None:
    from datasets import Dataset

    path = root / config / split / "0000.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows).to_parquet(str(path))


def mlqa_rows(n):  # facebook/mlqa's columns
    return [
        {
            "context": f"Berlin ist die Hauptstadt von Land {i}.",
            "question": f"Was ist die Hauptstadt von Land {i}?",
            "answers": {"answer_start": [0], "text": ["Berlin"]},
            "id": f"q{i}",
        }
        for i in range(n)
    ]


def xstorycloze_rows(n):  # juletxara/xstory_cloze's columns
    return [
        {
            "story_id": f"s{i}",
            "input_sentence_1": f"Lehen esaldia {i}.",
            "input_sentence_2": "Bigarrena.",
            "input_sentence_3": "Hirugarrena.",
            "input_sentence_4": "Laugarrena.",
            "sentence_quiz1": "Amaiera ona.",
            "sentence_quiz2": "Amaiera txarra.",
            "answer_right_ending": 1 + i % 2,
        }
        for i in range(n)
    ]


def xlsum_rows(n):  # csebuetnlp/xlsum's columns
    return [
        {
            "id": str(i),
            "url": f"https://www.bbc.com/swahili/{i}",
            "title": f"Kichwa {i}",
            "summary": f"Habari ya leo namba {i}",
            "text": f"Habari ya leo namba {i}. " * 20,
        }
        for i in range(n)
    ]


def xcopa_rows(n):  # cambridgeltl/xcopa's columns
    return [
        {
            "premise": f"Mees kukkus {i}.",
            "choice1": "Ta libastus.",
            "choice2": "Ta laulis.",
            "question": "cause",
            "label": i % 2,
            "idx": i,
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory) -> dict[str, str]:
    """Mirror directories of the four datasets, each laid out as the parquet conversion, with a second config
    beside the one the task reads (a task must read its own config only)."""
    root = tmp_path_factory.mktemp("mirrors")
    layout = {
        "facebook/mlqa": (["mlqa.de.de", "mlqa.en.en"], ["test", "validation"], mlqa_rows),
        "juletxara/xstory_cloze": (["eu", "en"], ["train", "eval"], xstorycloze_rows),
        "csebuetnlp/xlsum": (["swahili", "english"], ["validation", "test"], xlsum_rows),
        "cambridgeltl/xcopa": (["et", "it"], ["validation", "test"], xcopa_rows),
    }
    found = {}
    for hub_id, (configs, splits, rows) in layout.items():
        for n, config in zip((4, 7), configs):
            for split in splits:
                write_parquet(root / hub_id, config, split, rows(n))
        found[hub_id] = str(root / hub_id)
    return found


def stand_in_lm(answer):
    """A stand-in LM: generations from answer(prompt), recorded prompts, log-likelihoods preferring the second
    choice of the multiple-choice fixtures."""
    from lm_eval.api.model import LM

    class StandIn(LM):
        def __init__(self):
            super().__init__()
            self.prompts = []

        def loglikelihood(self, requests, disable_tqdm=False):
            return [(-1.0 if r.arguments[1].strip() in SECOND_CHOICES else -2.0, False) for r in requests]

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            raise NotImplementedError

        def generate_until(self, requests, disable_tqdm=False):
            self.prompts.extend(r.arguments[0] for r in requests)
            return [answer(r.arguments[0]) for r in requests]

    return StandIn()


SECOND_CHOICES = {"Amaiera txarra.", "ta laulis."}


@pytest.fixture(scope="module")
def mirrored_results(mirrors, tmp_path_factory):
    """The changed tasks (one language each) and a mirrored built-in task, staged from their shipped YAMLs with
    every dataset pointed at its fixture mirror, through lm_eval.simple_evaluate in one run."""
    import lm_eval

    names = [*CHANGED, *BUILTIN_MIRRORED]
    staged = tmp_path_factory.mktemp("staged")
    manager = task_sources.task_manager(names, staged, shipped_dir=SHIPPED, mirrors=mirrors)
    lm = stand_in_lm(lambda prompt: " Berlin" if prompt.startswith("Context:") else " Habari ya leo namba 1")
    results = lm_eval.simple_evaluate(model=lm, tasks=names, log_samples=True, task_manager=manager)
    return results, lm.prompts, staged


@pytest.mark.parametrize("name", [*CHANGED, *BUILTIN_MIRRORED])
def test_task_runs_from_its_shipped_yaml_on_a_parquet_mirror(name, mirrored_results, mirrors):
    results, prompts, staged = mirrored_results
    hub_id, config = (CHANGED.get(name) or BUILTIN_MIRRORED[name])[:2]
    cfg = results["configs"][name]
    assert cfg["dataset_path"] == str(Path(mirrors[hub_id]).resolve())
    assert cfg.get("dataset_name") is None
    assert "revision" not in cfg["dataset_kwargs"]
    assert all(f.startswith(f"{config}/") for f in cfg["dataset_kwargs"]["data_files"].values())
    samples = results["samples"][name]
    assert len(samples) == 4  # the task's own config (4 rows), not the other config of the mirror (7)
    scores = results["results"][name]
    if name.startswith("maple_mlqa"):
        assert scores["f1,none"] == pytest.approx(1.0) and scores["exact_match,none"] == pytest.approx(1.0)
        assert any(p.startswith("Context: Berlin ist") and p.endswith("Answer:") for p in prompts)
    elif name.startswith("maple_xstorycloze"):
        assert scores["acc,none"] == pytest.approx(0.5)  # answer_right_ending alternates 1, 2
    elif name.startswith("maple_xlsum"):
        per_doc = {s["doc_id"]: s["rougeL"] for s in samples}
        assert per_doc[1] == pytest.approx(1.0) and scores["rougeL,none"] < 1.0
        assert any(p.startswith("Article: Habari") and p.endswith("in Swahili.\nSummary:") for p in prompts)
    else:
        assert scores["acc,none"] == pytest.approx(0.5)
    assert (staged / f"{name}.yaml").is_file()


# One shipped task of each family: its folder, and the hub dataset it reads.
PLAIN = {
    "maple_mlqa_de_de": ("maple_mlqa", "facebook/mlqa"),
    "maple_xstorycloze_eu": ("maple_xstorycloze", "juletxara/xstory_cloze"),
    "maple_xlsum_swahili": ("maple_xlsum", "csebuetnlp/xlsum"),
}


def test_plain_lm_eval_reads_the_shipped_task_files(mirrors, tmp_path):
    """Each family's folder as shipped, copied with its `dataset_path:` line naming a local fixture instead of the hub
    and the parquet revision dropped (a local directory has none); everything else (the task files, their
    `!function` code beside them) byte for byte. Plain lm-eval, a TaskManager over the folders and none of this
    workflow's staging, loads one task of each family and scores the fixture."""
    import shutil

    import lm_eval
    from lm_eval.tasks import TaskManager

    folders = []
    for family, hub_id in PLAIN.values():
        folder = tmp_path / family
        shutil.copytree(SHIPPED / family, folder)
        for path in folder.glob("*.yaml"):
            text = path.read_text(encoding="utf-8")
            pointed = text.replace(f"dataset_path: {hub_id}\n", f"dataset_path: {mirrors[hub_id]}\n")
            pointed = pointed.replace("  revision: refs/convert/parquet\n", "")
            assert f"dataset_path: {hub_id}" not in pointed and "  revision:" not in pointed, path
            path.write_text(pointed, encoding="utf-8")
        folders.append(str(folder))
    manager = TaskManager(include_path=folders, include_defaults=False)
    lm = stand_in_lm(lambda prompt: " Berlin" if prompt.startswith("Context:") else " Habari ya leo namba 1")
    results = lm_eval.simple_evaluate(model=lm, tasks=list(PLAIN), log_samples=True, task_manager=manager)
    for name, (_family, hub_id) in PLAIN.items():
        assert results["configs"][name]["dataset_path"] == mirrors[hub_id]
        assert len(results["samples"][name]) == 4  # the task's own config of the fixture
    scores = results["results"]
    assert scores["maple_mlqa_de_de"]["f1,none"] == pytest.approx(1.0)  # lm-eval's MLQA normalisation, copied
    assert scores["maple_xstorycloze_eu"]["acc,none"] == pytest.approx(0.5)
    assert 0.0 < scores["maple_xlsum_swahili"]["rougeL,none"] < 1.0


@pytest.mark.parametrize("name", [n for n in CHANGED if CHANGED[n][2]])
def test_shipped_task_changes_only_the_data_source(name):
    """A shipped wrapper equals lm-eval's own task but for its name, tag and where the data comes from; the code
    its `!function`s name is lm-eval's, copied beside it."""
    hub_id, config, original = CHANGED[name]
    shipped = task_files.shipped_task_files(SHIPPED)[name]
    ours = task_files.read_task_yaml(shipped)
    assert "include" not in ours  # self-contained
    original_file = task_files.builtin_task_files([original], lm_eval_dir())[original]
    theirs = task_files.plain_config(original_file)
    for value in ours.values():
        if str(value).startswith(task_files.FUNCTION_TAG):
            module = value[len(task_files.FUNCTION_TAG) :].rsplit(".", 1)[0] + ".py"
            copied = (shipped.parent / module).read_text(encoding="utf-8")
            assert copied.split("\n", 1)[1] == (original_file.parent / module).read_text(encoding="utf-8")
    data_keys = {"task", "tag", "dataset_path", "dataset_name", "dataset_kwargs"}
    assert {k: v for k, v in ours.items() if k not in data_keys} == {
        k: v for k, v in theirs.items() if k not in data_keys
    }
    source = task_sources.data_source(ours)
    assert source["dataset"] == theirs["dataset_path"] == hub_id
    assert source["name"] is None and theirs["dataset_name"] == config
    assert source["revision"] == task_sources.PARQUET_REVISION
    assert source["data_files"] == {s: f"{config}/{s}/*.parquet" for s in task_sources.declared_splits(theirs)}


def study_task_names() -> dict[str, str]:
    from maple.config.validation import checked_study

    return {
        f"{alias}/{lang}": name
        for alias, task in checked_study(study())[1].tasks.items()
        for lang, name in task.lm_eval_names.items()
    }


def test_every_study_task_reads_a_script_free_source():
    """Each task language of config/maple.yaml: a shipped task reads the parquet conversion of one config; a
    built-in task (unchanged) reads a dataset known to hold plain data files, never one with a loading script."""
    names = study_task_names()
    shipped = task_files.shipped_task_files(SHIPPED)
    builtin = task_files.builtin_task_files([n for n in names.values() if n not in shipped], lm_eval_dir())
    unchanged = set()
    for where, name in names.items():
        if name in shipped:
            source = task_sources.data_source(task_files.merged_config(shipped[name]))
            assert source["dataset"] in task_sources.SCRIPT_DATASETS, where
            assert source["revision"] == task_sources.PARQUET_REVISION, where
            assert source["name"] is None and set(source["data_files"]) == set(source["splits"]), where
            configs = {f.split("/")[0] for f in source["data_files"].values()}
            assert len(configs) == 1 and all(f.endswith("/*.parquet") for f in source["data_files"].values()), where
        else:
            source = task_sources.data_source(task_files.merged_config(builtin[name]))
            assert source["dataset"] in task_sources.SCRIPT_FREE_DATASETS, f"{where}: {name} reads {source['dataset']}"
            assert not source["revision"] and not source["data_files"], where
            unchanged.add(name.split("_")[0])
    assert unchanged == {"belebele", "xcopa", "xnli", "xquad"}


def test_parquet_revision_alone_would_mix_configs(tmp_path):
    """Why the tasks name data_files: with no README (the conversion has none), datasets infers one "default" config
    whose splits come from directory names across every config, and reads `eval` as `test`."""
    from datasets import load_dataset

    for config, n in (("eu", 4), ("en", 7)):
        for split in ("train", "eval"):
            write_parquet(tmp_path, config, split, xstorycloze_rows(n))
    inferred = load_dataset(str(tmp_path))
    assert sorted(inferred) == ["test", "train"] and inferred["train"].num_rows == 11
    files = task_sources.parquet_data_files("eu", ["train", "eval"])
    exact = load_dataset(str(tmp_path), data_files=files)
    assert sorted(exact) == ["eval", "train"] and exact["eval"].num_rows == 4


def test_mirror_source_and_parquet_source_are_pure():
    cfg = {
        "dataset_path": "facebook/belebele",
        "dataset_name": "eng_Latn",
        "test_split": "test",
        "fewshot_split": "test",
        "dataset_kwargs": {"trust_remote_code": True},
    }
    assert task_sources.parquet_source(cfg) == {
        "dataset_name": None,
        "dataset_kwargs": {"revision": "refs/convert/parquet", "data_files": {"test": "eng_Latn/test/*.parquet"}},
    }
    assert task_sources.mirror_overrides(cfg, {"other/x": "/m"}) == {}
    assert task_sources.mirror_overrides(cfg, {"facebook/belebele": "/m/belebele"}) == {
        "dataset_path": str(Path("/m/belebele").resolve()),
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": "eng_Latn/test/*.parquet"}},
    }
    assert task_sources.declared_splits({"validation_split": "eval", "training_split": "train"}) == ["train", "eval"]


def test_data_backends_read_a_mirror(tmp_path):
    """dataset_mirrors reaches the data backends: translate's seed data and the hub backend's subsets are read
    from the mirror's parquet files, the records still naming the hub dataset."""
    from maple.config.validation import checked_study
    from maple.data import hub_dataset as hub
    from maple.data import translate

    alpaca = [{"instruction": f"Do {i}", "input": "", "output": f"Done {i}", "text": ""} for i in range(3)]
    write_parquet(tmp_path / "alpaca", "default", "train", alpaca)
    spec = task_sources.mirror_data_spec(
        {"backend": "translate", "seed_data": "tatsu-lab/alpaca", "seed_split": "train"},
        {"tatsu-lab/alpaca": str(tmp_path / "alpaca")},
    )
    assert spec["seed_data"] == str(tmp_path / "alpaca" / "default")
    assert [r["instruction"] for r in translate.load_seed_records(spec)] == ["Do 0", "Do 1", "Do 2"]

    for lang in ("de", "ru"):
        rows = [
            {"instruction": f"{lang} Frage {i}", "input": "", "id": str(i), "output": f"Antwort {i}"} for i in range(6)
        ]
        write_parquet(tmp_path / "bactrian", lang, "train", rows)
    languages = {lang: {"name": lang, "script": "Latn", "codes": {"bactrian_x": lang}} for lang in ("de", "ru")}
    spec = {"backend": "hub", "languages": ["de", "ru"], "dataset": "MBZUAI/Bactrian-X", "code_key": "bactrian_x"}
    mirrored = task_sources.mirror_data_spec(spec, {"MBZUAI/Bactrian-X": str(tmp_path / "bactrian")})
    records = hub.build({**mirrored, "n_per_language": 3}, languages, seed=1)
    assert sorted({r["lang"] for r in records}) == ["de", "ru"] and len(records) == 6
    assert all(r["instruction"].startswith(r["lang"]) and r["source"] == "hub:MBZUAI/Bactrian-X" for r in records)

    config = {**study(), "dataset_mirrors": {"tatsu-lab/alpaca": str(tmp_path / "alpaca")}}
    resolved = checked_study(config)[1]
    assert resolved.datasets["bactrianx"]["seed_data"] == str(tmp_path / "alpaca" / "default")
    assert resolved.dataset_mirrors == {"tatsu-lab/alpaca": str(tmp_path / "alpaca")}
    assert checked_study(study())[1].datasets["bactrianx"]["seed_data"] == "tatsu-lab/alpaca"


def test_generated_task_files_are_up_to_date(tmp_path):
    """The checked-in wrappers (and the lm-eval code they name) are what _generate_configs.py writes from the
    installed lm-eval."""
    import runpy
    import shutil

    copied = {"maple_mlqa": ["utils.py"]}  # lm-eval's code; maple_xlsum's utils.py is our own
    for family in ("maple_mlqa", "maple_xstorycloze", "maple_xlsum"):
        copy = tmp_path / family
        shutil.copytree(SHIPPED / family, copy)
        for path in [*copy.glob("maple_*.yaml"), *(copy / name for name in copied.get(family, []))]:
            path.unlink()
        runpy.run_path(str(copy / "_generate_configs.py"), run_name="__main__")
        names = [p.name for p in copy.glob("maple_*.yaml")] + copied.get(family, [])
        written = {name: (copy / name).read_text(encoding="utf-8") for name in names}
        assert len(written) >= 11, family
        shipped = {p.name: p.read_text(encoding="utf-8") for p in (SHIPPED / family).glob("maple_*.yaml")}
        shipped.update({name: (SHIPPED / family / name).read_text(encoding="utf-8") for name in copied.get(family, [])})
        assert written == shipped, family
        assert (SHIPPED / family / "README.md").is_file(), family


def test_hub_source_is_the_parquet_conversion_of_one_config(tmp_path, monkeypatch):
    """Without a mirror, a staged shipped task asks datasets for the hub id at refs/convert/parquet with its one
    config's data files (captured at datasets.load_dataset; the hub is never reached)."""
    import datasets

    calls = []

    def capture(*args, **kwargs):
        calls.append(kwargs)
        raise ConnectionError("stand-in: no hub in tests")

    monkeypatch.setattr(datasets, "load_dataset", capture)
    manager = task_sources.task_manager(["maple_mlqa_de_de"], tmp_path, shipped_dir=SHIPPED)
    with pytest.raises(ConnectionError):
        manager.load(["maple_mlqa_de_de"])
    assert calls == [
        {
            "path": "facebook/mlqa",
            "name": None,
            "revision": "refs/convert/parquet",
            "data_files": {"validation": "mlqa.de.de/validation/*.parquet", "test": "mlqa.de.de/test/*.parquet"},
        }
    ]


def test_evaluation_job_reads_the_mirror(mirrors, tmp_path):
    """The evaluation job's hook (maple.evaluate.job.evaluate_variant): a tiny model on a shipped task whose dataset
    has a mirror; the score file's lm-eval config names the mirror."""
    import json

    from maple.evaluate.job import evaluate_variant
    from maple.runtime.tasks import Task
    from tiny_models import build_tiny_llama

    model = build_tiny_llama(tmp_path / "model")
    task = Task(
        alias="xstorycloze",
        source="lm_eval",
        kind=None,
        metric="acc",
        lm_eval_names={"eu": "maple_xstorycloze_eu"},
        mirrors={"juletxara/xstory_cloze": mirrors["juletxara/xstory_cloze"]},
    )
    score_file = tmp_path / "eu.json"
    evaluate_variant(
        model_alias="tiny",
        variant="base",
        base_source=model,
        adapter_dir=None,
        bits=16,
        task=task,
        score_files={"eu": score_file},
        batch_size=4,
    )
    score = json.loads(score_file.read_text())
    assert score["n"] == 4 and 0.0 <= score["value"] <= 1.0
    assert score["lm_eval"]["config"]["dataset_path"] == str(Path(mirrors["juletxara/xstory_cloze"]).resolve())


def test_each_task_gets_only_the_mirrors_it_reads():
    """An evaluation job's params hold the dataset_mirrors its task reads, so a mirror added for one dataset reruns
    only the jobs that read it (worked out from the YAMLs as text: planning imports no lm-eval)."""
    from maple.config.validation import checked_study

    mirrors = {"facebook/mlqa": "/m/mlqa", "cambridgeltl/xcopa": "/m/xcopa", "tatsu-lab/alpaca": "/m/alpaca"}
    tasks = checked_study(study())[1].tasks
    used = {
        alias: task_sources.task_mirrors(
            list(task.lm_eval_names.values()), mirrors, shipped_dir=SHIPPED, lm_eval_dir=lm_eval_dir()
        )
        for alias, task in tasks.items()
    }
    assert used == {
        "belebele": {},
        "xcopa": {"cambridgeltl/xcopa": "/m/xcopa"},
        "xnli": {},
        "xstorycloze": {},
        "xquad": {},
        "mlqa": {"facebook/mlqa": "/m/mlqa"},
        "xlsum": {},
    }
    assert task_sources.task_mirrors(["xcopa_et"], {}, shipped_dir=SHIPPED, lm_eval_dir=lm_eval_dir()) == {}


@pytest.mark.slow
def test_study_with_mirrors_plans_offline(tmp_path):
    """config/maple.yaml with dataset_mirrors set still plans, offline, the same jobs."""
    from conftest import planned_jobs, write_config

    mirrors = {hub_id: str(tmp_path / "mirrors" / hub_id) for hub_id in ("facebook/mlqa", "tatsu-lab/alpaca")}
    config = write_config(tmp_path / "work", {**study(), "dataset_mirrors": mirrors})
    jobs = planned_jobs(tmp_path / "work", config=config)
    assert sum(jobs.values()) == 602 and jobs["evaluate_mlqa"] == 74  # 600 + preflight and prefetch


def test_hub_backend_reads_data_files_past_a_loading_script(monkeypatch):
    """The hub backend's data_files: Bactrian-X's data/<lang>.json.gz (its repository holds a loading script) read
    with the packaged json builder through an hf:// path; the parquet conversion likewise, its revision quoted as
    huggingface_hub parses it. datasets.load_dataset is a stand-in here: the hub is never reached."""
    import datasets
    from huggingface_hub.utils import parse_hf_uri
    from maple.data import hub_dataset as hub

    calls = []

    def stand_in(path, name=None, split=None, **kwargs):
        calls.append({"path": path, "split": split, **kwargs})
        lang = kwargs["data_files"][split].split("/")[-1][:2]
        rows = [
            {"instruction": f"{lang} Frage {i}", "input": "", "id": str(i), "output": f"Antwort {i}"} for i in range(4)
        ]
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", stand_in)
    languages = {lang: {"name": lang, "script": "Latn", "codes": {"bactrian_x": lang}} for lang in ("de", "ru")}
    spec = {
        "backend": "hub",
        "dataset": "MBZUAI/Bactrian-X",
        "code_key": "bactrian_x",
        "data_files": "data/{subset}.json.gz",
        "n_per_language": 2,
    }
    records = hub.build(spec, languages, seed=1)
    assert len(records) == 4 and {r["source"] for r in records} == {"hub:MBZUAI/Bactrian-X"}
    assert [(c["path"], c["data_files"]) for c in calls] == [
        ("json", {"train": "hf://datasets/MBZUAI/Bactrian-X@main/data/de.json.gz"}),
        ("json", {"train": "hf://datasets/MBZUAI/Bactrian-X@main/data/ru.json.gz"}),
    ]

    url = task_sources.hub_file_url("MBZUAI/Bactrian-X", "refs/convert/parquet", "de/train/*.parquet")
    assert url == "hf://datasets/MBZUAI/Bactrian-X@refs%2Fconvert%2Fparquet/de/train/*.parquet"
    parsed = parse_hf_uri(url)
    assert (parsed.id, parsed.revision, parsed.path_in_repo) == (
        "MBZUAI/Bactrian-X",
        "refs/convert/parquet",
        "de/train/*.parquet",
    )
    assert task_sources.data_file_builder("de/train/*.parquet") == "parquet"
