"""The MAPLE study config (config/maple.yaml): it plans offline, its DAG is the study grid, and every task language
resolves to a task lm-eval has (built in, or shipped in workflow/resources/lm_eval_tasks).

Nothing here loads a model or touches the network: the dry runs execute under a guard that fails on any internet
connection, host lookup or import of a model library, and lm-eval's task files are read as text / YAML.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_snakemake
from maple.config.validation import checked_study
from maple.cost.data_jobs import plan_synth_parts
from maple.cost.throughput import read_gpu_summary

STUDY_CONFIG = REPO / "config" / "maple.yaml"
SHIPPED_TASKS = REPO / "workflow" / "resources" / "lm_eval_tasks"
XLSUM_DIR = SHIPPED_TASKS / "maple_xlsum"

# Libraries whose import during planning would mean a model, a dataset or lm-eval is being loaded.
MODEL_LIBRARIES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets", "lm_eval", "vllm")
NETWORK_ENV = (
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_ENDPOINT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)

# A sitecustomize module put first on the dry run's PYTHONPATH: it records and refuses internet connections, host
# lookups and imports of model libraries in the Snakemake process.
GUARD = """
import os, socket, sys

_LOG = os.environ["MAPLE_PLANNING_GUARD_LOG"]
_BLOCKED = set(os.environ["MAPLE_PLANNING_GUARD_MODULES"].split(","))
_LOCAL = {None, "", "localhost", "127.0.0.1", "::1"}


def _refuse(what):
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(what + "\\n")
    raise RuntimeError("maple planning guard: planning must not " + what)


_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL:
        _refuse("connect to %r" % (address,))
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL:
        _refuse("connect to %r" % (address,))
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host not in _LOCAL:
        _refuse("look up host %r" % (host,))
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo


class _BlockModelLibraries:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            _refuse("import " + name)
        return None


sys.meta_path.insert(0, _BlockModelLibraries())
"""


def load_study() -> dict:
    with open(STUDY_CONFIG, encoding="utf-8") as f:
        return yaml.safe_load(f)


def expected_jobs(config: dict) -> dict[str, int]:
    """Rule -> job count of a first dry run, from the config's grid."""
    n_models, n_datasets = len(config["models"]), len(config["datasets"])
    ranks, bits = config["finetune"]["ranks"], config["finetune"]["bits"]
    adapters_per_model = n_datasets * len(ranks) * len(bits)
    built = sum(1 for m in config["models"].values() if "build" in m)
    jobs = {
        "synth_data": n_datasets,
        "finetune": n_models * adapters_per_model,
        **{f"evaluate_{task}": n_models * (1 + adapters_per_model) for task in config["evaluation"]["tasks"]},
        "aggregate": 1,
        "summarize": 1,
        "plot": n_models,
        "all": 1,
        # the local rules before any GPU job: preflight always; prefetch where the study reads the hub (hub.prefetch)
        "preflight": 1,
    }
    reads_hub = any("hub_id" in m for m in config["models"].values()) or any(
        t["source"] == "lm_eval" for t in config["evaluation"]["tasks"].values()
    )
    if reads_hub and config.get("hub", {}).get("prefetch", True):
        jobs["prefetch"] = 1
    if built:
        jobs["build_tiny_model"] = built
    # a model-written dataset over evaluation.max_job_hours is written in parts (their plan: tests/test_shards.py)
    plan = plan_synth_parts(checked_study(config, [], str(REPO))[1], read_gpu_summary(None))
    in_parts = [name for name, parts in plan.items() if parts]
    if in_parts:
        jobs["synth_part"] = sum(len(parts) for parts in plan.values())
        jobs["synth_data_from_parts"] = len(in_parts)
    jobs["synth_data"] = n_datasets - len(in_parts)
    if not jobs["synth_data"]:
        del jobs["synth_data"]
    return jobs


def job_stats(text: str) -> dict[str, int]:
    """Rule -> count from the "Job stats:" table(s) Snakemake prints for a dry run:

    Job stats:
    job                     count
    --------------------  -------
    evaluate_belebele          74
    ...
    total                     596
    """
    counts: dict[str, int] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.split() != ["job", "count"]:
            continue
        for row in lines[i + 1 :]:
            parts = row.split()
            if parts and set(row.strip()) <= set("- "):
                continue  # the rule under the header
            if len(parts) != 2 or not parts[1].isdigit():
                break
            if parts[0] != "total":
                counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="module", params=["hf_offline", "network_env_unset"])
