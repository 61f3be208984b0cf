"""Snakemake rules evaluate_<task>[_s<k>]: one model variant on one shard of a task (its languages, or ranges of a
language's examples), one model load."""

import json

from maple.evaluate.job import evaluate_variant
from maple.runtime.jobs import logged_to, use_threads
from maple.runtime.tasks import Task


def run_from_snakemake(smk) -> dict:
    p = smk.params
    task = Task(**p.task)
    score_files = dict(zip(p.languages, smk.output.scores))
    samples_files = dict(zip(p.languages, smk.output.samples)) if smk.output.get("samples") else None
    return evaluate_variant(
        model_alias=smk.wildcards.model,
        variant=smk.wildcards.variant,
        base_source=p.base_source,
        adapter_dir=smk.input.get("adapter") or None,
        bits=p.bits,
        task=task,
        score_files=score_files,
        prompt_format=p.prompt_format,
        revision=p.revision,
        trust_remote_code=p.trust_remote_code,
        batch_size=p.batch_size,
        seed=p.seed,
        samples_files=samples_files,
        merge=p.merge,
        ranges=ranges_from_snakemake(smk),
    )


def ranges_from_snakemake(smk) -> list[dict]:
    """The shard's ranges of a split language ({lang, start, stop}) with their output files."""
    ranges = smk.params.get("ranges") or []
    if not ranges:
        return []
    samples = list(smk.output.get("range_samples", [])) or [None] * len(ranges)
    return [{**r, "score": score, "samples": s} for r, score, s in zip(ranges, smk.output.range_scores, samples)]


if __name__ == "__main__":
    with logged_to(
        snakemake.log[0],  # noqa: F821
        gpus=int(snakemake.resources.get("gpu", 0)),  # noqa: F821
        hub_offline=bool(snakemake.resources.get("hub_offline", 0)),  # noqa: F821
    ):
        use_threads(snakemake.threads)  # noqa: F821
        print(json.dumps(run_from_snakemake(snakemake)))  # noqa: F821
