"""Snakemake rules evaluate_<task>[_s<k>]_q<bits> (engine vllm): every variant of one model and evaluation
bit-width on one shard of a task, on one vLLM engine, each adapter a LoRA request of its own."""

import json

from maple.evaluate.lora_group import evaluate_group, group_members
from maple.runtime.jobs import logged_to, use_threads
from maple.runtime.tasks import Task


def run_from_snakemake(smk) -> dict:
    p = smk.params
    adapters = dict(zip(p.adapter_variants, smk.input.get("adapters", [])))
    return evaluate_group(
        model_alias=smk.wildcards.model,
        base_source=p.base_source,
        bits=p.bits,
        task=Task(**p.task),
        members=group_members(p.variants, adapters, p.languages, p.get("ranges") or [], smk.output),
        prompt_format=p.prompt_format,
        revision=p.revision,
        trust_remote_code=p.trust_remote_code,
        batch_size=p.batch_size,
        seed=p.seed,
    )


if __name__ == "__main__":
    with logged_to(
        snakemake.log[0],  # noqa: F821
        gpus=int(snakemake.resources.get("gpu", 0)),  # noqa: F821
        hub_offline=bool(snakemake.resources.get("hub_offline", 0)),  # noqa: F821
    ):
        use_threads(snakemake.threads)  # noqa: F821
        print(json.dumps(run_from_snakemake(snakemake)))  # noqa: F821