def dry_run(request, tmp_path_factory):
    """A dry run of the study in an empty workdir, with the hub marked offline, or with every network-related
    variable unset (then only the guard stands between planning and the network): (jobs, output, guard_log)."""
    workdir = tmp_path_factory.mktemp(f"study-{request.param}")
    guard_dir = tmp_path_factory.mktemp(f"guard-{request.param}")
    (guard_dir / "sitecustomize.py").write_text(GUARD, encoding="utf-8")
    guard_log = guard_dir / "violations.log"
    with pytest.MonkeyPatch.context() as mp:
        for name in NETWORK_ENV:
            mp.delenv(name, raising=False)
        if request.param == "hf_offline":
            for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
                mp.setenv(name, "1")
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(guard_dir), os.environ.get("PYTHONPATH")])))
        mp.setenv("MAPLE_PLANNING_GUARD_LOG", str(guard_log))
        mp.setenv("MAPLE_PLANNING_GUARD_MODULES", ",".join(MODEL_LIBRARIES))
        result = run_snakemake(workdir, "-n", "--quiet", "rules", config=STUDY_CONFIG, timeout=600)
    output = result.stdout + result.stderr
    violations = guard_log.read_text(encoding="utf-8") if guard_log.exists() else ""
    return job_stats(output), output, violations


@pytest.mark.slow
def test_study_plans_offline_without_loading_models(dry_run):
    jobs, output, violations = dry_run
    assert violations == "", f"planning touched the network or a model library:\n{violations}"
    assert "maple planning guard" not in output
    assert jobs, f"no job table in the dry run output:\n{output[-3000:]}"


@pytest.mark.slow
def test_study_dry_run_is_the_grid(dry_run):
    jobs, output, _ = dry_run
    config = load_study()
    expected = expected_jobs(config)
    assert jobs == expected
    assert jobs.get("build_tiny_model", 0) == 0  # hub models only
    # the local rules before any GPU job (docs/gpus-slurm-offline.md, "Preflight")
    assert jobs["preflight"] == jobs["prefetch"] == 1
    # The grid itself: every (model, dataset, rank, bits) adapter, and per task the base plus every adapter.
    adapters = len(config["datasets"]) * len(config["finetune"]["ranks"]) * len(config["finetune"]["bits"])
    assert jobs["finetune"] == len(config["models"]) * adapters
    for task in config["evaluation"]["tasks"]:
        assert jobs[f"evaluate_{task}"] == len(config["models"]) * (adapters + 1)


def test_study_is_the_paper_grid():
    config = load_study()
    assert {m["hub_id"] for m in config["models"].values()} == {"meta-llama/Llama-2-7b-hf", "mistralai/Mistral-7B-v0.1"}
    assert sorted(config["finetune"]["ranks"]) == [2, 4, 8, 16, 32, 64]
    assert sorted(config["finetune"]["bits"]) == [4, 8, 16]
    assert {d["backend"] for d in config["datasets"].values()} == {"generate", "translate"}
    assert expected_jobs(config)["finetune"] == 72


def test_study_resolves():
    from maple.config.validation import checked_study

    study = checked_study(load_study())[1]
    assert len(study.finetunes) == expected_jobs(load_study())["finetune"]
    assert all(t.source == "lm_eval" for t in study.tasks.values())


# --- The languages table ----------------------------------------------------------------------------------------


def test_languages_table():
    from maple.data.filters import known_script

    languages = load_study()["languages"]
    assert len(languages) >= 35
    for lang, facts in languages.items():
        assert facts["resource"] == ("high" if facts["joshi_class"] >= 4 else "low"), lang
        assert known_script(facts["script"]), f"{lang}: script {facts['script']} unknown to the script filter"
        codes = facts.get("codes", {})
        for key in ("belebele", "nllb"):
            if key in codes:
                assert re.fullmatch(r"[a-z]{3}_[A-Z][a-z]{3}", codes[key]), (lang, key, codes[key])
        if "belebele" in codes:
            # FLORES-200 codes end in the script (Hang: Korean's Hangul inside Kore).
            assert codes["belebele"].endswith(facts["script"]) or (facts["script"], codes["belebele"][-4:]) == (
                "Kore",
                "Hang",
            )
    used = {lang for d in load_study()["datasets"].values() for lang in d["languages"]}
    used |= {lang for t in load_study()["evaluation"]["tasks"].values() for lang in t["languages"]}
    assert set(languages) == used, f"languages no dataset or task uses: {sorted(set(languages) - used)}"


