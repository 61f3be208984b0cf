"""Where the data of each lm-eval task and hub dataset comes from: the hub's parquet conversion (script-free, read
through explicit data files: `parquet_source`) or a local mirror (`dataset_mirrors`: `mirror_source`,
`mirror_data_spec`); the shipped task YAMLs, self-contained copies of lm-eval's own tasks that read the parquet
conversion (`write_wrappers` writes them), staged per job with the data pointed at a mirror or a pinned commit
(`stage_tasks`, `task_manager`). docs/task-data.md, "Where task data comes from", says why."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from maple.hub.task_files import (
    FUNCTION_TAG,
    TaskSourceError,
    builtin_task_files,
    lm_eval_tasks_dir,
    merged_config,
    plain_config,
    shipped_task_files,
    task_yaml_text,
)

PARQUET_REVISION = "refs/convert/parquet"
SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")
DEFAULT_CONFIG = "default"  # the parquet conversion's config directory for a dataset without configs

# Hub datasets of the study whose default branch holds a loading script (lm-eval issue #3171: datasets 4 no longer runs loading scripts), and those
# that hold plain data files. Tests check that no task of the study reads the former other than through the parquet
# conversion (or a mirror).
SCRIPT_DATASETS = frozenset({"csebuetnlp/xlsum", "facebook/mlqa", "juletxara/xstory_cloze", "MBZUAI/Bactrian-X"})
SCRIPT_FREE_DATASETS = frozenset(
    {"facebook/belebele", "cambridgeltl/xcopa", "facebook/xnli", "google/xquad", "tatsu-lab/alpaca"}
)


# --- Data sources (pure) -------------------------------------------------------------------------------------------


def declared_splits(cfg: dict) -> list[str]:
    """The split names a task config reads (training, validation, test, few-shot), in that order, each once."""
    splits: list[str] = []
    for key in SPLIT_KEYS:
        value = cfg.get(key)
        if value and value not in splits:
            splits.append(value)
    return splits


def scored_split(cfg: dict) -> str | None:
    """The split lm-eval scores a task config on: its test split, else its validation split."""
    return cfg.get("test_split") or cfg.get("validation_split")


def parquet_data_files(config_name: str | None, splits) -> dict[str, str]:
    """{split: "<config>/<split>/*.parquet"}: the parquet conversion's files of one config, relative to its root."""
    config_dir = config_name or DEFAULT_CONFIG
    return {split: f"{config_dir}/{split}/*.parquet" for split in splits}


def parquet_source(cfg: dict) -> dict:
    """The keys that point a task config (merged, as lm-eval reads it) at the hub's parquet conversion of its
    dataset: same hub id, revision refs/convert/parquet, one config's files as data_files."""
    kwargs = dict(cfg.get("dataset_kwargs") or {})
    kwargs.pop("trust_remote_code", None)
    kwargs["revision"] = PARQUET_REVISION
    kwargs["data_files"] = kwargs.get("data_files") or parquet_data_files(cfg.get("dataset_name"), declared_splits(cfg))
    return {"dataset_name": None, "dataset_kwargs": kwargs}


def mirror_source(cfg: dict, mirror_dir: str | os.PathLike) -> dict:
    """The keys that point a task config at a local mirror of its dataset laid out as the parquet conversion.

    A config that already reads data files (a shipped parquet-conversion task) keeps them, now relative to the
    mirror; any other reads its config's directory of the mirror for each split it declares."""
    kwargs = {k: v for k, v in (cfg.get("dataset_kwargs") or {}).items() if k not in ("revision", "trust_remote_code")}
    if not kwargs.get("data_files"):
        kwargs["data_files"] = parquet_data_files(cfg.get("dataset_name"), declared_splits(cfg))
    return {
        "dataset_path": str(Path(os.path.expanduser(str(mirror_dir))).resolve()),
        "dataset_name": None,
        "dataset_kwargs": kwargs,
    }


def mirror_overrides(cfg: dict, mirrors: dict | None) -> dict:
    """mirror_source for the config's dataset when `mirrors` names it, else {}."""
    mirror = (mirrors or {}).get(cfg.get("dataset_path"))
    return mirror_source(cfg, mirror) if mirror else {}


