"""The throughput table of the cost estimate, in the units `bench/gpu_check.sh` measures: documented defaults for a
7B model on one H100-80GB with the Hugging Face backend, replaced key by key by a GPU check's `summary.json`
(`read_gpu_summary`). docs/cost-and-sharding.md gives the sources and the reasoning.

Every rate is measured on two models: the large one (`model_params_b`, the study's size) and the small one
(`small_model_params_b`, the demo's tiny model, where a call costs its fixed overhead: Python, kernel launches).
A model of another size is placed on the line through the two (seconds per unit linear in the parameter count).
A decode step reads the weights and the KV cache of its batch: its time is the small model's step plus the bytes
read over the bandwidth the large model's step showed."""

from __future__ import annotations

import json
import os

BITS = ("4", "8", "16")
# Each default, with where it comes from (docs/cost-and-sharding.md, "The throughput table").
DEFAULT_THROUGHPUT = {
    # the large model the figures are measured on (Llama-2-7B: 6.7 B), and its KV cache per token (bf16: 2 x 32
    # layers x 32 KV heads x 128 x 2 bytes)
    "model_params_b": 7.0,
    "kv_bytes_per_token": 524288,
    # the small model the per-call overheads are measured on (the demo's tiny Llama, 0.6 M parameters)
    "small_model_params_b": 0.0006,
    # finetune training tokens (real, not padding) per second, by bits: 16-bit LoRA at ~35 % of 989 bf16 TFLOP/s
    # with 6 x 7e9 FLOP per token; NF4 ~1.6x and LLM.int8 ~3x slower (bitsandbytes' tables)
    "finetune_tokens_per_s": {"4": 5500.0, "8": 3000.0, "16": 9000.0},
    "small_finetune_tokens_per_s": {"4": 150000.0, "8": 150000.0, "16": 200000.0},
    # prefill (a forward over a batch of prompts: loglikelihood requests, generation prompts), tokens per second at
    # 16 bits: 2 x 7e9 FLOP per token at ~25 % of peak after lm-eval's padding
    "prefill_tokens_per_s": 17920.0,
    "small_prefill_tokens_per_s": 1000000.0,
    # a quantised base (bitsandbytes, adapters unmerged) vs bf16: prefill dequantises once per large batch, decode
    # once per step
    "prefill_slowdown": {"4": 1.3, "8": 1.6, "16": 1.0},
    "decode_slowdown": {"4": 2.5, "8": 3.0, "16": 1.0},
    # one decode step of a batch of decode_batch sequences at decode_context tokens, 16 bits: 14 GB of weights and
    # 8.7 GB of KV cache at ~75 % of 3.35 TB/s, plus the small model's step (Python, kernel launches)
    "decode_step_s": 0.030,
    "small_decode_step_s": 0.008,
    "decode_batch": 32,
    "decode_context": 528,
    # a job's fixed costs: process start and imports (torch, transformers, peft); the model's load from the shared
    # cache (large, small); an evaluation job's lm-eval import and task index, once, and its task building (dataset,
    # requests), per language
    "startup_s": 40.0,
    "load_s": 90.0,
    "small_load_s": 2.0,
    "task_index_s": 15.0,
    "task_setup_s": 5.0,
}
SUMMARY_KEYS = tuple(DEFAULT_THROUGHPUT)
FIXED_SECONDS = ("startup_s", "load_s", "small_load_s", "task_index_s", "task_setup_s")  # may be 0


class ThroughputError(ValueError):
    """summary.json is missing or not JSON."""


def _number(value, low_ok: bool) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value > 0 or (low_ok and value == 0) else None


def read_gpu_summary(path: str | os.PathLike | None) -> dict:
    """The throughput table: the defaults, with each key of SUMMARY_KEYS that the summary.json of
    `bench/gpu_check.sh` gives (under "throughput", or at its top level) in their place; a by-bits key bit by bit.
    A key missing, null (a failed step) or not a positive number keeps its default and is named in the table's
    "warning" (one line); only a file that cannot be read or parsed stops the plan. Under "source": where each
    figure came from."""
    table = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULT_THROUGHPUT.items()}
    source = dict.fromkeys(table, "default")
    table["warning"] = ""
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                summary = json.load(f)
        except (OSError, ValueError) as error:
            raise ThroughputError(f"estimate.gpu_summary: cannot read {path}: {error}") from None
        measured = summary.get("throughput", summary) if isinstance(summary, dict) else {}
        measured = measured if isinstance(measured, dict) else {}
        defaulted = []
        for key, default in DEFAULT_THROUGHPUT.items():
            value = measured.get(key)
            if isinstance(default, dict):
                value = value if isinstance(value, dict) else {}
                given = {b: _number(value.get(b, value.get(int(b))), False) for b in BITS}
                defaulted += [f"{key}.{b}" for b, v in given.items() if v is None]
                table[key].update({b: v for b, v in given.items() if v is not None})
                if any(v is not None for v in given.values()):
                    source[key] = str(path)
            elif (number := _number(value, key in FIXED_SECONDS)) is None:
                defaulted.append(key)
            else:
                table[key] = int(number) if isinstance(default, int) else number
                source[key] = str(path)
        if defaulted:
            table["warning"] = (
                f"estimate.gpu_summary {path}: no measured value (missing, null or not a positive number) for "
                f"{', '.join(defaulted)}: planned with the defaults for those"
            )
    table["source"] = source
    return table


def _on_line(table: dict, key: str, params_b: float, per_unit) -> float:
    """Seconds per unit of a model of params_b billion parameters, on the line through the small and the large
    model's figures (per_unit: a figure -> seconds per unit), at least the small model's."""
    small, large = per_unit(table[f"small_{key}"]), per_unit(table[key])
    p0, p1 = table["small_model_params_b"], table["model_params_b"]
    slope = (large - small) / (p1 - p0) if p1 > p0 else 0.0
    return max(small + slope * (params_b - p0), small)


def prefill_seconds(table: dict, tokens: float, params_b: float, bits: int) -> float:
    """Seconds of forwards over `tokens` tokens (loglikelihood requests, generation prompts)."""
    per_token = _on_line(table, "prefill_tokens_per_s", params_b, lambda rate: 1 / rate)
    return tokens * per_token * table["prefill_slowdown"][str(bits)]


def decode_step_seconds(
    table: dict, params_b: float, kv_bytes_per_token: float, batch: int, context: float, bits: int
) -> float:
    """One decode step of `batch` sequences at `context` tokens: the small model's step plus the weights (2 bytes a
    parameter) and the batch's KV cache read at the bandwidth the large model's step showed."""
    small = table["small_decode_step_s"]
    measured_bytes = 2e9 * table["model_params_b"] + (
        table["kv_bytes_per_token"] * table["decode_batch"] * table["decode_context"]
    )
    bandwidth = measured_bytes / max(table["decode_step_s"] - small, 1e-9)
    read = 2e9 * params_b + kv_bytes_per_token * batch * context
    return (small + read / bandwidth) * table["decode_slowdown"][str(bits)]


def finetune_seconds(table: dict, tokens: float, params_b: float, bits: int) -> float:
    """Seconds of a finetune over `tokens` training tokens at `bits` (the rates by bit-width)."""
    return tokens * _on_line(table, "finetune_tokens_per_s", params_b, lambda rates: 1 / rates[str(bits)])


def load_seconds(table: dict, params_b: float) -> float:
    """A job's fixed cost before its first example: process start and imports, then the model's load."""
    return table["startup_s"] + _on_line(table, "load_s", params_b, lambda s: s)