# --- Tasks: every resolved name exists in lm-eval ----------------------------------------------------------------


def lm_eval_tasks_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("lm_eval")  # located, not imported
    assert spec is not None and spec.submodule_search_locations, "lm_eval is not installed"
    return Path(list(spec.submodule_search_locations)[0]) / "tasks"


TASK_LINE = re.compile(r"^task:\s*[\"']?([^\s\"'#]+)", re.MULTILINE)


@pytest.fixture(scope="module")
def builtin_tasks() -> dict[str, Path]:
    """lm-eval's built-in task names -> their YAML file, from the `task:` lines of lm_eval/tasks/**/*.yaml."""
    names: dict[str, Path] = {}
    for path in sorted(lm_eval_tasks_dir().rglob("*.yaml")):
        for name in TASK_LINE.findall(path.read_text(encoding="utf-8", errors="replace")):
            names.setdefault(name, path)
    assert len(names) > 1000
    return names


@pytest.fixture(scope="module")
def shipped_tasks(tmp_path_factory) -> dict[str, Path]:
    """The tasks this repo ships, as the evaluation job stages them (maple.hub.task_sources), indexed as lm-eval's
    TaskManager indexes its include_path."""
    from lm_eval.tasks._index import Kind, TaskIndex
    from maple.hub import task_files, task_sources

    names = task_files.shipped_task_files(SHIPPED_TASKS)
    staged = tmp_path_factory.mktemp("staged")
    task_sources.stage_tasks(names, staged, shipped_dir=SHIPPED_TASKS, lm_eval_dir=lm_eval_tasks_dir())
    index = TaskIndex.build([staged])
    found = {name: entry.yaml_path for name, entry in index.items() if entry.kind == Kind.TASK}
    assert set(found) == set(names)
    return found


def task_config(path: Path) -> dict:
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(path, resolve_func=False, recursive=True)


def test_every_task_language_is_an_lm_eval_task(builtin_tasks, shipped_tasks):
    from maple.config.validation import checked_study

    assert not set(builtin_tasks) & set(shipped_tasks), "a shipped task would shadow a built-in one"
    study = checked_study(load_study())[1]
    missing = [
        f"{alias}/{lang}: {name}"
        for alias, task in study.tasks.items()
        for lang, name in task.lm_eval_names.items()
        if name not in builtin_tasks and name not in shipped_tasks
    ]
    assert not missing, f"task names lm-eval does not have: {missing}"


def test_task_metrics_are_reported_by_lm_eval(builtin_tasks, shipped_tasks):
    from maple.config.validation import checked_study

    study = checked_study(load_study())[1]
    for alias, task in study.tasks.items():
        for lang, name in task.lm_eval_names.items():
            cfg = task_config(builtin_tasks.get(name) or shipped_tasks[name])
            assert cfg.get("task") == name
            metrics = [m["metric"] for m in cfg.get("metric_list", [])]
            assert task.metric in metrics, f"{alias}/{lang}: {name} reports {metrics}, not {task.metric!r}"


def test_each_task_has_every_table_language_with_its_code():
    """A table language with a code for a task is in that task's languages (no silently dropped language)."""
    config = load_study()
    for alias, spec in config["evaluation"]["tasks"].items():
        code_key = spec.get("code_key", alias)
        with_code = {lang for lang, facts in config["languages"].items() if code_key in facts.get("codes", {})}
        assert set(spec["languages"]) == with_code, alias


# --- Datasets ---------------------------------------------------------------------------------------------------------


def test_study_dataset_specs_resolve_in_their_backends():
    """Each dataset of the study reads into its backend's settings record; the records per language are the
    train and held-out ones together; every translate target language has its code."""
    from maple.data.filters import language_code
    from maple.data.settings import settings_of

    config = load_study()
    for name, spec in config["datasets"].items():
        settings = settings_of(spec)
        assert settings.n_per_language == spec["n_train_per_language"] + spec["n_eval_per_language"], name
        if spec["backend"] == "generate":
            assert settings.sampling.generate_kwargs()["do_sample"]
        if spec["backend"] == "translate":
            languages = config["languages"]
            for lang in spec["languages"]:
                assert language_code(languages, lang, settings.code_key, "translate"), (name, lang)


