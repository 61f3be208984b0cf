"""Preflight: what could make a job fail, checked in seconds on the submit host before any job starts, every problem
at once, one line each naming the thing (docs/gpus-slurm-offline.md, "Preflight").

`preflight_plan` (at planning, pure) lists what the study reads: hub models and datasets at their revisions, lm-eval
tasks, local paths, model sizes at each bit-width. `run_preflight` checks it through the hub API seam
(maple.hub.api): each hub repository's revision resolved to a commit and its info read at that commit
(maple.hub.revisions); each hub model readable with the token in the environment (gated or private named as such);
each dataset holds no loading script at its commit and has the config and split every task language reads; every
lm-eval task resolves; each task language's row of the split sizes table agrees with its dataset's card where that
gives a size (maple.hub.split_sizes); every local path exists, and a local model directory holds a whole model
(maple.hub.model_files); each model's estimated GPU memory at each bit-width against preflight.gpu_memory_gib where
given (maple.hub.memory). It returns the pins (maple.hub.pins), the report lines and the problems. Offline, a study
that reads the hub fails with one line naming what could not be checked; so does one whose hub fails as a whole (a
name that does not resolve, a refused connection, TLS, or what stays transient through the retries of
maple.hub.transport): the repository it failed on gets the line naming the endpoint, what failed and what to do, and
the repositories after it one line saying they were not checked.
"""

from __future__ import annotations

import fnmatch
import functools
import os
from dataclasses import dataclass, field, replace

from maple.hub.access import looks_like_local_path, offline_mode
from maple.hub.memory import hub_parameter_count, local_parameter_count, memory_lines
from maple.hub.model_files import model_files_problem
from maple.hub.pins import HubRepo, data_spec_repos, is_hub_id, model_repo
from maple.hub.revisions import (
    access_warning,
    first_line,
    hub_failures,
    hub_name,
    hub_problem,
    parquet_files,
    resolve,
    until_the_hub_fails,
)
from maple.hub.split_sizes import check_sizes, not_checked, plan_row, source_card
from maple.hub.task_sources import (
    DEFAULT_CONFIG,
    PARQUET_REVISION,
    TaskSourceError,
    builtin_task_files,
    data_source,
    plain_config,
    scored_split,
    shipped_task_files,
)

LOCAL_PATH_KEYS = ("dataset", "seed_data", "teacher", "translator", "seed_prompts")
MODEL_PATH_KEYS = ("teacher", "translator")  # a local directory there is a model


# --- The plan (at planning: pure, no hub) ---------------------------------------------------------------------------


def _path_like(value: str) -> bool:
    """A value that names a file or directory rather than a hub id or a datasets builder name (e.g. "json")."""
    return looks_like_local_path(value) or "/" in value or os.path.splitext(value)[1] != "" or os.path.exists(value)


def preflight_plan(study, gpu_memory_gib=None) -> dict:
    """What preflight checks for this study, as a JSON-able dict (the preflight rule's param: a change reruns it)."""
    bits = sorted({*(f.bits for f in study.finetunes), 16})  # 16: base evaluations
    models = []
    for alias, m in study.models.items():
        repo = model_repo(m)
        models.append(
            {
                "alias": alias,
                "source": m.source,
                "revision": m.revision,
                "hub": repo is not None,
                "made_here": m.made_here,
                "bits": bits,
            }
        )
    data_repos, local_paths = [], []
    for name, spec in study.datasets.items():
        for key, _revision_key, repo in data_spec_repos(spec):
            data_repos.append(
                {
                    "used_by": f"datasets.{name}.{key}",
                    "kind": repo.kind,
                    "repo_id": repo.repo_id,
                    "revision": repo.revision,
                    # the hub backend's data_files are read as hf:// paths by a packaged builder, which never meets
                    # the repository's loading script (maple.hub.task_sources.hub_file_url)
                    "by_id": not (spec["backend"] == "hub" and spec.get("data_files")),
                }
            )
        made_teacher = name in study.data_teachers and study.models[study.data_teachers[name]].made_here
        for key in LOCAL_PATH_KEYS:
            value = spec.get(key)
            if key == "teacher" and made_teacher:
                continue  # a directory this workflow writes before the synth_data job
            if isinstance(value, str) and value and not is_hub_id(value) and _path_like(value):
                model_dir = key in MODEL_PATH_KEYS and os.path.isdir(os.path.expanduser(value))
                local_paths.append({"key": f"datasets.{name}.{key}", "path": value, "model": model_dir})
    for hub_id, path in study.dataset_mirrors.items():
        local_paths.append({"key": f"dataset_mirrors.{hub_id}", "path": path})
    for alias, m in study.models.items():
        if not m.made_here and model_repo(m) is None:
            local_paths.append({"key": f"models.{alias}.path", "path": m.source, "model": True})
    tasks = [
        {"alias": t.alias, "lang": lang, "name": name, "table": plan_row(name)}
        for t in study.tasks.values()
        if t.source == "lm_eval"
        for lang, name in t.lm_eval_names.items()
    ]
    return {
        "models": models,
        "data_repos": data_repos,
        "tasks": tasks,
        "mirrors": dict(study.dataset_mirrors),
        "local_paths": local_paths,
        "gpu_memory_gib": gpu_memory_gib,
    }


