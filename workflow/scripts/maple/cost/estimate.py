"""The cost estimate of a study before any GPU job: per job its examples, tokens and GPU-seconds, from the config,
the shipped split sizes (maple.cost.requests) and the throughput table (maple.cost.throughput). The same
figures size the evaluation shards (maple.cost.shards) and each job's SLURM runtime. No model is loaded and nothing
is read from the network. docs/cost-and-sharding.md explains the model of cost and its assumptions."""

from __future__ import annotations

from maple.config.lora_groups import eval_bits, lora_groups
from maple.cost.data_jobs import synth_rows
from maple.cost.model_shape import ModelShape, model_shape
from maple.cost.requests import LangCost, language_costs, measured_tokens, steps_per_batch, token_factor
from maple.cost.rows import job_row, runtime_minutes
from maple.cost.shards import Shard, plan_task_shards
from maple.cost.throughput import decode_step_seconds, finetune_seconds, load_seconds, prefill_seconds


def generation_seconds(table: dict, shape: ModelShape, prompt: float, steps: float, batch: int, bits: int) -> float:
    """Seconds of one generation in a batch of `batch`: its prompt's forward, then its share of the batch's decode
    steps, each reading the weights and the batch's KV cache at the mean context (prompt + half the steps)."""
    step = decode_step_seconds(table, shape.params_b, shape.kv_bytes_per_token, batch, prompt + steps / 2, bits)
    return prefill_seconds(table, prompt, shape.params_b, bits) + steps * step / max(batch, 1)


def seconds_per_example(cost: LangCost, table: dict, shape: ModelShape, bits: int) -> float:
    """One example's seconds: its forwards as HFLM runs them (LangCost.forwards: one per example where the choices
    are one token each), or its generation."""
    if cost.choices:
        return prefill_seconds(table, cost.forwards * cost.prompt_tokens, shape.params_b, bits)
    return generation_seconds(table, shape, cost.prompt_tokens, steps_per_batch(cost), cost.gen_batch, bits)


def evaluation_fixed_seconds(table: dict, shape: ModelShape) -> float:
    """An evaluation job's cost before its first language: start-up, the model's load, lm-eval's task index."""
    return load_seconds(table, shape.params_b) + table["task_index_s"]


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
        seconds = {  # each language's task building spread over its examples
            c.lang: max(
                weight[bits]
                * (
                    seconds_per_example(cs[i], table, model_shape(study.models[m], study.tiny_model), bits)
                    + table["task_setup_s"] / max(c.examples, 1)
                )
                for cs, m, bits in per_variant
            )
            for i, c in enumerate(costs)
        }
        slowest = max((model_shape(study.models[m], study.tiny_model) for m in study.models), key=lambda s: s.params_b)
        plans[alias] = plan_task_shards(
            alias,
            {c.lang: c.examples for c in costs},
            seconds,
            max_seconds=ev["max_job_hours"] * 3600,
            overhead_seconds=evaluation_fixed_seconds(table, slowest),
            min_examples=ev["min_shard_examples"],
            max_languages=ev["languages_per_shard"],
            ranges_allowed=task.num_fewshot == 0,
        )
    return plans


def shard_cost(shard: Shard, costs: dict[str, LangCost], table: dict, shape: ModelShape, bits: int) -> tuple:
    """(examples, tokens, seconds) of one variant's evaluation of one shard: each part's task building and
    examples, the model load left out. tokens: those the model reads (forwards) and writes (answers)."""
    examples = tokens = seconds = 0.0
    for part in shard.parts:
        c = costs[part.lang]
        n = part_examples(part, c)
        examples += n
        tokens += n * (c.forwards * c.prompt_tokens + (steps_per_batch(c) if not c.choices else 0))
        seconds += table["task_setup_s"] + n * seconds_per_example(c, table, shape, bits)
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
        shape = model_shape(study.models[model], study.tiny_model)
        kind = "generate" if task_is_generation(costs) else "loglikelihood"
        for label, bits, members in jobs:
            for shard in shards[alias]:
                examples, tokens, seconds = shard_cost(shard, costs, table, shape, bits)
                rows.append(
                    job_row(
                        "evaluate",
                        model,
                        label,
                        alias,
                        shard.name,
                        [p.label for p in shard.parts],
                        members * examples,
                        members * tokens,
                        evaluation_fixed_seconds(table, shape) + members * seconds,
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
        params_b = model_shape(study.models[f.model], study.tiny_model).params_b
        seconds = load_seconds(table, params_b) + finetune_seconds(table, tokens, params_b, f.bits)
        rows.append(job_row("finetune", f.model, f.variant, "", "", [], processed, tokens, seconds, kind="train"))
    return rows


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
        shape = model_shape(model, study.tiny_model)
        notes.append(
            f"model {alias}: {shape.params_b:.3g} B parameters, {shape.layers} layers, {shape.kv_heads} KV heads of "
            f"{shape.head_dim} ({shape.source})"
        )
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