# --- The shipped XL-Sum tasks --------------------------------------------------------------------------------------


def test_xlsum_task_files_are_consistent(shipped_tasks):
    files = sorted(XLSUM_DIR.glob("maple_xlsum_*.yaml"))
    assert len(files) == 45  # every XL-Sum language config
    for path in files:
        cfg = task_config(path)
        config = path.stem.removeprefix("maple_xlsum_")
        # the hub's parquet conversion of one config (csebuetnlp/xlsum's default branch holds a loading script)
        assert cfg["task"] == path.stem and cfg.get("dataset_name") is None
        assert cfg["dataset_path"] == "csebuetnlp/xlsum"
        assert cfg["dataset_kwargs"] == {
            "revision": "refs/convert/parquet",
            "data_files": {split: f"{config}/{split}/*.parquet" for split in ("validation", "test")},
        }
        assert cfg["output_type"] == "generate_until"
        assert [m["metric"] for m in cfg["metric_list"]] == ["rougeL"]
        assert task_config(shipped_tasks[cfg["task"]]) == cfg
    codes = {
        facts["codes"]["xlsum"] for facts in load_study()["languages"].values() if "xlsum" in facts.get("codes", {})
    }
    assert codes <= {p.stem.removeprefix("maple_xlsum_") for p in files}


def test_xlsum_rouge_works_in_every_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("maple_xlsum_utils", XLSUM_DIR / "utils.py")
    xlsum_utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(xlsum_utils)
    for text in (
        "The cat sat on the mat",
        "Кошка сидела на коврике",
        "बिल्ली चटाई पर बैठी थी",
        "猫坐在垫子上",
        "แมวนั่งบนเสื่อ",
        "القطة جلست على الحصيرة",
        "ድመቷ ምንጣፉ ላይ ተቀመጠች",
    ):
        assert xlsum_utils.rouge_l(text, text) == pytest.approx(1.0), text
        assert xlsum_utils.rouge_l(text, "") == 0.0
    assert xlsum_utils.rouge_l("猫坐在垫子上", "猫坐在") == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert xlsum_utils.process_results({"summary": "Кошка сидела"}, [" кошка сидела\n"]) == {
        "rougeL": pytest.approx(1.0)
    }


def test_xlsum_task_runs_through_lm_eval(tmp_path):
    """The shipped task, its dataset pointed at a local copy laid out as the hub's parquet conversion
    (dataset_mirrors), through lm_eval.simple_evaluate with a stand-in LM."""
    import lm_eval
    from datasets import Dataset
    from lm_eval.api.model import LM
    from maple.hub import task_sources

    rows = [
        {
            "id": str(i),
            "url": "",
            "title": "",
            "text": f"Habari ya leo namba {i}. " * 20,
            "summary": f"Habari ya leo namba {i}",
        }
        for i in range(4)
    ]
    mirror = tmp_path / "xlsum"
    for split in ("validation", "test"):
        (mirror / "swahili" / split).mkdir(parents=True)
        Dataset.from_list(rows).to_parquet(str(mirror / "swahili" / split / "0000.parquet"))
    manager = task_sources.task_manager(
        ["maple_xlsum_swahili"], tmp_path / "tasks", shipped_dir=SHIPPED_TASKS, mirrors={"csebuetnlp/xlsum": mirror}
    )

    prompts = []

    class Echo(LM):
        def loglikelihood(self, requests, disable_tqdm=False):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            raise NotImplementedError

        def generate_until(self, requests, disable_tqdm=False):
            prompts.extend(r.arguments[0] for r in requests)
            return [" Habari ya leo namba 1"] * len(requests)

    results = lm_eval.simple_evaluate(
        model=Echo(), tasks=["maple_xlsum_swahili"], log_samples=True, task_manager=manager
    )
    scores = results["results"]["maple_xlsum_swahili"]
    per_doc = {s["doc_id"]: s["rougeL"] for s in results["samples"]["maple_xlsum_swahili"]}
    assert per_doc[1] == pytest.approx(1.0)
    assert all(0.0 < v < 1.0 for d, v in per_doc.items() if d != 1)
    assert scores["rougeL,none"] == pytest.approx(sum(per_doc.values()) / 4)
    assert "rougeL_stderr,none" in scores
    assert all(p.startswith("Article: Habari") and p.endswith("in Swahili.\nSummary:") for p in prompts)