def reads_hub(plan: dict) -> bool:
    """Whether the study may read the hub at all (then prefetch has something to do)."""
    return any(m["hub"] for m in plan["models"]) or bool(plan["data_repos"]) or bool(plan["tasks"])


# --- The checks -----------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    pins: dict = field(default_factory=lambda: {"models": {}, "datasets": {}, "task_datasets": {}})
    report: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class DatasetNeed:
    """One task language's (or data backend's) read of a hub dataset."""

    label: str  # e.g. "evaluation.tasks.xnli language sw (xnli_sw)"
    config: str | None = None
    data_files: dict | None = None  # split -> pattern(s), relative to the repo root at the revision
    splits: tuple[str, ...] = ()
    task: str | None = None
    by_id: bool = True  # read through datasets by hub id (which refuses a loading script), not as hf:// files
    scored: str | None = None  # the split lm-eval scores
    table: dict | None = None  # the task's row of the split sizes table (maple.hub.split_sizes.plan_row)


def check_local_paths(plan: dict, out: Outcome) -> None:
    for entry in plan["local_paths"]:
        if not os.path.exists(os.path.expanduser(entry["path"])):
            out.problems.append(
                f"{entry['key']}: no such file or directory {entry['path']!r} (relative to {os.getcwd()})"
            )
        elif entry.get("model") and (problem := model_files_problem(entry["key"], entry["path"])):
            out.problems.append(problem)


def task_needs(plan: dict, shipped_dir, lm_eval_dir) -> tuple[dict[HubRepo, list[DatasetNeed]], list, list[str]]:
    """Each hub dataset (at the revision its task config names) -> the task languages that read it; the task
    languages that read no hub (a dataset_mirrors entry, a local directory); the problems of tasks that do not
    resolve."""
    needs: dict[HubRepo, list[DatasetNeed]] = {}
    elsewhere: list[DatasetNeed] = []
    problems: list[str] = []
    if not plan["tasks"]:
        return needs, elsewhere, problems
    names = [t["name"] for t in plan["tasks"]]
    shipped = shipped_task_files(shipped_dir)
    files = {**builtin_task_files([n for n in names if n not in shipped], lm_eval_dir), **shipped}
    for t in plan["tasks"]:
        label = f"evaluation.tasks.{t['alias']} language {t['lang']} ({t['name']})"
        if t["name"] not in files:
            problems.append(f"{label}: no such lm-eval task (built in or in workflow/resources/lm_eval_tasks)")
            continue
        try:
            cfg = plain_config(files[t["name"]])
        except (TaskSourceError, OSError, ValueError) as error:
            problems.append(f"{label}: its task YAML does not resolve: {first_line(error)}")
            continue
        source = data_source(cfg)
        dataset = source["dataset"]
        need = DatasetNeed(label, source["name"], task=t["name"], scored=scored_split(cfg), table=t.get("table"))
        if dataset in plan["mirrors"] or not is_hub_id(dataset):
            elsewhere.append(need)
            continue
        data_files = source["data_files"]
        if isinstance(data_files, str):
            data_files = {split: data_files for split in source["splits"]} or {"train": data_files}
        repo = HubRepo("dataset", dataset, source["revision"] or "main")
        needs.setdefault(repo, []).append(replace(need, data_files=data_files, splits=tuple(source["splits"])))
    return needs, elsewhere, problems


