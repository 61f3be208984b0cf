"""Hub failures by their types: what kind of failure an exception is (`hub_fault`, and the coarser `hub_error_kind`
the loaders name), read from the types of the errors in its chain, the HTTP status a hub error carries and what the
retrying transport recorded (maple.hub.transport), never from the words of a message; and the one line that says
what failed and what to do (`fault_line`). maple.hub.access and maple.hub.revisions build their messages on these."""

from __future__ import annotations

import importlib
import os
import socket
import ssl
from dataclasses import dataclass


def _chain(exc: BaseException) -> list[BaseException]:
    seen = []
    while exc is not None and exc not in seen and len(seen) < 10:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


HUB_ERRORS = "huggingface_hub.errors"
DEFAULT_ENDPOINT = "https://huggingface.co"


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


def _http_clients(*names: str) -> tuple[type, ...]:
    """The HTTP client of huggingface_hub: httpx, or httpx2 in later releases."""
    return error_types("httpx", *names) + error_types("httpx2", *names)


@dataclass(frozen=True)
class HubFault:
    """One hub failure: kind (FAULT_KINDS), the HTTP status where the server answered, what the transport tried."""

    kind: str
    status: int | None = None
    tries: int = 0  # 0: not retried (no record of the transport's)
    waited_s: float = 0.0
    retry_after: float | None = None
    detail: str = ""

    @property
    def transient(self) -> bool:
        return self.kind in TRANSIENT

    @property
    def endpoint_wide(self) -> bool:
        """A failure of the endpoint (every repository would meet it), not of one repository."""
        return self.kind in ENDPOINT_WIDE


# what failed, in words; the kinds: the server did not answer usefully (dns .. server), or answered "no" (gated ..)
FAULT_KINDS = {
    "dns": "the host name does not resolve",
    "refused": "the connection is refused (nothing listens there)",
    "tls": "the TLS handshake failed",
    "unreachable": "it cannot be connected to",
    "timeout": "it did not answer in time",
    "cut": "the connection was cut during the transfer",
    "rate_limited": "it answers HTTP 429 (rate limited)",
    "server": "it answers with a server error",
    "offline": "offline mode is on",
    "gated": "the repository is gated or private and no accepted token was sent",
    "revision": "the requested revision does not exist",
    "missing": "no such repository",
    "invalid": "it is not a valid hub id",
}
TRANSIENT = frozenset({"timeout", "cut", "rate_limited", "server"})
ENDPOINT_WIDE = frozenset({"dns", "refused", "tls", "unreachable", *TRANSIENT})


def _retry_record(chain: list[BaseException]):
    return next((e.maple_retry for e in chain if getattr(e, "maple_retry", None) is not None), None)


def hub_fault(exc: BaseException, offline: bool = False) -> HubFault | None:
    """The fault exc is, or None where it is none of FAULT_KINDS (offline: HF_HUB_OFFLINE and the like are set)."""
    chain = _chain(exc)

    def found(*types: type) -> bool:
        return any(isinstance(error, types) for error in chain)

    http = error_types(HUB_ERRORS, "HfHubHTTPError")
    status = next((_status(e) for e in chain if isinstance(e, http) and _status(e) is not None), None)
    record = _retry_record(chain)
    tried = {"tries": record.tries, "waited_s": record.waited_s, "retry_after": record.retry_after} if record else {}
    detail = " ".join(str(chain[-1]).split())[:160] or type(chain[-1]).__name__

    def fault(kind: str) -> HubFault:
        return HubFault(kind, status, detail=detail, **tried)

    if found(*error_types(HUB_ERRORS, "GatedRepoError")) or status in (401, 403):
        return fault("gated")
    if found(*error_types(HUB_ERRORS, "RevisionNotFoundError")):
        return fault("revision")
    if status == 429:
        return fault("rate_limited")
    if status is not None and (status >= 500 or status == 408):
        return fault("server")
    unreachable = (
        ConnectionError,  # datasets: "Couldn't reach ..."; OfflineModeIsEnabled is one too
        TimeoutError,
        *error_types(HUB_ERRORS, "LocalEntryNotFoundError"),  # transformers: "We couldn't connect ..."
        *_http_clients("TransportError"),
        *error_types("requests.exceptions", "ConnectionError", "Timeout"),
    )
    if found(*error_types(HUB_ERRORS, "OfflineModeIsEnabled")) or (found(*unreachable) and offline):
        return fault("offline")
    if found(socket.gaierror):
        return fault("dns")
    if found(ConnectionRefusedError):
        return fault("refused")
    if found(ssl.SSLError):
        return fault("tls")
    if found(TimeoutError, socket.timeout, *_http_clients("TimeoutException"), *error_types("requests", "Timeout")):
        return fault("timeout")
    if found(ConnectionResetError, ConnectionAbortedError, *_http_clients("ReadError", "RemoteProtocolError")):
        return fault("cut")
    if found(*unreachable):
        return fault("unreachable")
    missing = error_types(HUB_ERRORS, "RepositoryNotFoundError") + error_types(
        "datasets.exceptions", "DatasetNotFoundError"
    )
    if found(*missing) or status == 404:
        return fault("missing")
    if found(*error_types(HUB_ERRORS, "HFValidationError")):
        return fault("invalid")
    return None


