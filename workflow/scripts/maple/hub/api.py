"""The one seam between the workflow and the Hugging Face hub's API: `hub_api()` is what preflight (checks, pins)
and prefetch (downloads) talk to. It is huggingface_hub.HfApi, unless MAPLE_HUB_API names a stand-in factory
("package.module:factory" or "/path/to/file.py:factory"); tests use that to answer as the hub would, with
huggingface_hub's own error classes, without a network. Everything behind the seam (the checks, the pins, the
HF cache the jobs read) is the real code. Jobs never call it: they read the HF cache through transformers /
datasets / huggingface_hub themselves.

Faults: `hub_api()` first routes huggingface_hub's HTTP client through the retrying transport (maple.hub.transport:
timeouts, transient answers retried within hub.retry_s); `retried` tries a whole call again where a transfer was
cut after the transport handed the answer on (a download's body); maple.hub.errors names what failed."""

from __future__ import annotations

import importlib
import importlib.util
import os
import time

from maple.hub.transport import RETRY_VARIABLE, TIMEOUT_VARIABLE, RetryPolicy, RetryRecord, install

API_VARIABLE = "MAPLE_HUB_API"
TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def hub_api():
    """huggingface_hub.HfApi(), or the stand-in MAPLE_HUB_API names."""
    spec = os.environ.get(API_VARIABLE, "").strip()
    if not spec:
        from huggingface_hub import HfApi

        install()
        return HfApi()
    module_name, sep, factory = spec.rpartition(":")
    if not sep or not module_name or not factory:
        raise ValueError(f"{API_VARIABLE}={spec!r}: expected 'module:factory' or '/path/file.py:factory'")
    if module_name.endswith(".py"):
        loader_spec = importlib.util.spec_from_file_location("maple_hub_api_standin", module_name)
        if loader_spec is None or not os.path.isfile(module_name):
            raise ValueError(f"{API_VARIABLE}={spec!r}: no such file {module_name!r}")
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    return getattr(module, factory)()


def hub_token() -> str | None:
    """The hub token from the environment only (never a token file on disk: docs/determinism-and-security.md, "Secrets
    and remote code")."""
    for name in TOKEN_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def hub_settings_env(hub: dict) -> dict[str, str]:
    """The config's hub.retry_s and hub.timeout_s as the variables every process of the run reads them from (set at
    planning, so that local rules and cluster jobs inherit them; no rule's params change with them)."""
    return {RETRY_VARIABLE: f"{float(hub['retry_s']):g}", TIMEOUT_VARIABLE: f"{float(hub['timeout_s']):g}"}


def retried(call, policy: RetryPolicy | None = None, log=print, sleep=time.sleep):
    """call(), tried again while it fails with a transient fault the transport did not already retry to the end (a
    download cut mid-body: huggingface_hub keeps no partial file across calls, so a new call fetches the file anew and
    keeps the complete ones), until hub.retry_s has passed since the first failure."""
    from maple.hub.errors import hub_fault

    policy = policy or RetryPolicy.from_env()
    began, wait, tries = None, policy.first_wait_s, 0
    while True:
        tries += 1
        try:
            return call()
        except Exception as error:
            fault = hub_fault(error)
            if fault is None or not fault.transient or _given_up(error):
                raise
            began = began if began is not None else time.monotonic()
            if time.monotonic() + wait - began > policy.retry_s:
                error.maple_retry = RetryRecord(tries, time.monotonic() - began)
                raise
            log(f"[maple] {fault.kind} ({fault.detail}); trying again in {wait:g} s")
            sleep(wait)
            wait = min(policy.max_wait_s, wait * 2)


def _given_up(error: BaseException) -> bool:
    """Whether the transport retried an error of the chain to the end already (it marks it with maple_retry)."""
    for _ in range(10):
        if error is None:
            return False
        if getattr(error, "maple_retry", None) is not None:
            return True
        error = error.__cause__ or error.__context__
    return False