def _resolved(api, repo: HubRepo, what: str, token: str | None, out: Outcome):
    """The repository resolved to a commit (maple.hub.revisions) and its access checked, or None (a problem added).
    Raises EndpointFailed where the hub failed as a whole (maple.hub.revisions.until_the_hub_fails)."""
    try:
        resolved = resolve(api, repo, token)
        warning = access_warning(api, repo, resolved.info, what, token)
    except hub_failures() as error:
        hub_problem(error, what, repo, token, out.problems, hub_name(api))
        return None
    if warning:
        out.report.append(warning)
    return resolved


def check_model(api, repo: HubRepo, what: str, token: str | None, out: Outcome) -> tuple[int | None, str]:
    """Exists at its revision, readable with the token; pins the commit. Returns (parameter count or None, where from
    or what was tried)."""
    resolved = _resolved(api, repo, what, token, out)
    if resolved is None:
        return None, "the model could not be read"
    entry = out.pins["models"].setdefault(
        repo.key, {"repo_id": repo.repo_id, "revision": repo.revision, "commit": resolved.commit, "used_by": []}
    )
    entry["used_by"].append(what)
    out.report.append(f"ok   {what}: model {repo.repo_id}@{repo.revision} -> {resolved.commit}")
    return hub_parameter_count(api, repo.repo_id, resolved.commit, resolved.info, token)


def loading_script(repo_id: str, files) -> str | None:
    """The repository's loading script (<name>.py at its root, named like the repo), if it holds one."""
    script = f"{repo_id.rsplit('/', 1)[-1]}.py"
    return script if script in files else None


def check_dataset(api, repo: HubRepo, needs: list[DatasetNeed], token: str | None, out: Outcome) -> None:
    """Exists at its revision, no loading script at that commit, every config / split each need reads; pins it."""
    users = needs[0].label + (f" (and {len(needs) - 1} more)" if len(needs) > 1 else "")
    resolved = _resolved(api, repo, users, token, out)
    if resolved is None:
        return
    commit = resolved.commit
    try:
        files = api.list_repo_files(repo.repo_id, repo_type="dataset", revision=commit, token=token or False)
    except hub_failures() as error:
        hub_problem(error, users, repo, token, out.problems, hub_name(api))
        return
    script = loading_script(repo.repo_id, files) if any(n.by_id for n in needs) else None
    if script:
        out.problems.append(
            f"{users}: dataset {repo.repo_id!r} at revision {repo.revision!r} ({commit[:12]}) holds the loading "
            f"script {script!r}, which datasets 4+ refuses: read its parquet conversion (revision {PARQUET_REVISION} "
            f"with data_files, as the shipped maple_* tasks do) or give a dataset_mirrors entry"
        )
    converted = None  # the parquet conversion's files, fetched once when a by-name read needs them
    patterns: list[str] | None = []
    for need in needs:
        if need.data_files:
            for split, wanted in need.data_files.items():
                wanted = [wanted] if isinstance(wanted, str) else list(wanted)
                patterns = None if patterns is None else patterns + wanted
                if not any(fnmatch.fnmatchcase(f, p) for p in wanted for f in files):
                    out.problems.append(
                        f"{need.label}: dataset {repo.repo_id!r} at {repo.revision!r} has no files {wanted} for split "
                        f"{split!r}"
                    )
            continue
        patterns = None  # read by name: the whole repository at the commit
        if not need.splits:
            continue  # a data backend's read: its split is checked by the job
        if converted is None:
            converted = parquet_files(api, repo, resolved.refs, token)
            if not converted:
                out.report.append(f"note {users}: {repo.repo_id} has no parquet conversion; splits not checked")
        if converted:
            config = need.config or DEFAULT_CONFIG
            for split in need.splits:
                if not any(f.startswith(f"{config}/{split}/") for f in converted):
                    out.problems.append(
                        f"{need.label}: dataset {repo.repo_id!r} has no split {split!r} of config {config!r} "
                        f"(checked against its parquet conversion)"
                    )
    entry = out.pins["datasets"].setdefault(
        repo.key,
        {"repo_id": repo.repo_id, "revision": repo.revision, "commit": commit, "used_by": [], "patterns": patterns},
    )
    entry["used_by"].extend(n.label for n in needs)
    for need in needs:
        if need.task:
            out.pins["task_datasets"][need.task] = repo.key
    out.report.append(f"ok   {users}: dataset {repo.repo_id}@{repo.revision} -> {commit}")
    reads_conversion = repo.revision == PARQUET_REVISION and any(n.data_files and n.table for n in needs)
    source = source_card(api, repo, resolved.refs, token, hub_failures()) if reads_conversion else None
    sizes, problems = check_sizes(repo, commit, resolved.info, needs, source)
    out.report.extend(sizes)
    out.problems.extend(problems)


