"""engine vllm: every variant of one base model and evaluation bit-width scored on one vLLM engine, in one job (the
rules evaluate_<task>[_s<k>]_q<bits>; maple.config.lora_groups). The engine is built once with LoRA enabled; each
adapter is then a LoRA request of its own (maple.evaluate.vllm_engine.use_adapter: lm-eval's VLLM model passes
lm.lora_request with every request), the base model none. Each variant is evaluated as its own job would be, one
simple_evaluate call per language or range, into the same score and samples files with the same provenance, so that
aggregation and figures do not tell the two apart: model_load_seconds is the engine's one load, eval_seconds the
variant's own evaluation. docs/cost-and-sharding.md, "vLLM"."""

from __future__ import annotations

import time

from maple.evaluate.job import score_units
from maple.evaluate.request_cache import remove_work_dirs
from maple.evaluate.units import job_units
from maple.evaluate.vllm_engine import task_vllm_lm, use_adapter
from maple.runtime.tasks import Task


def evaluate_group(
    *,
    model_alias: str,
    base_source: str,
    bits: int,
    task: Task,
    members: list[dict],
    prompt_format: str = "plain",
    revision: str = "main",
    trust_remote_code: bool = False,
    batch_size: int | str = "auto",
    seed: int = 1234,
    engine: dict | None = None,
) -> dict:
    """Score each member, in order, on one engine: members are {variant, adapter_dir (None: the base), score_files
    {lang: path}, samples_files ({lang: path} or None), ranges (as evaluate_variant's)}. engine: further keywords
    for vLLM's LLM. Returns {variant: {language or range: value}}."""
    started = time.time()
    lm = task_vllm_lm(
        task,
        base_source,
        revision,
        None,
        bits,
        batch_size,
        seed,
        trust_remote_code,
        enable_lora=any(m["adapter_dir"] for m in members),
        **(engine or {}),
    )
    load_seconds = time.time() - started
    summary, units = {}, []
    for lora_id, member in enumerate(members, start=1):
        use_adapter(lm, member["variant"], lora_id, member["adapter_dir"])
        member_units = job_units(member["score_files"], member.get("samples_files"), member.get("ranges"))
        units += member_units
        summary[member["variant"]] = score_units(
            lm,
            lm.tokenizer,
            task,
            member_units,
            prompt_format,
            seed,
            # a killed group job loses every member's score files (Snakemake removes a failed job's outputs): the
            # work directories go only once all are in place
            keep_work=True,
            load_seconds=load_seconds,
            model_alias=model_alias,
            variant=member["variant"],
            base_source=base_source,
            revision=revision,
            model_config=None,
            adapter_dir=member["adapter_dir"],
            merged=False,
            bits=bits,
            batch_size=batch_size,
        )
    remove_work_dirs(unit.score_file for unit in units)
    return summary


def group_members(variants, adapters: dict, languages, ranges, outputs) -> list[dict]:
    """The members of a group job from its rule (evaluate.smk): variants in order, adapters {variant: its adapter
    directory} (the base has none), the outputs (scores, samples, range_scores, range_samples: each every variant's
    files in turn, as common.smk's get_group_outputs lists them)."""
    n = len(variants)

    def share(key, i):
        files = list(outputs.get(key) or [])
        if len(files) % n:
            raise ValueError(f"group job: {len(files)} {key} files for {n} variants")
        step = len(files) // n
        return files[i * step : (i + 1) * step]

    members = []
    for i, variant in enumerate(variants):
        samples = share("samples", i)
        range_samples = share("range_samples", i) or [None] * len(ranges or [])
        members.append(
            {
                "variant": variant,
                "adapter_dir": adapters.get(variant),
                "score_files": dict(zip(languages, share("scores", i))),
                "samples_files": dict(zip(languages, samples)) if samples else None,
                "ranges": [
                    {**r, "score": score, "samples": s}
                    for r, score, s in zip(ranges or [], share("range_scores", i), range_samples)
                ],
            }
        )
    return members