def hub_error_kind(exc: BaseException, offline: bool = False) -> str | None:
    """The coarse kind the loaders name (maple.hub.access): "gated" (or private), "revision" (no such revision),
    "offline" (not cached, and offline mode on), "unreachable" (not cached, and the hub failed: every endpoint-wide
    fault), "missing" (no such repository), "invalid" (not a hub id); None: none of these."""
    fault = hub_fault(exc, offline)
    if fault is None:
        return None
    return "unreachable" if fault.endpoint_wide else fault.kind


# --- The one line --------------------------------------------------------------------------------------------------


def hub_endpoint() -> str:
    """The endpoint huggingface_hub talks to in this process."""
    from huggingface_hub import constants

    return str(constants.ENDPOINT).rstrip("/")


def endpoint_phrase(endpoint: str | None = None) -> str:
    """'the hub at <endpoint> (HF_ENDPOINT)', or 'the hub (https://huggingface.co)' where HF_ENDPOINT is unset."""
    endpoint = (endpoint or hub_endpoint()).rstrip("/")
    if os.environ.get("HF_ENDPOINT", "").strip() and endpoint != DEFAULT_ENDPOINT:
        return f"the hub at {endpoint} (HF_ENDPOINT)"
    return f"the hub ({endpoint})" if endpoint == DEFAULT_ENDPOINT else f"the hub at {endpoint}"


def what_failed(fault: HubFault) -> str:
    """What failed, with what was tried: e.g. "it answers HTTP 429 (rate limited) (Retry-After 30 s; 3 tries over 62 s)"."""
    said = FAULT_KINDS[fault.kind]
    if fault.kind == "server" and fault.status:
        said = f"it answers HTTP {fault.status} (server error)"
    if fault.kind in ("dns", "refused", "tls", "unreachable"):
        said += f" ({fault.detail})"
    notes = []
    if fault.kind == "timeout":
        notes.append(f"hub.timeout_s {_seconds_text(_setting('MAPLE_HUB_TIMEOUT_S'))}")
    if fault.retry_after is not None:
        notes.append(f"Retry-After {fault.retry_after:.0f} s")
    if fault.tries:
        tries = f"{fault.tries} tries" if fault.tries > 1 else "1 try"
        notes.append(f"{tries} over {fault.waited_s:.0f} s, hub.retry_s {_seconds_text(_setting())}")
    return said + (f" ({'; '.join(notes)})" if notes else "")


def _setting(variable: str = "MAPLE_HUB_RETRY_S") -> float:
    from maple.hub.transport import RetryPolicy

    policy = RetryPolicy.from_env()
    return policy.timeout_s if variable == "MAPLE_HUB_TIMEOUT_S" else policy.retry_s


def _seconds_text(value: float) -> str:
    return f"{value:g} s"


REMEDIES = {
    "dns": "check the network (DNS) and HF_ENDPOINT, or run this where the hub is reachable",
    "refused": "check HF_ENDPOINT (host and port) and that the server there runs",
    "tls": "check HF_ENDPOINT's scheme and the server's certificate (SSL_CERT_FILE / REQUESTS_CA_BUNDLE for a site CA)",
    "unreachable": "check the network and HF_ENDPOINT, or run this where the hub is reachable",
    "timeout": "try again later, or raise hub.timeout_s / hub.retry_s for a slow hub",
    "cut": "run it again: complete files are kept in the HF cache and the cut one is fetched anew",
    "rate_limited": "wait and run again (set HF_TOKEN: a token gets higher limits), or raise hub.retry_s",
    "server": "the hub is failing: wait and run again, or raise hub.retry_s",
}


def fault_line(subject: str, fault: HubFault, endpoint: str | None = None) -> str:
    """One line for an endpoint-wide fault: "<subject>: <hub> <what failed>: <what to do>"."""
    return f"{subject}: {endpoint_phrase(endpoint)}: {what_failed(fault)}: {REMEDIES[fault.kind]}"
