"""Every HTTP request huggingface_hub makes in this process (HfApi calls, downloads, the loads of transformers and
datasets) goes through `HubTransport` once `install()` ran (maple.hub.api.hub_api, maple.runtime.jobs.logged_to).

Each request waits at most hub.timeout_s for the server (connecting, and each read). What is transient is retried
with backoff, honouring Retry-After, while the endpoint has been failing for less than hub.retry_s: HTTP 408, 429
and 5xx, a timeout, a connection cut before the answer. What is not transient (a name that does not resolve, a
refused connection, TLS, 401/403/404) is never retried. Only GET, HEAD and OPTIONS are retried (nothing here sends a
body the server could have acted on).

On giving up, an HTTP answer becomes huggingface_hub's own error for it (as `hf_raise_for_status` would raise it),
raised here so that no retry loop of huggingface_hub's waits on it once more; the error carries `maple_retry` (how
often, for how long, the last Retry-After), which maple.hub.errors reads. The endpoint's failing streak is shared by
the requests of the process, so a retry loop of huggingface_hub's that sends the request again gets one more try,
not another hub.retry_s."""

from __future__ import annotations

import email.utils
import os
import threading
import time
from dataclasses import dataclass

RETRY_VARIABLE = "MAPLE_HUB_RETRY_S"  # set from hub.retry_s at planning (maple.hub.api.hub_settings_env)
TIMEOUT_VARIABLE = "MAPLE_HUB_TIMEOUT_S"  # set from hub.timeout_s
DEFAULT_RETRY_S = 120.0  # the schema's defaults (workflow/schemas/config.schema.yaml), for a process without them
DEFAULT_TIMEOUT_S = 30.0
TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)
RETRIED_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class RetryPolicy:
    retry_s: float = DEFAULT_RETRY_S  # how long an endpoint may keep failing before a request gives up
    timeout_s: float = DEFAULT_TIMEOUT_S  # one request's wait for the server (connect, each read)
    first_wait_s: float = 1.0  # backoff: 1, 2, 4 ... seconds, at most max_wait_s, unless Retry-After says
    max_wait_s: float = 16.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        return cls(
            retry_s=_seconds(RETRY_VARIABLE, DEFAULT_RETRY_S), timeout_s=_seconds(TIMEOUT_VARIABLE, DEFAULT_TIMEOUT_S)
        )


def _seconds(variable: str, default: float) -> float:
    try:
        value = float(os.environ.get(variable, "").strip() or default)
    except ValueError:
        return default
    return value if value >= 0 else default


@dataclass(frozen=True)
class RetryRecord:
    """What the transport tried before it gave up."""

    tries: int
    waited_s: float
    retry_after: float | None = None


def retry_after_seconds(headers) -> float | None:
    """Retry-After in seconds: delay-seconds or an HTTP date; None where absent or unreadable."""
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _transient_errors() -> tuple[type, ...]:
    import httpx2

    # a timeout, or the connection cut after it was made (reset, closed before the answer)
    return (httpx2.TimeoutException, httpx2.ReadError, httpx2.WriteError, httpx2.RemoteProtocolError)


def _http_base():
    import httpx2

    return httpx2.BaseTransport


class HubTransport(_http_base()):
    """An httpx2 transport over `inner` (a plain HTTPTransport) that retries what is transient (module docstring)."""

    def __init__(self, policy: RetryPolicy | None = None, inner=None, sleep=time.sleep, clock=time.monotonic):
        import httpx2

        self.policy = policy or RetryPolicy.from_env()
        self.inner = inner or httpx2.HTTPTransport()
        self._sleep, self._clock = sleep, clock
        self._failing_since: dict[str, float] = {}  # endpoint -> when its current streak of failures began
        self._lock = threading.Lock()

    def _streak(self, host: str) -> float:
        with self._lock:
            return self._failing_since.setdefault(host, self._clock())

    def _answered(self, host: str) -> None:
        with self._lock:
            self._failing_since.pop(host, None)

    def handle_request(self, request):
        import httpx2

        request.extensions["timeout"] = httpx2.Timeout(self.policy.timeout_s or None).as_dict()
        if request.method not in RETRIED_METHODS:
            return self.inner.handle_request(request)
        host = f"{request.url.scheme}://{request.url.netloc.decode('ascii', 'replace')}"
        tries, began, wait = 0, None, self.policy.first_wait_s
        while True:
            tries += 1
            response, error, retry_after = None, None, None
            try:
                response = self.inner.handle_request(request)
            except _transient_errors() as caught:
                error = caught
            if response is not None:
                if response.status_code not in TRANSIENT_STATUS:
                    self._answered(host)
                    return response
                retry_after = retry_after_seconds(response.headers)
            now = self._clock()
            began = min(began if began is not None else now, self._streak(host))
            delay = retry_after if retry_after is not None else wait
            if now + delay - began > self.policy.retry_s:
                record = RetryRecord(tries, now - began, retry_after)
                if response is not None:
                    _raise_for_answer(request, response, record)
                error.maple_retry = record
                raise error
            if response is not None:
                response.close()
            self._sleep(delay)
            wait = min(self.policy.max_wait_s, wait * 2)

    def close(self) -> None:
        self.inner.close()


def _raise_for_answer(request, response, record: RetryRecord):
    """huggingface_hub's error for a transient answer given up on, carrying the record."""
    from huggingface_hub.utils import hf_raise_for_status

    response.request = request
    response.read()
    try:
        hf_raise_for_status(response)
    except Exception as error:
        error.maple_retry = record
        raise
    raise RuntimeError(f"HTTP {response.status_code} from {request.url} did not raise")  # 408 .. 504 always do


_installed: list[RetryPolicy] = []


def install(policy: RetryPolicy | None = None) -> RetryPolicy:
    """huggingface_hub's shared HTTP client from now on goes through HubTransport (its own request hooks kept: the
    offline switch, request ids). Installing again with the same policy does nothing."""
    import httpx2
    from huggingface_hub.utils import get_session, set_client_factory

    policy = policy or RetryPolicy.from_env()
    if _installed and _installed[-1] == policy:
        return policy
    hooks = get_session().event_hooks  # the default client's (or an earlier install's, which are the same)

    def client():
        return httpx2.Client(
            event_hooks=hooks,
            follow_redirects=True,
            timeout=policy.timeout_s or None,
            transport=HubTransport(policy),
        )

    set_client_factory(client)
    _installed.append(policy)
    return policy
