"""The cost estimate of a study before any GPU job: per job its examples, tokens and GPU-seconds, from the config,
the shipped split sizes (maple.cost.requests) and the throughput table (maple.cost.throughput). The same
figures size the evaluation shards (maple.cost.shards) and each job's SLURM runtime. No model is loaded and nothing
is read from the network. docs/cost-and-sharding.md explains the model of cost and its assumptions."""

from __future__ import annotations

import math
import re

from maple.config.lora_groups import eval_bits, lora_groups
from maple.cost.shards import Shard, plan_task_shards
from maple.cost.requests import (
    LangCost,
    generation_batch,
    language_costs,
    measured_tokens,
    steps_per_batch,
    token_factor,
)
from maple.cost.throughput import finetune_seconds, generate_seconds, loglikelihood_seconds

RUNTIME_FLOOR_MINUTES = 10  # the shortest SLURM runtime a job asks for (start-up, queue-side accounting)
DEFAULT_PARAMS_B = 7.0  # a model whose size is found neither in its name nor in its config


def model_params_b(model, tiny_model: dict) -> float:
    """Billions of parameters: a built tiny model's from its config; else from a size in its hub id or GGUF file
    name (7b, 135M, 1.5B); else DEFAULT_PARAMS_B."""
    if model.build:
        h, i, n, v = (
            tiny_model.get(k, d)
            for k, d in (
                ("hidden_size", 128),
                ("intermediate_size", 256),
                ("num_hidden_layers", 2),
                ("vocab_size", 2000),
            )
        )
        return (n * (4 * h * h + 3 * h * i) + 2 * v * h) / 1e9
    name = f"{model.gguf or ''} {model.source}"
    match = re.search(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([bBmM])(?![a-zA-Z])", name)
    if match:
        value = float(match[1])
        return value if match[2] in "bB" else value / 1000
    return DEFAULT_PARAMS_B


def seconds_per_example(cost: LangCost, table: dict, params_b: float, bits: int) -> float:
    if cost.choices:
        return loglikelihood_seconds(table, cost.choices, cost.prompt_tokens, params_b, bits)
    return generate_seconds(table, 1, cost.prompt_tokens, steps_per_batch(cost), cost.gen_batch, params_b, bits)


def part_examples(part, cost: LangCost) -> int:
    return cost.examples if part.whole else part.stop - part.start


def plan_shards(study, table: dict, tokens: dict | None = None) -> dict[str, list[Shard]]:
    """Every task's shards, sized on the study's slowest job so that the same shards serve every variant (one rule
    per shard): the slowest (model, bit-width) of one variant; for a task with engine vllm, the slowest group of a
    model's variants at one bit-width, whose job scores each of them (maple.config.lora_groups). tokens: counted
    tokens (maple.cost.requests.read_token_counts), else {}."""
    ev = study.evaluation_params
    variants = {(m, eval_bits(study, study.finetune_of(m, v))) for m in study.models for v in study.variants(m)}
    group_sizes = {g.bits: len(g.variants) for g in lora_groups(study)}
    plans = {}
    for alias, task in study.tasks.items():
        weight = group_sizes if task.engine == "vllm" else dict.fromkeys(group_sizes, 1)
        per_variant = [
            (language_costs(task, study, measured_tokens(tokens or {}, m, alias)), m, bits) for m, bits in variants
        ]
        costs = per_variant[0][0]
        seconds = {
            c.lang: max(
                weight[bits]
                * seconds_per_example(cs[i], table, model_params_b(study.models[m], study.tiny_model), bits)
                for cs, m, bits in per_variant
            )
            for i, c in enumerate(costs)
        }
        plans[alias] = plan_task_shards(
            alias,
            {c.lang: c.examples for c in costs},
            seconds,
            max_seconds=ev["max_job_hours"] * 3600,
            overhead_seconds=table["load_seconds"],
            min_examples=ev["min_shard_examples"],
            max_languages=ev["languages_per_shard"],
            ranges_allowed=task.num_fewshot == 0,
        )
    return plans


def shard_cost(shard: Shard, costs: dict[str, LangCost], table: dict, params_b: float, bits: int) -> tuple:
    """(examples, tokens, seconds) of one variant's evaluation of one shard, the model load left out."""
    examples = tokens = seconds = 0.0
    for part in shard.parts:
        c = costs[part.lang]
        n = part_examples(part, c)
        examples += n
        tokens += n * (max(c.choices, 1) * c.prompt_tokens + c.new_tokens)
        seconds += n * seconds_per_example(c, table, params_b, bits)
    return examples, tokens, seconds


def evaluation_rows(study, shards: dict[str, list[Shard]], table: dict, counted: dict | None = None) -> list[dict]:
    """One row per evaluation job: model x variant x shard; for a task with engine vllm, model x group x shard, its
    cost the sum of its variants' with the model loaded once, its `variant` the group's name. counted: tokens
    counted (read_token_counts), else {}."""
    rows = []
    groups = lora_groups(study)
    for model, variant, alias in study.evaluations():
        task = study.tasks[alias]
        if task.engine != "vllm":
            jobs = [(variant, eval_bits(study, study.finetune_of(model, variant)), 1)]
        else:  # the group's rows, once: at its first variant
            jobs = [(g.name, g.bits, len(g.variants)) for g in groups if g.variants[0] == variant]
        costs = {c.lang: c for c in language_costs(task, study, measured_tokens(counted or {}, model, alias))}
        params_b = model_params_b(study.models[model], study.tiny_model)
        kind = "generate" if task_is_generation(costs) else "loglikelihood"
        for label, bits, members in jobs:
            for shard in shards[alias]:
                examples, tokens, seconds = shard_cost(shard, costs, table, params_b, bits)
                rows.append(
                    _row(
                        "evaluate",
                        model,
                        label,
                        alias,
                        shard.name,
                        [p.label for p in shard.parts],
                        members * examples,
                        members * tokens,
                        table["load_seconds"] + members * seconds,
                        kind=kind,
                    )
                )
    return rows


def task_is_generation(costs: dict) -> bool:
    return any(c.choices == 0 for c in costs.values())


def train_tokens_per_record(spec: dict, lang: str, languages: dict, max_seq_length: int) -> float:
    """A stated average: template records are short sentences; model-written records (generate, translate) a
    prompt and about 80 % of max_new_tokens; hub records about half the sequence length."""
    backend = spec["backend"]
    if backend == "template":
        english = 40
    elif backend in ("generate", "translate"):
        english = 60 + 0.8 * spec.get("max_new_tokens", 256)
    else:
        english = 0.5 * max_seq_length
    return min(max_seq_length, english * token_factor(lang, languages))


def record_tokens(counted: dict | None, f, spec: dict, lang: str, languages: dict, max_seq_length: int) -> float:
    """A training record's tokens in one language: counted with the model's tokenizer, else the stated average."""
    measured = (counted or {}).get((f.model, f"train:{f.data}", lang))
    if measured:
        return min(measured[0], max_seq_length)
    return train_tokens_per_record(spec, lang, languages, max_seq_length)


def finetune_rows(study, table: dict, counted: dict | None = None) -> list[dict]:
    """One row per finetune. counted: tokens counted (read_token_counts): a training record's tokens per model and
    language under (model, "train:<dataset>", lang), in place of the stated average."""
    ft = study.finetune_params
    rows = []
    for f in study.finetunes:
        spec = study.datasets[f.data]
        n_lang = int(spec.get("n_train_per_language", 120))
        records = n_lang * len(spec["languages"])
        if spec.get("max_examples"):
            records = min(records, int(spec["max_examples"]))

        per_record = sum(
            record_tokens(counted, f, spec, lang, study.languages, ft["max_seq_length"]) for lang in spec["languages"]
        ) / len(spec["languages"])
        processed = records * ft["epochs"] if ft["max_steps"] == -1 else ft["max_steps"] * ft["effective_batch_size"]
        tokens = processed * per_record
        params_b = model_params_b(study.models[f.model], study.tiny_model)
        seconds = table["load_seconds"] + finetune_seconds(table, tokens, params_b, f.bits)
        rows.append(_row("finetune", f.model, f.variant, "", "", [], processed, tokens, seconds, kind="train"))
    return rows


MODEL_WRITTEN = ("generate", "translate")


def synth_language_seconds(spec: dict, table: dict) -> tuple[float, float, str]:
    """(generations per language, GPU-seconds per language, the teacher) of a dataset a model writes (generate:
    instruction and response steps; translate: translation and, with responses teacher, the responses), with the
    teacher's size taken from its name."""
    n = int(spec.get("n_per_language") or spec.get("n_train_per_language", 120) + spec.get("n_eval_per_language", 40))
    teacher = str(spec.get("teacher") or spec.get("translator") or "")
    match = re.search(r"(\d+(?:\.\d+)?)([bBmM])", teacher)
    params_b = (float(match[1]) / (1 if match[2] in "bB" else 1000)) if match else DEFAULT_PARAMS_B
    batch = generation_batch(spec.get("batch_size", 8))
    new = spec.get("max_new_tokens", 256)
    steps = 2 if spec["backend"] == "generate" or spec.get("responses") == "teacher" else 1
    examples = n * steps * 1.3  # candidates beyond n: filters and oversampling
    return examples, generate_seconds(table, examples, 200, new, batch, params_b, 16), teacher  # to the cap


def plan_synth_parts(study, table: dict) -> dict[str, list[tuple[str, ...]]]:
    """A model-written dataset's languages in parts (synth_part jobs) so that none is estimated over
    evaluation.max_job_hours; [] for a dataset that fits one synth_data job (or is not model-written)."""
    ev = study.evaluation_params
    parts = {}
    for name, spec in study.datasets.items():
        if spec["backend"] not in MODEL_WRITTEN:
            continue
        _, per_language, _ = synth_language_seconds(spec, table)
        langs = list(spec["languages"])
        shards = plan_task_shards(
            name,
            dict.fromkeys(langs, 1),
            dict.fromkeys(langs, per_language),
            max_seconds=ev["max_job_hours"] * 3600,
            overhead_seconds=table["load_seconds"],
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
        examples, seconds, teacher = synth_language_seconds(spec, table)
        groups = (parts or {}).get(name) or [tuple(spec["languages"])]
        for index, langs in enumerate(groups, start=1):
            job = f"{name}_p{index}" if len(groups) > 1 else name
            rows.append(
                _row(
                    "synth_data",
                    teacher,
                    name,
                    "",
                    job,
                    list(langs),
                    examples * len(langs),
                    examples * len(langs) * (200 + spec.get("max_new_tokens", 256)),
                    table["load_seconds"] + seconds * len(langs),
                    kind="generate",
                )
            )
    return rows


def _row(stage, model, variant, task, job, parts, examples, tokens, seconds, kind) -> dict:
    return {
        "stage": stage,
        "kind": kind,
        "model": model,
        "variant": variant,
        "task": task,
        "job": job,
        "parts": " ".join(parts),
        "examples": int(round(examples)),
        "tokens": int(round(tokens)),
        "gpu_seconds": round(seconds, 1),
    }


def runtime_minutes(seconds: float, margin: float) -> int:
    """A job's SLURM runtime: its estimate times the margin, in whole minutes, at least RUNTIME_FLOOR_MINUTES."""
    return max(math.ceil(seconds * margin / 60), RUNTIME_FLOOR_MINUTES)


def study_estimate(
    study, shards: dict[str, list[Shard]], table: dict, tokens: dict | None = None, parts: dict | None = None
) -> list[dict]:
    """Every GPU job of the study with its estimate and its SLURM runtime (minutes). parts: plan_synth_parts."""
    margin = study.evaluation_params["runtime_margin"]
    rows = (
        synth_rows(study, table, parts)
        + finetune_rows(study, table, tokens)
        + evaluation_rows(study, shards, table, tokens)
    )
    for row in rows:
        row["runtime_min"] = runtime_minutes(row["gpu_seconds"], margin)
    return rows


def estimate_notes(study, tokens: dict | None = None, token_file: str | None = None) -> list[str]:
    """What the estimate assumed that the reader should know: tasks missing from the split-size table, stated
    token averages, sizes taken from names."""
    notes = []
    for alias, task in study.tasks.items():
        unknown = [c.lang for c in language_costs(task, study) if not c.known]
        if unknown:
            notes.append(f"{alias}: no split size in workflow/resources/task_sizes.csv for {unknown}; assumed 1000")
    for alias, model in study.models.items():
        notes.append(f"model {alias}: {model_params_b(model, study.tiny_model):.3g} B parameters")
    stated = "stated English averages per task family times a per-script tokenizer factor (maple.cost.requests)"
    evaluated = sum(len(t.languages) for t in study.tasks.values()) * len(study.models)
    trained = {
        (f.model, f"train:{f.data}", lang) for f in study.finetunes for lang in study.datasets[f.data]["languages"]
    }
    tokens = tokens or {}
    counted_eval = sum(1 for key in tokens if key not in trained)
    counted_train = sum(1 for key in tokens if key in trained)
    if tokens:
        notes.append(
            f"tokens: counted with the model's tokenizer for {counted_eval} of {evaluated} (model, task, language) "
            f"({token_file}, rule count_tokens); the rest: {stated}"
        )
    else:
        notes.append(f"tokens: {stated}; count them with rule count_tokens and estimate.token_counts")
    notes.append(
        f"training records: counted for {counted_train} of {len(trained)} (model, dataset, language); "
        "the rest: stated token averages per data backend"
        if counted_train
        else "training records: stated token averages per data backend"
    )
    groups = ", ".join(f"{g.name} {len(g.variants)} variants" for g in lora_groups(study))
    for alias, task in study.tasks.items():
        if task.engine == "vllm":
            notes.append(
                f"{alias}: engine vllm, one job per model x evaluation bit-width x shard ({groups}), each variant a "
                "LoRA request on one engine: the sum of its variants' estimates less the extra model loads "
                "(the hf backend's throughput figures: vLLM's are not measured)"
            )
    return notes
