"""A model's size and KV cache from its files, as preflight counts parameters (maple.hub.memory): a built tiny model
from the config it is built with, a GGUF file from its header, a local directory from its safetensors headers or
config.json, a hub model from config.json in the HF cache (after prefetch). A hub model not in the cache is read
from a stated table of the architectures the shipped studies name, else from a size in its name, else taken as
Llama-2-7B; estimate.md's notes say which."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache

from maple.hub.memory import config_parameter_count, local_parameter_count
from maple.train.gguf import GGUFError, read_metadata

KV_BYTES = 2  # a bf16 key or value element


@dataclass(frozen=True)
class ModelShape:
    params_b: float
    layers: int
    kv_heads: int
    head_dim: int
    source: str  # where the figures come from

    @property
    def kv_bytes_per_token(self) -> float:
        """The KV cache one token of one sequence holds: keys and values of every layer."""
        return 2 * self.layers * self.kv_heads * self.head_dim * KV_BYTES


# Architectures of hub models the shipped configs name (their config.json), for a plan before prefetch.
KNOWN_CONFIGS = {
    "llama-2-7b": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
                   "intermediate_size": 11008, "vocab_size": 32000, "hidden_act": "silu", "tie_word_embeddings": False},
    "mistral-7b": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                   "intermediate_size": 14336, "vocab_size": 32000, "hidden_act": "silu", "tie_word_embeddings": False},
    "qwen2.5-7b": {"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                   "intermediate_size": 18944, "vocab_size": 152064, "hidden_act": "silu", "tie_word_embeddings": False},
}  # fmt: skip
DEFAULT_CONFIG = "llama-2-7b"  # a model found nowhere: the study's size


def shape_of_config(config: dict, source: str, params: int | None = None) -> ModelShape | None:
    count = params or config_parameter_count(config)
    if not count or not config.get("num_hidden_layers"):
        return None
    heads = config.get("num_attention_heads") or 1
    return ModelShape(
        params_b=count / 1e9,
        layers=int(config["num_hidden_layers"]),
        kv_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or config["hidden_size"] // heads),
        source=source,
    )


def built_shape(tiny_model: dict) -> ModelShape:
    """The tiny Llama rule build_tiny_model makes (maple.train.tiny_model.make_model; its vocabulary the
    tokenizer's, at most vocab_size)."""
    config = {
        "hidden_size": tiny_model.get("hidden_size", 128),
        "intermediate_size": tiny_model.get("intermediate_size", 256),
        "num_hidden_layers": tiny_model.get("num_hidden_layers", 2),
        "num_attention_heads": tiny_model.get("num_attention_heads", 4),
        "vocab_size": tiny_model.get("vocab_size", 2000),
        "hidden_act": "silu",
        "tie_word_embeddings": False,
    }
    return shape_of_config(config, "built: tiny_model")


GGUF_KEYS = ("block_count", "embedding_length", "feed_forward_length", "attention.head_count",
             "attention.head_count_kv", "vocab_size")  # fmt: skip


@lru_cache(maxsize=16)
def gguf_shape(path: str) -> ModelShape | None:
    try:
        arch = read_metadata(path, ["general.architecture"]).get("general.architecture")
        meta = read_metadata(path, [f"{arch}.{k}" for k in GGUF_KEYS] + ["tokenizer.ggml.tokens"])
    except (OSError, GGUFError):
        return None
    get = {k: meta.get(f"{arch}.{k}") for k in GGUF_KEYS}
    config = {
        "hidden_size": get["embedding_length"],
        "intermediate_size": get["feed_forward_length"],
        "num_hidden_layers": get["block_count"],
        "num_attention_heads": get["attention.head_count"],
        "num_key_value_heads": get["attention.head_count_kv"],
        "vocab_size": get["vocab_size"] or meta.get("tokenizer.ggml.tokens"),
        "hidden_act": "silu",
        "tie_word_embeddings": True,
    }
    return shape_of_config(config, f"GGUF header {os.path.basename(path)}")


@lru_cache(maxsize=16)
def local_shape(directory: str) -> ModelShape | None:
    try:
        config = json.loads(open(os.path.join(directory, "config.json"), encoding="utf-8").read())
    except (OSError, ValueError):
        return None
    params, how = local_parameter_count(directory)
    return shape_of_config(config.get("text_config") or config, f"{directory}: {how}", params)


def cached_config(repo_id: str, revision: str | None) -> str | None:
    """config.json of a hub model in the HF cache (prefetch), without the network."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json", revision=revision or "main")
    except Exception:  # noqa: BLE001 (no cache, an odd id: the stated table answers)
        return None
    return found if isinstance(found, str) else None


@lru_cache(maxsize=64)
def hub_shape(repo_id: str, revision: str | None = None) -> ModelShape:
    config_file = cached_config(repo_id, revision)
    if config_file:
        shape = local_shape(os.path.dirname(config_file))
        if shape:
            return shape
    name = repo_id.lower().split("/")[-1]
    for known, config in KNOWN_CONFIGS.items():
        if name.startswith(known):
            return shape_of_config(config, f"stated architecture of {known} (not in the HF cache)")
    default = shape_of_config(KNOWN_CONFIGS[DEFAULT_CONFIG], "")
    match = re.search(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([bBmM])(?![a-zA-Z])", name)
    if match:  # a size in the name: Llama-2-7B's layout scaled to it
        params_b = float(match[1]) / (1 if match[2] in "bB" else 1000)
        layers = max(round(default.layers * (params_b / default.params_b) ** (1 / 3)), 1)
        return ModelShape(params_b, layers, default.kv_heads, default.head_dim, f"size {match[0]} in its name")
    return ModelShape(
        default.params_b, default.layers, default.kv_heads, default.head_dim, f"unknown: taken as {DEFAULT_CONFIG}"
    )


def model_shape(model, tiny_model: dict) -> ModelShape:
    """The shape of a study model (maple.config.study.Model)."""
    if model.build:
        return built_shape(tiny_model)
    if model.gguf:
        shape = gguf_shape(str(model.gguf))
        if shape:
            return shape
    if model.source and os.path.isdir(model.source):
        shape = local_shape(model.source)
        if shape:
            return shape
    return hub_shape(model.source or str(model.gguf), getattr(model, "revision", None))


def teacher_shape(study, dataset: str, spec: dict) -> ModelShape:
    """The model a dataset is written with: a model alias of the study, else a hub id or local directory."""
    alias = study.data_teachers.get(dataset)
    if alias in study.models:
        return model_shape(study.models[alias], study.tiny_model)
    name = str(spec.get("teacher") or spec.get("translator") or "")
    if os.path.isdir(name):
        shape = local_shape(name)
        if shape:
            return shape
    return hub_shape(name, spec.get("revision"))
