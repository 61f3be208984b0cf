# Finetune: one LoRA (bits 16) or QLoRA (bits 4 / 8) adapter per model x data x rank x bits.
# A failed job is retried (finetune.oom_retries) with half the micro-batch and twice the accumulation, so the
# effective batch stays, and a longer runtime (the first's times the attempt: a job killed at its SLURM time limit);
# the retry, like a rerun after a kill, resumes from the last checkpoint in <adapter>.work/.


rule finetune:
    input:
        train=f"{R}/data/{{data}}/train.jsonl",
        base=get_base_model_input,
        preflight=after_preflight,
    output:
        adapter=directory(f"{R}/adapters/{{model}}/{{data}}/r{{rank}}-q{{bits}}"),
    log:
        "logs/finetune/{model}/{data}/r{rank}-q{bits}.log",
    benchmark:
        FINETUNE_BENCHMARK
    retries: STUDY.finetune_params["oom_retries"]
    conda:
        CONDA_ENV
    threads: GPU_JOB_THREADS
    resources:
        **get_finetune_resources(),
        micro_batch_size=get_finetune_micro_batch,
        attempt=lambda wc, attempt: attempt,
    params:
        base_source=get_model_param("source"),
        train=get_finetune_params,
        code_version=STAGE_VERSIONS["finetune"],
    script:
        "../scripts/finetune.py"
