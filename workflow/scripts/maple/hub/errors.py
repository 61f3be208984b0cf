"""Hub failures by their types: which kind of failure an exception is (`hub_error_kind`), read from the types of the
errors in its chain and the HTTP status a hub error carries, never from the words of a message. maple.hub.access
turns the kind into its one-line message."""

from __future__ import annotations

import importlib


def _chain(exc: BaseException) -> list[BaseException]:
    seen = []
    while exc is not None and exc not in seen and len(seen) < 10:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


HUB_ERRORS = "huggingface_hub.errors"


def error_types(module: str, *names: str) -> tuple[type, ...]:
    """The exception classes `names` of `module` that this version of it has (none where it is not installed)."""
    try:
        found = importlib.import_module(module)
    except ImportError:
        return ()
    return tuple(getattr(found, name) for name in names if isinstance(getattr(found, name, None), type))


def _status(error: BaseException) -> int | None:
    """The HTTP status of a hub error that carries its response."""
    return getattr(getattr(error, "response", None), "status_code", None)


def hub_error_kind(exc: BaseException, offline: bool = False) -> str | None:
    """What kind of hub failure exc is, from the types of the errors in its chain (transformers and datasets raise
    their own OSError / ConnectionError from huggingface_hub's typed error) and the HTTP status a hub error carries:
    "gated" (or private), "revision" (no such revision), "offline" (not cached, and offline mode on: `offline`, or
    huggingface_hub's own OfflineModeIsEnabled), "unreachable" (not cached, hub out of reach), "missing" (no such
    repository), "invalid" (not a hub id); None: none of these."""
    chain = _chain(exc)

    def found(*types: type) -> bool:
        return any(isinstance(error, types) for error in chain)

    def status(*codes: int) -> bool:
        http = error_types(HUB_ERRORS, "HfHubHTTPError")
        return any(isinstance(error, http) and _status(error) in codes for error in chain)

    unreachable = (
        ConnectionError,  # datasets: "Couldn't reach ..."; OfflineModeIsEnabled is one too
        TimeoutError,
        *error_types(HUB_ERRORS, "LocalEntryNotFoundError"),  # transformers: "We couldn't connect ..."
        # the HTTP client of huggingface_hub: httpx, or httpx2 in later releases
        *error_types("httpx", "TransportError"),
        *error_types("httpx2", "TransportError"),
        *error_types("requests.exceptions", "ConnectionError", "Timeout"),
    )
    if found(*error_types(HUB_ERRORS, "GatedRepoError")) or status(401, 403):
        return "gated"
    if found(*error_types(HUB_ERRORS, "RevisionNotFoundError")):
        return "revision"
    if found(*error_types(HUB_ERRORS, "OfflineModeIsEnabled")) or (found(*unreachable) and offline):
        return "offline"
    if found(*unreachable):
        return "unreachable"
    missing = error_types(HUB_ERRORS, "RepositoryNotFoundError") + error_types(
        "datasets.exceptions", "DatasetNotFoundError"
    )
    if found(*missing) or status(404):
        return "missing"
    if found(*error_types(HUB_ERRORS, "HFValidationError")):
        return "invalid"
    return None
