"""Prefetch: every hub model and dataset the study reads, at its pinned commit, downloaded into the Hugging Face cache
(HF_HOME, on the file system the compute nodes share) on the submit host, so that the GPU jobs run with the hub offline
(docs/gpus-slurm-offline.md, "Compute nodes without internet"). Downloads go through the hub API seam (maple.hub.api),
so a test can stand in for them by writing the real cache layout; the jobs then read that cache with the real
loaders.

A cut or failing download: huggingface_hub writes each file under a temporary name and renames it into the cache
only once complete, and links it into the snapshot after that, so a cut (or a killed prefetch) leaves no file that
looks complete, and prefetched.json, written last by the rule, is absent. The transport retries what is transient;
a download whose body is cut is tried again whole (maple.hub.api.retried), keeping the files already complete; what
still fails stops the prefetch with one line (HubAccessError) naming the endpoint, the repository, its commit, what
failed and what to do. The next prefetch fetches what is missing at the same pinned commits."""

from __future__ import annotations

import functools

from maple.hub.api import retried
from maple.hub.cache import HubAccessError
from maple.hub.errors import endpoint_phrase, hub_fault, what_failed

# Files a model load needs (weights, configs, tokenizer); others in a repo (original checkpoints, GGUF, ONNX ...)
# are not downloaded.
MODEL_PATTERNS = ("*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "tokenizer*")


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
            download = functools.partial(
                api.snapshot_download,
                entry["repo_id"],
                repo_type=repo_type,
                revision=entry["commit"],
                allow_patterns=patterns,
                token=token or False,
            )
            try:
                path = retried(download, log=log)
            except Exception as error:
                if hub_fault(error) is None:
                    raise
                raise HubAccessError(prefetch_problem(error, repo_type, entry, token)) from error
            fetched[f"{repo_type}:{key}"] = {"repo_id": entry["repo_id"], "commit": entry["commit"], "path": str(path)}
    return fetched


def prefetch_problem(error: BaseException, repo_type: str, entry: dict, token: str | None) -> str:
    """One line: the repository at its pin, the endpoint, what failed and what to do."""
    fault = hub_fault(error)
    subject = f"prefetch {repo_type} {entry['repo_id']!r} at {entry['revision']!r} ({entry['commit'][:12]})"
    if fault.endpoint_wide:
        from maple.hub.errors import REMEDIES

        remedy = REMEDIES[fault.kind]
        if fault.kind != "cut":
            remedy += "; then `snakemake preflight prefetch` again (complete files are kept)"
        return f"{subject}: {endpoint_phrase()}: {what_failed(fault)}: {remedy}"
    if fault.kind == "gated":
        hint = "set HF_TOKEN" if not token else "accept its licence for the account of HF_TOKEN"
        return f"{subject}: {endpoint_phrase()} refuses it (gated or private): {hint}"
    return (
        f"{subject}: {endpoint_phrase()}: {what_failed(fault)} since preflight pinned it: run "
        "`snakemake preflight prefetch --forcerun preflight`"
    )