# --- One task record for planning and the evaluation job ----------------------------------------------------------


def test_task_defaults_are_the_schemas():
    """maple.runtime.tasks.Task's defaults for the config's task keys are the schema's (evaluation.tasks.<alias>)."""
    from dataclasses import fields

    from maple.runtime.tasks import Task

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text(encoding="utf-8"))
    keys = schema["properties"]["evaluation"]["properties"]["tasks"]["additionalProperties"]["properties"]
    defaults = {f.name: f.default for f in fields(Task) if f.name in keys and "default" in keys[f.name]}
    assert defaults == {name: keys[name]["default"] for name in defaults}
    assert set(defaults) == {"num_fewshot", "limit", "max_gen_toks", "batch_size", "max_length", "engine"}


def test_an_evaluation_job_gets_the_study_task_back():
    """The study's Task, as the evaluate rule passes it (job_param), rebuilds the same record in the job, planning's
    languages and dataset aside; the param's keys keep their order (Snakemake compares params by their repr)."""
    from dataclasses import replace

    from maple.config.validation import checked_study
    from maple.runtime.tasks import Task

    tasks = checked_study(load_study())[1].tasks
    for task in tasks.values():
        job = replace(task, mirrors={"x/y": "/m"}, dataset_revisions={"x/y": "0" * 40})
        # the batch size is a param of its own (evaluate rule: batch_size), not the task's
        assert Task(**job.job_param()) == replace(job, languages=(), dataset=None, batch_size=None)
    param = replace(tasks["mlqa"], dataset_revisions={"facebook/mlqa": "0" * 40}).job_param()
    assert list(param) == [
        *("alias", "source", "kind", "metric", "lm_eval_names", "eval_files", "num_fewshot", "limit"),
        *("max_gen_toks", "max_length"),  # config/maple.yaml sets both for mlqa
        "dataset_revisions",
    ]


@pytest.mark.slow
def test_each_gpu_job_asks_the_runtime_of_its_estimate(tmp_path):
    """The study's plan with no finetune runtime configured: every finetune, synth_part, model-written synth_data and
    evaluation job asks SLURM for its own estimate x runtime_margin (results/plan/estimate.csv's runtime_min); a data
    job without a model for an hour."""
    from maple.cost.estimate import plan_shards, study_estimate

    config = load_study()
    config["finetune"]["resources"] = {k: v for k, v in config["finetune"]["resources"].items() if k != "runtime"}
    _, study = checked_study(config, [], str(REPO))
    table = read_gpu_summary(None)
    rows = study_estimate(study, plan_shards(study, table), table, parts=plan_synth_parts(study, table))
    expected = {}
    for r in rows:
        if r["stage"] == "finetune":
            data, rank, bits = re.fullmatch(r"(.+)-r(\d+)-q(\d+)", r["variant"]).groups()
            expected[("finetune", f"model={r['model']}, data={data}, rank={rank}, bits={bits}")] = r["runtime_min"]
        elif r["stage"] == "synth_data" and re.fullmatch(r".+_p\d+", r["job"]):
            data, part = r["job"].rsplit("_p", 1)
            expected[("synth_part", f"data={data}, part={part}")] = r["runtime_min"]
            expected[("synth_data_from_parts", f"data={data}")] = 60  # no model: holds the parts out
        elif r["stage"] == "synth_data":  # a model-written dataset within evaluation.max_job_hours: one job
            expected[("synth_data", f"data={r['job']}")] = r["runtime_min"]
        else:
            expected[(r["job"], f"model={r['model']}, variant={r['variant']}")] = r["runtime_min"]
    config_file = tmp_path / "study.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = run_snakemake(tmp_path, "-n", config=config_file, timeout=600)
    output = result.stdout + result.stderr
    asked = {}
    for block in re.split(r"^(?=rule \S+:$)", output, flags=re.M):
        rule = re.search(r"^rule (\S+):", block, re.M)
        wildcards = re.search(r"^\s+wildcards: (.+)$", block, re.M)
        runtime = re.search(r"runtime=(\d+)", block)
        if rule and wildcards and runtime:
            name = rule[1] if rule[1] in ("finetune", "synth_part") else rule[1].removeprefix("evaluate_")
            asked[(name, wildcards[1])] = int(runtime[1])
    assert asked == expected
