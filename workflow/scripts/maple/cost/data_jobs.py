"""The data jobs a model runs (backends generate and translate) as the backends run them (maple.data.generate,
maple.data.translate): per language, rounds of `oversample` x the records still missing (at most `max_rounds`),
each candidate an instruction of up to `instruction_max_new_tokens` and a response of up to `max_new_tokens`
(translate: a translation by the translator, and with responses teacher a response by the teacher), in batches of
`batch_size` that decode until their last member stops. docs/cost-and-sharding.md, "Data jobs"."""

from __future__ import annotations

import math

from maple.cost.model_shape import ModelShape, hub_shape, teacher_shape
from maple.cost.rows import job_row
from maple.cost.shards import plan_task_shards
from maple.cost.throughput import decode_step_seconds, load_seconds, prefill_seconds

MODEL_WRITTEN = ("generate", "translate")
KEPT_SHARE = 0.8  # candidates that pass the filters (dedup, length, script): a stated share
INSTRUCTION_PROMPT_TOKENS = 150  # the instruction template with its example instructions
RESPONSE_PROMPT_TOKENS = 40  # the response template around an instruction
TRANSLATE_PROMPT_TOKENS = 120  # an English seed record


def candidates(n: int, oversample: float, max_rounds: int) -> int:
    """Candidates one language generates: rounds of ceil(missing x oversample), KEPT_SHARE of them kept."""
    total, kept = 0, 0.0
    for _ in range(max_rounds):
        missing = n - kept
        if missing <= 0:
            break
        k = math.ceil(missing * oversample)
        total += k
        kept += KEPT_SHARE * k
    return total


def batch_seconds(table: dict, shape: ModelShape, count: int, prompt: float, new: int, batch: int) -> float:
    """`count` generations in batches of `batch`, each batch decoding to `new` tokens (sampled answers, a batch runs
    until its last member stops: the cap), 16 bits."""
    batches = math.ceil(count / max(batch, 1))
    size = min(batch, max(count, 1))
    step = decode_step_seconds(table, shape.params_b, shape.kv_bytes_per_token, size, prompt + new / 2, 16)
    return prefill_seconds(table, count * prompt, shape.params_b, 16) + batches * new * step


def synth_language_seconds(study, name: str, spec: dict, table: dict) -> tuple[float, float, str, float]:
    """(generations, GPU-seconds, the teacher, the fixed seconds) of one language of a model-written dataset."""
    n = int(spec.get("n_per_language") or spec.get("n_train_per_language", 120) + spec.get("n_eval_per_language", 40))
    count = candidates(n, float(spec.get("oversample", 1.5)), int(spec.get("max_rounds", 4)))
    batch = int(spec.get("batch_size", 8))
    new = int(spec.get("max_new_tokens", 256))
    teacher = teacher_shape(study, name, spec)
    seconds = fixed = 0.0
    generations = 0
    if spec["backend"] == "generate":
        instruction = int(spec.get("instruction_max_new_tokens", 64))
        seconds += batch_seconds(table, teacher, count, INSTRUCTION_PROMPT_TOKENS, instruction, batch)
        seconds += batch_seconds(table, teacher, count, RESPONSE_PROMPT_TOKENS + instruction, new, batch)
        generations = 2 * count
        fixed = load_seconds(table, teacher.params_b)
    else:
        translator = hub_shape(str(spec.get("translator", "")))
        seconds += batch_seconds(table, translator, count, TRANSLATE_PROMPT_TOKENS, TRANSLATE_PROMPT_TOKENS, batch)
        generations = count
        fixed = load_seconds(table, translator.params_b)
        if spec.get("responses") == "teacher":
            seconds += batch_seconds(
                table, teacher, count, RESPONSE_PROMPT_TOKENS + TRANSLATE_PROMPT_TOKENS, new, batch
            )
            generations += count
            fixed += load_seconds(table, teacher.params_b) - table["startup_s"]
    who = str(study.data_teachers.get(name) or spec.get("teacher") or spec.get("translator") or "")
    return generations, seconds, who, fixed


def plan_synth_parts(study, table: dict) -> dict[str, list[tuple[str, ...]]]:
    """A model-written dataset's languages in parts (synth_part jobs) so that none is estimated over
    evaluation.max_job_hours; [] for a dataset that fits one synth_data job (or is not model-written)."""
    ev = study.evaluation_params
    parts = {}
    for name, spec in study.datasets.items():
        if spec["backend"] not in MODEL_WRITTEN:
            continue
        _, per_language, _, fixed = synth_language_seconds(study, name, spec, table)
        langs = list(spec["languages"])
        shards = plan_task_shards(
            name,
            dict.fromkeys(langs, 1),
            dict.fromkeys(langs, per_language),
            max_seconds=ev["max_job_hours"] * 3600,
            overhead_seconds=fixed,
            ranges_allowed=False,
        )
        parts[name] = [tuple(s.languages) for s in shards] if len(shards) > 1 else []
    return parts


def synth_rows(study, table: dict, parts: dict | None = None) -> list[dict]:
    """One row per data job a model runs: the dataset's synth_data job, or each of its synth_part jobs."""
    rows = []
    for name, spec in study.datasets.items():
        if spec["backend"] not in MODEL_WRITTEN:
            continue
        generations, seconds, teacher, fixed = synth_language_seconds(study, name, spec, table)
        groups = (parts or {}).get(name) or [tuple(spec["languages"])]
        new = int(spec.get("max_new_tokens", 256)) + int(spec.get("instruction_max_new_tokens", 0))
        for index, langs in enumerate(groups, start=1):
            job = f"{name}_p{index}" if len(groups) > 1 else name
            rows.append(
                job_row(
                    "synth_data",
                    teacher,
                    name,
                    "",
                    job,
                    list(langs),
                    generations * len(langs),
                    generations / 2 * len(langs) * (INSTRUCTION_PROMPT_TOKENS + new),
                    fixed + seconds * len(langs),
                    kind="generate",
                )
            )
    return rows