def run_preflight(plan: dict, *, shipped_dir, lm_eval_dir, api_factory=None) -> Outcome:
    """Every check of the plan; problems collected, none raised."""
    from maple.hub.api import hub_api, hub_token

    out = Outcome()
    check_local_paths(plan, out)
    needs, elsewhere, task_problems = task_needs(plan, shipped_dir, lm_eval_dir) if lm_eval_dir else ({}, [], [])
    if plan["tasks"] and not lm_eval_dir:
        out.problems.append("evaluation.tasks: lm-eval is not installed here, so no lm-eval task can resolve")
    out.problems.extend(task_problems)
    out.report.extend(
        not_checked(elsewhere, "its data is not read from the hub (dataset_mirrors or a local directory)")
    )
    model_repos = [
        (f"models.{m['alias']}", HubRepo("model", m["source"], m["revision"])) for m in plan["models"] if m["hub"]
    ]
    data_model_repos = [(r["used_by"], HubRepo(r["kind"], r["repo_id"], r["revision"])) for r in plan["data_repos"]]
    for entry, (used_by, repo) in zip(plan["data_repos"], data_model_repos):
        if repo.kind == "dataset":
            needs.setdefault(repo, []).append(DatasetNeed(used_by, by_id=entry.get("by_id", True)))
    hub_models = model_repos + [(u, r) for u, r in data_model_repos if r.kind == "model"]
    parameters: dict[str, tuple[int | None, str]] = {}
    if (hub_models or needs) and offline_mode():
        names = sorted({r.repo_id for _, r in hub_models} | {r.repo_id for r in needs})
        out.problems.append(
            f"the hub is offline here (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE / TRANSFORMERS_OFFLINE set): could not "
            f"check or pin {len(names)} hub repositories ({', '.join(names[:6])}{', ...' if len(names) > 6 else ''}); "
            f"run preflight where the hub is reachable (the submit host): `snakemake preflight --forcerun preflight`"
        )
        out.report.extend(
            not_checked([n for repo_needs in needs.values() for n in repo_needs], "the hub is offline here")
        )
    elif hub_models or needs:
        api = (api_factory or hub_api)()
        token = hub_token()
        checks = [(repo, functools.partial(check_model, api, repo, what, token, out)) for what, repo in hub_models]
        checks += [(repo, functools.partial(check_dataset, api, repo, n, token, out)) for repo, n in needs.items()]
        for repo, count in until_the_hub_fails(checks, out.problems):
            if repo.kind != "dataset" and parameters.get(repo.key, (None,))[0] is None:
                parameters[repo.key] = count
    for m in plan["models"]:
        if m["made_here"]:
            out.report.append(f"mem  models.{m['alias']}: built or converted by this workflow; GPU memory not checked")
            continue
        key = HubRepo("model", m["source"], m["revision"]).key
        count, source = parameters.get(key, (None, "")) if m["hub"] else local_parameter_count(m["source"])
        memory_lines(m, count, plan["gpu_memory_gib"], out, source)
    return out
