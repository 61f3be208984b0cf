"""The throughput table of the cost estimate: documented defaults for one 7B model on one H100-80GB with the
Hugging Face backend, replaced key by key by what `bench/gpu_check.sh` measured on the user's own GPU
(its `summary.json`, read by `read_gpu_summary`). docs/cost-and-sharding.md gives the sources and the reasoning.

The figures are for a model of `model_params_b` billion parameters; other models scale inversely with their
parameter count (compute and weight reads both grow with it)."""

from __future__ import annotations

import json
import os
import statistics

# Each default, with where it comes from (docs/cost-and-sharding.md, "The throughput table").
DEFAULT_THROUGHPUT = {
    # the model the figures are for (Llama-2-7B / Mistral-7B: 6.7 / 7.2 B)
    "model_params_b": 7.0,
    # training tokens (real, not padding) per second of one LoRA / QLoRA finetune, by bits: 16-bit LoRA at ~35 %
    # of the H100's 989 bf16 TFLOP/s with 6 x 7e9 FLOP per token (forward + backward, frozen base ~ 4/6 of that
    # plus recompute-free activations); 4- and 8-bit: bitsandbytes dequantisation per matmul (its own tables: NF4
    # ~1.6x, LLM.int8 ~3x slower than bf16 at training batch sizes)
    "finetune_tokens_per_s": {"4": 5500, "8": 3000, "16": 9000},
    # loglikelihood requests (one context + one continuation, ~512 tokens) per second: 2 x 7e9 x 512 FLOP each at
    # ~25 % of peak after lm-eval's padding and batching
    "loglikelihood_examples_per_s": 35.0,
    # generated examples per second at 32 new tokens and a batch of 32: HF generate at ~30 ms per decode step for
    # a 7B model (weights read per step: 14 GB / 3.35 TB/s = 4 ms, the rest Python and kernel launches)
    "generate_examples_per_s": 33.0,
    # evaluation on a bitsandbytes-quantised base (adapters of 4- and 8-bit finetunes, unmerged) vs bf16
    "eval_slowdown": {"4": 2.5, "8": 3.0, "16": 1.0},
    # seconds a job spends before its first example: process start, imports, model load from the shared cache,
    # lm-eval task set-up
    "load_seconds": 180.0,
}
REFERENCE_PROMPT_TOKENS = 512  # loglikelihood_examples_per_s and generate_examples_per_s are measured at this
REFERENCE_NEW_TOKENS = 32  # generate_examples_per_s: new tokens per example
REFERENCE_GEN_BATCH = 32  # generate_examples_per_s: the generation batch size

# The keys read from a summary.json (at its top level or in its "throughput" object): each replaces its default.
SUMMARY_KEYS = tuple(DEFAULT_THROUGHPUT)


class ThroughputError(ValueError):
    """summary.json is missing, not JSON, or holds a key of the wrong shape."""


def read_gpu_summary(path: str | os.PathLike | None) -> dict:
    """The throughput table: the defaults, with each key of SUMMARY_KEYS that `bench/gpu_check.sh`'s summary.json
    gives (at its top level or under "throughput") in their place. Expected shapes: finetune_tokens_per_s and
    eval_slowdown {"4": x, "8": y, "16": z} (bits as strings or integers; a missing bit-width keeps its default),
    the others positive numbers (load_seconds may be 0), or an object of them by task, whose median is taken. Returns the table and, under "source", where each figure came from."""
    table = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULT_THROUGHPUT.items()}
    source = dict.fromkeys(table, "default")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                summary = json.load(f)
        except (OSError, ValueError) as error:
            raise ThroughputError(f"estimate.gpu_summary: cannot read {path}: {error}") from None
        measured = summary.get("throughput", summary) if isinstance(summary, dict) else {}
        for key in SUMMARY_KEYS:
            if key not in measured or measured[key] is None:
                continue
            value = measured[key]
            if isinstance(DEFAULT_THROUGHPUT[key], dict):
                if not isinstance(value, dict):
                    raise ThroughputError(f"{path}: {key}: expected an object by bits, got {value!r}")
                table[key].update({str(bits): _positive(path, key, v) for bits, v in value.items()})
            elif isinstance(value, dict):  # one rate per task measured (the GPU check's): the median stands for all
                rates = [_positive(path, f"{key}.{name}", v) for name, v in value.items() if v is not None]
                if not rates:
                    continue
                table[key] = statistics.median(rates)
            else:
                table[key] = _positive(path, key, value)
            source[key] = str(path)
    table["source"] = source
    return table


def _positive(path, key, value) -> float:
    """A positive number (load_seconds: >= 0)."""
    low_ok = value == 0 and key == "load_seconds"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (value <= 0 and not low_ok):
        raise ThroughputError(f"{path}: {key}: expected a positive number, got {value!r}")
    return float(value)


def scale(table: dict, params_b: float) -> float:
    """How much slower than the table's model a model of params_b billion parameters is (at least 1/1000)."""
    return max(params_b, 1e-3) / table["model_params_b"]


def loglikelihood_seconds(table: dict, requests: float, prompt_tokens: float, params_b: float, bits: int) -> float:
    """Seconds of `requests` loglikelihood requests of about prompt_tokens tokens each."""
    per = (prompt_tokens / REFERENCE_PROMPT_TOKENS) / table["loglikelihood_examples_per_s"]
    return requests * per * scale(table, params_b) * table["eval_slowdown"][str(bits)]


def decode_step_seconds(table: dict, params_b: float, bits: int) -> float:
    """One decode step of a generation batch (batches up to a few dozen: bound by reading the weights, about as long
    at any batch size): generate_examples_per_s examples of REFERENCE_NEW_TOKENS steps per batch of
    REFERENCE_GEN_BATCH."""
    step = REFERENCE_GEN_BATCH / (table["generate_examples_per_s"] * REFERENCE_NEW_TOKENS)
    return step * scale(table, params_b) * table["eval_slowdown"][str(bits)]


def generate_seconds(
    table: dict, examples: float, prompt_tokens: float, steps_per_batch: float, batch: int, params_b: float, bits: int
) -> float:
    """Seconds of `examples` generations: each prompt read as one loglikelihood request, then the decode steps of
    their batches (a batch runs until its last member stops: steps_per_batch, maple.cost.requests)."""
    decode = steps_per_batch * decode_step_seconds(table, params_b, bits) / max(batch, 1)
    prefill = loglikelihood_seconds(table, 1, prompt_tokens, params_b, bits)
    return examples * (decode + prefill)


def finetune_seconds(table: dict, tokens: float, params_b: float, bits: int) -> float:
    return tokens / table["finetune_tokens_per_s"][str(bits)] * scale(table, params_b)
