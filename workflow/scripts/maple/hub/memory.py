"""The GPU-memory check of preflight: a model's parameter count (hub or local, from the first source that answers)
and the memory it needs at each bit-width."""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

# Bytes per parameter of the base at each bit-width, and the margin on top of the weights for the LoRA weights, their
# optimiser state, activations and the CUDA context: a lower bound, not a forecast (docs/gpus-slurm-offline.md,
# "Preflight").
BYTES_PER_PARAMETER = {4: 0.5, 8: 1.0, 16: 2.0}
MEMORY_MARGIN = 1.2
CUDA_CONTEXT_GIB = 1.0


def safetensors_header_count(paths) -> int:
    """Parameters declared in the headers of local safetensors files (no weights read)."""
    total = 0
    for path in paths:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        for name, tensor in header.items():
            if name != "__metadata__":
                count = 1
                for dim in tensor["shape"]:
                    count *= dim
                total += count
    return total


def config_parameter_count(config: dict) -> int | None:
    """An estimate from a model's config.json for a decoder of the common layout (embeddings, attention with grouped
    key/value heads, a gated or plain MLP, norms); None when the config lacks its sizes. Nested text_config (a
    multimodal model) is read for its language model."""
    if "text_config" in config and "hidden_size" not in config:
        config = config["text_config"] or {}

    def first(*keys):
        return next((config[k] for k in keys if isinstance(config.get(k), int) and config[k] > 0), None)

    hidden = first("hidden_size", "n_embd", "d_model")
    layers = first("num_hidden_layers", "n_layer", "num_layers")
    vocab = first("vocab_size")
    if not (hidden and layers and vocab):
        return None
    inner = first("intermediate_size", "n_inner", "ffn_dim") or 4 * hidden
    heads = first("num_attention_heads", "n_head") or 1
    head_dim = first("head_dim") or hidden // heads
    kv_heads = first("num_key_value_heads") or heads
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    gated = str(config.get("hidden_act") or config.get("activation_function") or "").lower() in ("silu", "swish")
    mlp = (3 if gated else 2) * hidden * inner
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings", True) else 2)
    return embeddings + layers * (attention + mlp + 2 * hidden) + hidden


def local_parameter_count(directory: str) -> tuple[int | None, str]:
    """(parameters, where from) of a local model: its safetensors headers, else an estimate from its config.json."""
    path = Path(os.path.expanduser(str(directory)))
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    headers = "safetensors headers (no *.safetensors)"
    try:
        if files:
            return safetensors_header_count(files), "safetensors headers"
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        headers = "safetensors headers (unreadable)"
    try:
        count = config_parameter_count(json.loads((path / "config.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, AttributeError):
        count = None
    if count:
        return count, "config.json, estimated"
    return None, f"tried: {headers}; config.json (absent or without sizes)"


def hub_parameter_count(api, repo_id: str, commit: str, info, token: str | None) -> tuple[int | None, str]:
    """(parameters, where from) of a hub model at commit: model_info's safetensors block, else the safetensors
    headers (range reads: get_safetensors_metadata), else an estimate from its config.json; (None, what was tried)
    when none of them answers."""
    from huggingface_hub import errors

    from maple.hub.errors import error_types

    transport = error_types("httpx", "TransportError") + error_types("httpx2", "TransportError")  # a cut, a timeout
    failures = (AttributeError, errors.HfHubHTTPError, errors.EntryNotFoundError, OSError, ValueError, KeyError)
    failures += transport
    not_safetensors = (errors.NotASafetensorsRepoError, errors.SafetensorsParsingError)
    tried = []
    safetensors = getattr(info, "safetensors", None)
    if safetensors is not None and getattr(safetensors, "total", None):
        return int(safetensors.total), "model_info safetensors"
    tried.append("model_info safetensors (absent)")
    try:
        metadata = api.get_safetensors_metadata(repo_id, revision=commit, token=token or False)
        count = sum(metadata.parameter_count.values())
        if count:
            return count, "safetensors headers"
        tried.append("safetensors headers (no tensors)")
    except not_safetensors as error:
        tried.append(f"safetensors headers ({type(error).__name__})")
    except failures as error:
        tried.append(f"safetensors headers ({_short(error)})")
    try:
        with tempfile.TemporaryDirectory() as cache:  # a look, not a download into the HF cache
            config_file = api.hf_hub_download(
                repo_id, "config.json", revision=commit, cache_dir=cache, token=token or False
            )
            count = config_parameter_count(json.loads(Path(config_file).read_text(encoding="utf-8")))
        if count:
            return count, "config.json, estimated"
        tried.append("config.json (no hidden_size / num_hidden_layers / vocab_size)")
    except failures as error:
        tried.append(f"config.json ({_short(error)})")
    return None, "tried: " + "; ".join(tried)


def _short(error: BaseException) -> str:
    status = getattr(getattr(error, "response", None), "status_code", None)
    return f"HTTP {status}" if status else type(error).__name__


def memory_lines(model: dict, parameters: int | None, available: float | None, out, source: str = "") -> None:
    """GPU memory a model needs at each bit-width (a lower bound) against what a job gets, where known; report lines
    and problems appended to out (maple.hub.preflight.Outcome). source: where the count comes from, or (count None)
    what was tried."""
    what = f"models.{model['alias']}"
    if parameters is None:
        out.report.append(f"mem  {what}: parameter count unknown ({source or 'not looked up'}); GPU memory not checked")
        return
    for bits in model["bits"]:
        need = parameters * BYTES_PER_PARAMETER[bits] * MEMORY_MARGIN / 2**30 + CUDA_CONTEXT_GIB
        line = f"{what} at {bits} bits needs at least {need:.1f} GiB ({parameters / 1e9:.2f}e9 parameters{f', from {source}' if source else ''})"
        if available is None:
            out.report.append(f"mem  {line}; the jobs' GPU memory is unknown (preflight.gpu_memory_gib)")
        elif need > available:
            out.problems.append(f"{line}, more than the {available:g} GiB a job gets (preflight.gpu_memory_gib)")
        else:
            out.report.append(f"mem  {line}; a job gets {available:g} GiB")