def pinned_overrides(cfg: dict, revisions: dict | None, snapshots: dict | None = None) -> dict:
    """The keys that make a task config read its hub dataset at the commit preflight pinned (revisions: {hub id:
    commit}); with the hub offline (prefetch), from that commit's snapshot in the HF cache (snapshots: {hub id:
    directory}), since datasets cannot resolve a hub id offline. {} for a dataset neither names."""
    dataset = cfg.get("dataset_path")
    kwargs = {k: v for k, v in (cfg.get("dataset_kwargs") or {}).items() if k != "trust_remote_code"}
    if dataset in (snapshots or {}):
        kwargs.pop("revision", None)
        return {"dataset_path": str(snapshots[dataset]), "dataset_kwargs": kwargs}
    if dataset in (revisions or {}):
        return {"dataset_kwargs": {**kwargs, "revision": revisions[dataset]}}
    return {}


def mirror_data_spec(spec: dict, mirrors: dict | None) -> dict:
    """A data backend's spec with its hub dataset read from the mirror `mirrors` names for it (else unchanged).

    hub backend: `dataset` becomes the mirror directory (each subset a directory of it, as the backend reads local
    sources); without subsets, its `default/` directory. translate backend: `seed_data` becomes the seed subset's
    directory of the mirror. The records' `source` keeps naming the hub id."""
    mirrors = mirrors or {}
    backend = spec.get("backend")
    if backend == "hub" and spec.get("dataset") in mirrors:
        hub_id, root = spec["dataset"], Path(os.path.expanduser(str(mirrors[spec["dataset"]])))
        has_subsets = spec.get("lang_column") is None and spec.get("subset_template", "{code}") is not None
        new = {**spec, "dataset": str(root if has_subsets else root / DEFAULT_CONFIG)}
        new.setdefault("source", f"hub:{hub_id}")
        new.pop("revision", None)
        new.pop("data_files", None)  # the mirror is laid out as the parquet conversion
        return new
    if backend == "translate" and spec.get("seed_data") in mirrors:
        root = Path(os.path.expanduser(str(mirrors[spec["seed_data"]])))
        new = {k: v for k, v in spec.items() if k not in ("seed_subset", "seed_revision")}
        new["seed_data"] = str(root / (spec.get("seed_subset") or DEFAULT_CONFIG))
        return new
    return dict(spec)


def hub_file_url(hub_id: str, revision: str | None, path: str) -> str:
    """hf://datasets/<id>@<revision>/<path>, the revision quoted as the hub's own parquet-export URLs are
    (refs%2Fconvert%2Fparquet). Read through a packaged builder (json, parquet ...), such a path never meets the
    repository's loading script, which datasets checks for only when given the hub id."""
    from urllib.parse import quote

    return f"hf://datasets/{hub_id}@{quote(revision or 'main', safe='')}/{path.lstrip('/')}"


DATA_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}


def data_file_builder(path: str) -> str:
    """The packaged datasets builder of a data file path or pattern (compression suffixes ignored)."""
    name = path.lower()
    for compression in (".gz", ".bz2", ".xz", ".zst", ".zip"):
        name = name.removesuffix(compression)
    for suffix, builder in DATA_FILE_BUILDERS.items():
        if name.endswith(suffix):
            return builder
    raise TaskSourceError(f"data_files {path!r}: expected a .json(l)/.csv/.tsv/.parquet path (optionally compressed)")


def task_datasets(names, *, shipped_dir: str | os.PathLike, lm_eval_dir: str | os.PathLike) -> dict[str, str]:
    """Task name -> the dataset_path it reads, for the shipped and built-in tasks found among names."""
    shipped = shipped_task_files(shipped_dir)
    files = {**builtin_task_files([n for n in names if n not in shipped], lm_eval_dir), **shipped}
    return {n: plain_config(files[n]).get("dataset_path") for n in names if n in files}


def task_mirrors(names, mirrors: dict | None, *, shipped_dir, lm_eval_dir) -> dict[str, str]:
    """The entries of `mirrors` that some task of names reads (what an evaluation job of those tasks needs)."""
    if not mirrors:
        return {}
    used = set(task_datasets(names, shipped_dir=shipped_dir, lm_eval_dir=lm_eval_dir).values())
    return {hub_id: path for hub_id, path in mirrors.items() if hub_id in used}


def data_source(cfg: dict) -> dict:
    """Where a merged task config's data comes from, as datasets.load_dataset receives it: the dataset (hub id or
    directory), its config name, revision, data files, and the splits the task reads."""
    kwargs = cfg.get("dataset_kwargs") or {}
    return {
        "dataset": cfg.get("dataset_path"),
        "name": cfg.get("dataset_name"),
        "revision": kwargs.get("revision"),
        "data_files": kwargs.get("data_files"),
        "splits": declared_splits(cfg),
    }


