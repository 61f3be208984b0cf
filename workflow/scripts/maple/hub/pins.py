"""Hub revisions pinned to commits (docs/gpus-slurm-offline.md, "Pinned hub revisions").

Preflight resolves each hub repository the study reads, at its configured revision (`main`, a tag, a ref such as
refs/convert/parquet), to one commit and writes them to {results}/preflight/pins.json:

    {"models":   {"<repo_id>@<revision>": {"repo_id", "revision", "commit", "used_by"}},
     "datasets": {"<repo_id>@<revision>": {... and "patterns": the data files the study reads, or null: all}},
     "task_datasets": {"<lm-eval task>": "<repo_id>@<revision>"}}

The jobs receive the commits as params (common.smk reads this file; it is no file input of theirs), so a hub
update mid-study cannot mix two versions, rerunning preflight with the same commits reruns nothing, and a changed
commit reruns just the jobs that read it. Pure functions: nothing here talks to the hub."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from maple.hub.access import LOCAL_DATA_SUFFIXES, looks_like_local_path

DEFAULT_REVISION = "main"

# (backend, key of the repo in the spec, key of its revision, kind)
DATA_SPEC_REPOS = (
    ("generate", "teacher", "revision", "model"),
    ("translate", "translator", "translator_revision", "model"),
    ("translate", "teacher", "revision", "model"),
    ("translate", "seed_data", "seed_revision", "dataset"),
    ("hub", "dataset", "revision", "dataset"),
)


@dataclass(frozen=True)
class HubRepo:
    kind: str  # model | dataset
    repo_id: str
    revision: str  # as configured

    @property
    def key(self) -> str:
        return f"{self.repo_id}@{self.revision}"


def is_hub_id(source) -> bool:
    """A hub id: "org/name" (one slash, no data-file suffix) that is not a path and does not exist on disk."""
    source = str(source or "")
    return (
        source.count("/") == 1
        and os.path.splitext(source)[1].lower() not in LOCAL_DATA_SUFFIXES
        and not looks_like_local_path(source)
        and not os.path.exists(source)
    )


def model_repo(model) -> HubRepo | None:
    """A study Model's hub repository (None: built, converted or local)."""
    if model.made_here or not is_hub_id(model.source):
        return None
    return HubRepo("model", model.source, model.revision or DEFAULT_REVISION)


def data_spec_repos(spec: dict) -> list[tuple[str, str, HubRepo]]:
    """(spec key, revision key, repo) of every hub repository a dataset spec (resolved: maple.config.study) reads."""
    found = []
    for backend, key, revision_key, kind in DATA_SPEC_REPOS:
        if spec.get("backend") != backend or not is_hub_id(spec.get(key)):
            continue
        if key == "teacher" and backend == "translate" and spec.get("responses") != "teacher":
            continue
        found.append((key, revision_key, HubRepo(kind, spec[key], spec.get(revision_key) or DEFAULT_REVISION)))
    return found


_CACHE: dict[str, tuple[int, dict]] = {}


def read_pins(path: str | os.PathLike) -> dict:
    """pins.json as a dict ({} before preflight has written it), re-read when the file changes."""
    path = str(path)
    try:
        stamp = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return {}
    if path not in _CACHE or _CACHE[path][0] != stamp:
        with open(path, encoding="utf-8") as f:
            _CACHE[path] = (stamp, json.load(f))
    return _CACHE[path][1]


def pinned_commit(pins: dict, repo: HubRepo) -> str | None:
    entry = pins.get(f"{repo.kind}s", {}).get(repo.key)
    return entry.get("commit") if entry else None


def pinned_revision(pins: dict, repo: HubRepo | None, configured: str) -> str:
    """The commit a job loads repo at; the configured revision before preflight has pinned it (or for a local
    model, which has no repo and keeps its sha256 fingerprint)."""
    if repo is None:
        return configured
    return pinned_commit(pins, repo) or configured


def pinned_data_spec(spec: dict, pins: dict) -> dict:
    """A dataset spec with each hub repository's revision key set to its pinned commit."""
    spec = dict(spec)
    for _key, revision_key, repo in data_spec_repos(spec):
        commit = pinned_commit(pins, repo)
        if commit:
            spec[revision_key] = commit
    return spec


def task_dataset_revisions(names, pins: dict) -> dict[str, str]:
    """{dataset_path: commit} of the hub datasets the lm-eval tasks `names` read, as preflight pinned them."""
    revisions = {}
    for name in names:
        key = pins.get("task_datasets", {}).get(name)
        entry = pins.get("datasets", {}).get(key) if key else None
        if entry:
            revisions[entry["repo_id"]] = entry["commit"]
    return revisions
