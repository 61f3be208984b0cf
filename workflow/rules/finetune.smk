# Finetune: one LoRA (bits 16) or QLoRA (bits 4 / 8) adapter per model x data x rank x bits.
# A failed job is retried (finetune.oom_retries) with half the micro-batch and twice the accumulation, so the
# effective batch stays; the retry, like a rerun after a kill, resumes from the last checkpoint in <adapter>.work/.
from maple.training import micro_batch_for_attempt

# Not passed to the script as params: the rule's own settings, and the micro-batch, which depends on the attempt
# (resources below; params would make a retried adapter look stale to the params rerun trigger).
FINETUNE_RULE_KEYS = ("gpu", "resources", "target_modules", "oom_retries")


def finetune_train_params(wildcards):
    model = STUDY.models[wildcards.model]
    return {
        **{k: v for k, v in STUDY.finetune_params.items() if k not in FINETUNE_RULE_KEYS},
        "target_modules": list(model.target_modules),
        "prompt_format": model.prompt_format,
        "revision": model.revision,
        "trust_remote_code": model.trust_remote_code,
        "seed": STUDY.seed,
    }


def finetune_micro_batch(wildcards, attempt):
    """Attempt 1: finetune.micro_batch_size; each retry halves it (see maple.training.micro_batch_for_attempt)."""
    ft = STUDY.finetune_params
    return micro_batch_for_attempt(ft.get("effective_batch_size", 16), ft.get("micro_batch_size", 16), attempt)


rule finetune:
    input:
        train=f"{R}/data/{{data}}/train.jsonl",
        base=get_base_model_input,
    output:
        adapter=directory(f"{R}/adapters/{{model}}/{{data}}/r{{rank}}-q{{bits}}"),
    log:
        "logs/finetune/{model}/{data}/r{rank}-q{bits}.log",
    benchmark:
        "benchmarks/finetune/{model}/{data}/r{rank}-q{bits}.tsv"
    retries: STUDY.finetune_params.get("oom_retries", 2)
    threads: GPU_JOB_THREADS
    resources:
        **job_resources(STUDY.finetune_params),
        micro_batch_size=finetune_micro_batch,
        attempt=lambda wc, attempt: attempt,
    params:
        base_source=lambda wc: STUDY.models[wc.model].source,
        train=finetune_train_params,
    script:
        "../scripts/finetune.py"