def stage_tasks(
    names,
    out_dir: str | os.PathLike,
    *,
    shipped_dir: str | os.PathLike,
    lm_eval_dir: str | os.PathLike,
    mirrors: dict | None = None,
    revisions: dict | None = None,
    snapshots: dict | None = None,
) -> dict[str, Path]:
    """Write out_dir/<name>.yaml for each requested task that is shipped or reads a mirrored or pinned dataset: a
    file that includes the task's own (absolute path: lm-eval resolves its `!function`s beside it) and points its
    data at the mirror where there is one, else at the pinned commit (pinned_overrides). Returns name -> staged
    file. Other tasks are left to lm-eval's own index."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(names))
    shipped = shipped_task_files(shipped_dir)
    builtin = builtin_task_files([n for n in names if n not in shipped], lm_eval_dir) if mirrors or revisions else {}
    staged: dict[str, Path] = {}
    for name in names:
        source = shipped.get(name) or builtin.get(name)
        if source is None:
            continue
        cfg = {"include": str(Path(source).resolve()), "task": name}
        path = out_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
        merged = merged_config(path)
        overrides = mirror_overrides(merged, mirrors) or pinned_overrides(merged, revisions, snapshots)
        if name in builtin and not overrides:
            path.unlink()  # a built-in task whose dataset has no mirror: lm-eval's own file serves
            continue
        if overrides:
            cfg.update(overrides)
            path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
        staged[name] = path
    return staged


def task_manager(
    names,
    out_dir: str | os.PathLike,
    *,
    shipped_dir: str | os.PathLike,
    mirrors: dict | None = None,
    revisions: dict | None = None,
):
    """lm-eval's TaskManager over the requested tasks staged into out_dir (stage_tasks), plus its built-in tasks
    where some requested task is neither shipped, mirrored nor pinned. revisions: {hub id: pinned commit}; with the
    hub offline (prefetch) each is read from its snapshot in the HF cache (maple.hub.cache.snapshot_dir, which names
    prefetch when it is missing)."""
    from lm_eval.tasks import TaskManager

    from maple.hub.access import offline_mode
    from maple.hub.cache import snapshot_dir

    snapshots = {}
    if revisions and offline_mode():
        snapshots = {hub_id: snapshot_dir(hub_id, commit) for hub_id, commit in revisions.items()}
    staged = stage_tasks(
        names,
        out_dir,
        shipped_dir=shipped_dir,
        lm_eval_dir=lm_eval_tasks_dir(),
        mirrors=mirrors,
        revisions=revisions,
        snapshots=snapshots,
    )
    # Every requested task staged: lm-eval's own index (thousands of files, seconds) is not needed.
    return TaskManager(include_path=[str(out_dir)], include_defaults=not set(names) <= set(staged))


def write_wrappers(family: str, pattern: str, out_dir: str | os.PathLike, prefix: str = "maple_") -> list[Path]:
    """For each of lm-eval's `family/pattern` task files, a self-contained `<prefix><task>.yaml` in out_dir: the
    task merged with its includes, renamed and tagged, reading its config from the hub's parquet conversion
    (parquet_source); each Python module its `!function`s name is copied beside it, where lm-eval looks for it. What
    each task directory's _generate_configs.py runs, from the installed lm-eval."""
    import lm_eval

    family_dir = lm_eval_tasks_dir() / family
    written, modules = [], set()
    for path in sorted(family_dir.glob(pattern)):
        cfg = plain_config(path)
        assert cfg["dataset_path"] in SCRIPT_DATASETS, cfg["dataset_path"]
        task = prefix + cfg["task"]
        body = {"task": task, "tag": prefix + family, "dataset_path": cfg["dataset_path"], **parquet_source(cfg)}
        body.update({k: v for k, v in cfg.items() if k not in body and k not in ("group", "task_list")})
        modules.update(
            v[len(FUNCTION_TAG) :].rsplit(".", 1)[0] for v in body.values() if str(v).startswith(FUNCTION_TAG)
        )
        out = Path(out_dir) / f"{task}.yaml"
        out.write_text(
            f"# Generated by _generate_configs.py from lm-eval {lm_eval.__version__}'s {family}/{path.name}\n"
            + task_yaml_text(body),
            encoding="utf-8",
        )
        written.append(out)
    for module in sorted(modules):
        relative = Path(*module.split(".")).with_suffix(".py")
        out = Path(out_dir) / relative
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            f"# Copied by _generate_configs.py from lm-eval {lm_eval.__version__}'s {family}/{relative}\n"
            + (family_dir / relative).read_text(encoding="utf-8"),
            encoding="utf-8",
        )
        written.append(out)
    return written
