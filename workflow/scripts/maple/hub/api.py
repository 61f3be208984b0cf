"""The one seam between the workflow and the Hugging Face hub's API: `hub_api()` is what preflight (checks, pins)
and prefetch (downloads) talk to. It is huggingface_hub.HfApi, unless MAPLE_HUB_API names a stand-in factory
("package.module:factory" or "/path/to/file.py:factory"); tests use that to answer as the hub would, with
huggingface_hub's own error classes, without a network. Everything behind the seam (the checks, the pins, the
HF cache the jobs read) is the real code. Jobs never call it: they read the HF cache through transformers /
datasets / huggingface_hub themselves."""

from __future__ import annotations

import importlib
import importlib.util
import os

API_VARIABLE = "MAPLE_HUB_API"
TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def hub_api():
    """huggingface_hub.HfApi(), or the stand-in MAPLE_HUB_API names."""
    spec = os.environ.get(API_VARIABLE, "").strip()
    if not spec:
        from huggingface_hub import HfApi

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
