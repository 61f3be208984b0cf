"""The Hugging Face cache as jobs with the hub offline see it: where it is, a prefetched snapshot at its commit, and
what to do when one is missing. Shared by the loaders (maple.hub.access) and prefetch (maple.hub.prefetch)."""

from __future__ import annotations

import os

PREFETCHED_VARIABLE = "MAPLE_HUB_PREFETCHED"  # set in GPU jobs that run offline because hub.prefetch is on


class HubAccessError(RuntimeError):
    """A model, tokenizer or dataset could not be obtained; the message is one line naming it and the remedy."""


def hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


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
