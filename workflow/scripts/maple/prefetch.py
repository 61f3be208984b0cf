"""Prefetch: every hub model and dataset the study reads, at its pinned commit, downloaded into the Hugging Face cache
(HF_HOME, on the file system the compute nodes share) on the submit host, so that the GPU jobs run with the hub
offline (README, "Compute nodes without internet"). Downloads go through the hub API seam (maple.hub_api), so a
test can stand in for them by writing the real cache layout; the jobs then read that cache with the real loaders.

In a job with the hub offline, `snapshot_dir` finds a prefetched dataset's files in the cache (the evaluation job
reads them there as a local directory: datasets cannot resolve a hub id offline) or says to run prefetch."""

from __future__ import annotations

import os

from .hub_access import HubAccessError

PREFETCHED_VARIABLE = "MAPLE_HUB_PREFETCHED"  # set in GPU jobs that run offline because hub.prefetch is on
# Files a model load needs (weights, configs, tokenizer); others in a repo (original checkpoints, GGUF, ONNX ...)
# are not downloaded.
MODEL_PATTERNS = ("*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "tokenizer*")


def hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def prefetch(pins: dict, api, token: str | None, log=print) -> dict:
    """Download every pinned repository; returns {"<kind>:<repo>@<revision>": {repo_id, commit, path}}."""
    fetched = {}
    for kind in ("models", "datasets"):
        for key, entry in sorted(pins.get(kind, {}).items()):
            repo_type = "model" if kind == "models" else "dataset"
            patterns = list(MODEL_PATTERNS) if kind == "models" else entry.get("patterns")
            if patterns is not None and kind == "datasets":
                patterns = [*patterns, "README.md", "*.json"]
            log(f"[maple] prefetch {repo_type} {entry['repo_id']}@{entry['commit']} ({entry['revision']})")
            path = api.snapshot_download(
                entry["repo_id"],
                repo_type=repo_type,
                revision=entry["commit"],
                allow_patterns=patterns,
                token=token or False,
            )
            fetched[f"{repo_type}:{key}"] = {"repo_id": entry["repo_id"], "commit": entry["commit"], "path": str(path)}
    return fetched


def snapshot_dir(repo_id: str, commit: str, repo_type: str = "dataset") -> str:
    """The cached snapshot of repo_id at commit (no network), or a HubAccessError naming prefetch."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, repo_type=repo_type, revision=commit, local_files_only=True)
    except (LocalEntryNotFoundError, OSError) as error:
        raise HubAccessError(
            f"cannot load {repo_type} {repo_id!r} at {commit}: {prefetch_hint()} ({type(error).__name__})"
        ) from error


def prefetch_hint() -> str:
    """What to do about a repository missing from the cache of a job that runs offline (hub.prefetch)."""
    home = os.environ.get("HF_HOME") or "~/.cache/huggingface (HF_HOME unset)"
    return (
        f"it is not in the HF cache at {home} and this job runs with the hub offline (hub.prefetch: true): run "
        "`snakemake preflight prefetch --forcerun prefetch` on a host that reaches the hub with the same HF_HOME "
        "(shared with the compute nodes), or set hub.prefetch: false where the compute nodes are online"
    )
