"""Load models, tokenizers and datasets by hub id or local path, with one clear error when that is impossible.

Every loader in the workflow goes through this module. When a source cannot be had (the hub is unreachable or
offline mode is on and the cache lacks it, the id is unknown, the repository is gated or private, a local path
does not exist) the loader raises `HubAccessError` with a one-line message that names the source and says how to
provide it:
  * gated or private models: set HF_TOKEN in the environment (huggingface_hub reads it),
  * give a local path (a directory written by save_pretrained / save_to_disk, or data files) in the config,
  * or pre-populate the HF cache (`hf download <id>`) and set HF_HUB_OFFLINE=1 (and HF_DATASETS_OFFLINE=1).

Other errors (an existing local directory that holds a broken model, a config mistake) are not hub-access problems
and pass through unchanged. Remote code never runs unless `trust_remote_code=True` is passed explicitly.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import warnings
from pathlib import Path

from maple.hub.cache import PREFETCHED_VARIABLE, HubAccessError, prefetch_hint, snapshot_dir
from maple.hub.errors import HUB_ERRORS, REMEDIES, endpoint_phrase, error_types, hub_error_kind, hub_fault, what_failed

LOCAL_DATA_SUFFIXES = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".txt": "text",
}


def looks_like_local_path(source: str) -> bool:
    """True for what can only be a path: absolute, ./ ../ ~ prefixed, or a backslash/drive path. A bare
    "org/name" is a hub id unless it exists on disk."""
    source = str(source)
    return (
        os.path.isabs(source)
        or source.startswith(("./", "../", "~", ".\\", "..\\"))
        or source in (".", "..")
        or "\\" in source
    )


def is_local(source: str) -> bool:
    return os.path.exists(os.path.expanduser(str(source)))


def is_commit(revision: str | None) -> bool:
    """A revision that names one commit (40 hex digits: what preflight pins), not a branch or tag."""
    return bool(revision) and re.fullmatch(r"[0-9a-f]{40}", str(revision)) is not None


def offline_mode() -> bool:
    return any(
        os.environ.get(var, "").strip().upper() in ("1", "ON", "YES", "TRUE")
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _hub_error_types() -> tuple[type, ...]:
    """What a load turns into a HubAccessError: transformers and datasets report missing or unreachable sources as
    OSError, the hub client and datasets with their own types."""
    return (
        OSError,
        *error_types(
            HUB_ERRORS,
            "HfHubHTTPError",
            "RepositoryNotFoundError",
            "GatedRepoError",
            "LocalEntryNotFoundError",
            "OfflineModeIsEnabled",
            "HFValidationError",
            "RevisionNotFoundError",
            "EntryNotFoundError",
        ),
        *error_types(
            "datasets.exceptions", "DatasetNotFoundError", "DataFilesNotFoundError", "FileNotFoundDatasetsError"
        ),
        *error_types("httpx", "TransportError"),  # the HTTP client of huggingface_hub, raised as it is by some calls
        *error_types("httpx2", "TransportError"),
    )


REASONS = {
    "gated": "the repository is gated or private and no accepted token was sent",
    "revision": "the requested revision does not exist",
    "offline": "it is not in the local HF cache and offline mode is on",
    "unreachable": "it is not in the local HF cache and the Hugging Face hub is unreachable",
    "missing": "no such repository on the Hugging Face hub",
    "invalid": "it is neither an existing local path nor a valid hub id",
}


def _reason(exc: BaseException, source: str) -> str:
    """Why a source could not be had, on one line."""
    if looks_like_local_path(source) and not is_local(source):
        return "the local path does not exist"
    kind = hub_error_kind(exc, offline=offline_mode())
    if kind:
        return REASONS[kind]
    first = " ".join(str(exc).split())
    return (first[:200] + "...") if len(first) > 200 else (first or type(exc).__name__)


def access_message(kind: str, source: str, exc: BaseException) -> str:
    """The one-line HubAccessError message for `kind` (e.g. "teacher model") `source`."""
    hint = (
        "set HF_TOKEN in the environment for gated models, give a local path in the config, "
        f"or pre-populate the HF cache (hf download {source}) and set HF_HUB_OFFLINE=1"
    )
    if "dataset" in kind:
        hint = (
            "set HF_TOKEN in the environment for gated datasets, give a local path (a save_to_disk directory or "
            f"data files) in the config, or pre-populate the HF cache (hf download --repo-type dataset {source}) "
            "and set HF_DATASETS_OFFLINE=1 and HF_HUB_OFFLINE=1"
        )
    reason = _reason(exc, source)
    fault = hub_fault(exc, offline=offline_mode())
    if fault is not None and fault.endpoint_wide and not (looks_like_local_path(source) and not is_local(source)):
        cache = f"hf download{' --repo-type dataset' if 'dataset' in kind else ''} {source}"
        reason = f"it is not in the local HF cache and {endpoint_phrase()}: {what_failed(fault)}"
        hint = REMEDIES[fault.kind]
        if "/" in source:  # a hub id (not a builder such as "json" reading hf:// files)
            hint += f"; or pre-populate the HF cache ({cache}) and set HF_HUB_OFFLINE=1"
    if reason == "the local path does not exist":
        hint = f"check the path in the config (relative to {os.getcwd()}) or give a hub id instead"
    elif (
        reason.startswith("it is not in the local HF cache") and os.environ.get(PREFETCHED_VARIABLE) == "1"
    ):  # a GPU job that runs offline because hub.prefetch is on (maple.runtime.jobs)
        return " ".join(f"cannot load {kind} {source!r}: {prefetch_hint()}".split())
    message = f"cannot load {kind} {source!r}: {reason}; to provide it, {hint}"
    return " ".join(message.split())


@contextlib.contextmanager
def hub_access(kind: str, source: str):
    """Turn hub-access failures inside the block into a one-line HubAccessError naming `kind` and `source`."""
    try:
        yield
    except HubAccessError:
        raise
    except _hub_error_types() as exc:
        if is_local(source):
            raise  # an existing local source that fails to load is broken, not out of reach
        raise HubAccessError(access_message(kind, str(source), exc)) from exc


def _check_local(kind: str, source: str) -> str:
    source = str(source)
    if looks_like_local_path(source):
        path = os.path.expanduser(source)
        if not os.path.exists(path):
            raise HubAccessError(access_message(kind, source, FileNotFoundError(path)))
        return path
    return source


def load_tokenizer(
    source: str, *, revision: str | None = None, trust_remote_code: bool = False, kind: str = "tokenizer", **kwargs
):
    from transformers import AutoTokenizer

    path = _check_local(kind, source)
    with hub_access(kind, source):
        return AutoTokenizer.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code, **kwargs)


def load_causal_lm(
    source: str, *, revision: str | None = None, trust_remote_code: bool = False, kind: str = "model", **kwargs
):
    from transformers import AutoModelForCausalLM

    path = _check_local(kind, source)
    with hub_access(kind, source):
        return AutoModelForCausalLM.from_pretrained(
            path, revision=revision, trust_remote_code=trust_remote_code, **kwargs
        )


def load_seq2seq_lm(
    source: str, *, revision: str | None = None, trust_remote_code: bool = False, kind: str = "model", **kwargs
):
    from transformers import AutoModelForSeq2SeqLM

    path = _check_local(kind, source)
    with hub_access(kind, source):
        return AutoModelForSeq2SeqLM.from_pretrained(
            path, revision=revision, trust_remote_code=trust_remote_code, **kwargs
        )


def is_saved_dataset(path: Path) -> bool:
    """A directory written by Dataset.save_to_disk or DatasetDict.save_to_disk."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def load_dataset(
    source: str,
    name: str | None = None,
    split: str | None = None,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    kind: str = "dataset",
    **kwargs,
):
    """A datasets.Dataset (or DatasetDict when split is None) from any of:
    * a directory written by save_to_disk (a Dataset, or a DatasetDict from which `split` is taken),
    * a local data file (.json/.jsonl/.csv/.tsv/.parquet/.arrow/.txt), read as its single "train" split,
    * a local directory of data files, or a hub id, through datasets.load_dataset(source, name, split=...).
    """
    import datasets

    path = _check_local(kind, source)
    local = Path(os.path.expanduser(str(source)))
    with hub_access(kind, source):
        if local.exists() and local.is_dir() and is_saved_dataset(local):
            data = datasets.load_from_disk(str(local))
            if isinstance(data, datasets.DatasetDict) and split is not None:
                if split not in data:
                    raise HubAccessError(
                        f"cannot load {kind} {source!r}: it has no split {split!r} (splits: {sorted(data)})"
                    )
                return data[split]
            return data
        if local.exists() and local.is_file():
            suffix = local.suffix.lower()
            if suffix not in LOCAL_DATA_SUFFIXES:
                raise HubAccessError(
                    f"cannot load {kind} {source!r}: unknown data file type {suffix!r} "
                    f"(expected one of {sorted(LOCAL_DATA_SUFFIXES)})"
                )
            extra = {"delimiter": "\t"} if suffix == ".tsv" else {}
            return datasets.load_dataset(
                LOCAL_DATA_SUFFIXES[suffix], data_files=str(local), split=split or "train", **extra, **kwargs
            )
        if trust_remote_code:
            if "trust_remote_code" in inspect.signature(datasets.load_dataset).parameters:
                kwargs["trust_remote_code"] = True
            else:
                warnings.warn(
                    f"datasets {datasets.__version__} runs no dataset scripts; trust_remote_code "
                    f"is ignored for {source!r}",
                    stacklevel=2,
                )
        if offline_mode() and is_commit(revision) and not local.exists():
            # A hub dataset at a pinned commit with the hub offline (prefetch): datasets cannot resolve a hub id
            # offline, so read the commit's snapshot in the HF cache as a local directory (maple.hub.prefetch).
            path, revision = snapshot_dir(str(source), revision), None
        return datasets.load_dataset(path, name, split=split, revision=revision, **kwargs)
