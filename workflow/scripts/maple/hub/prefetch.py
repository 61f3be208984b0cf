"""Prefetch: every hub model and dataset the study reads, at its pinned commit, downloaded into the Hugging Face cache
(HF_HOME, on the file system the compute nodes share) on the submit host, so that the GPU jobs run with the hub offline
(docs/gpus-slurm-offline.md, "Compute nodes without internet"). Downloads go through the hub API seam (maple.hub.api),
so a test can stand in for them by writing the real cache layout; the jobs then read that cache with the real
loaders."""

from __future__ import annotations

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
            path = api.snapshot_download(
                entry["repo_id"],
                repo_type=repo_type,
                revision=entry["commit"],
                allow_patterns=patterns,
                token=token or False,
            )
            fetched[f"{repo_type}:{key}"] = {"repo_id": entry["repo_id"], "commit": entry["commit"], "path": str(path)}
    return fetched
