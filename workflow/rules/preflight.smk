# Preflight and prefetch (docs/gpus-slurm-offline.md, "Preflight", "Compute nodes without internet"): local rules, run
# where Snakemake runs (on a cluster, the submit host), before any job that loads a model or data. Both are checkpoints:
# those jobs wait for them through an input function (common.smk: after_preflight) and receive the pinned commits as
# params, so that pins.json is no file input of theirs and rerunning preflight with unchanged commits reruns nothing.


checkpoint preflight:
    output:
        pins=PINS_FILE,
        report=f"{R}/preflight/report.txt",
    log:
        "logs/preflight/preflight.log",
    localrule: True
    conda:
        CONDA_ENV
    params:
        plan=PREFLIGHT_PLAN,
        code_version=STAGE_VERSIONS["preflight"],
    script:
        "../scripts/preflight.py"


if PREFETCH:

    checkpoint prefetch:
        input:
            get_prefetch_input,
        output:
            PREFETCH_FILE,
        log:
            "logs/prefetch/prefetch.log",
        localrule: True
        conda:
            CONDA_ENV
        params:
            pins=get_hub_pins,
            code_version=STAGE_VERSIONS["prefetch"],
        script:
            "../scripts/prefetch.py"


# Tokens (docs/cost-and-sharding.md, "Tokens"): each model's tokenizer on a sample of each task's examples, where both
# are on this machine (a hub model and its datasets after prefetch, a model built here); the estimate reads the table
# once estimate.token_counts names it. No network: snakemake count_tokens --cores 1 (-f to count again).
rule count_tokens:
    input:
        get_token_count_input,
    output:
        f"{R}/plan/tokens.csv",
    log:
        "logs/estimate/count_tokens.log",
    localrule: True
    conda:
        CONDA_ENV
    params:
        models=get_token_count_models,
        tasks=get_token_count_tasks,
        training=get_token_count_training,
    script:
        "../scripts/count_tokens.py"


# The cost estimate (docs/cost-and-sharding.md): every GPU job's examples, tokens, GPU-seconds and SLURM runtime,
# worked out at planning (common.smk: ESTIMATE) from the config, the shipped split sizes and the throughput table;
# this rule writes them down. No model, no network: snakemake estimate --cores 1
rule estimate:
    output:
        csv=f"{R}/plan/estimate.csv",
        md=f"{R}/plan/estimate.md",
    log:
        "logs/estimate/estimate.log",
    localrule: True
    conda:
        CONDA_ENV
    params:
        rows=ESTIMATE,
        throughput=THROUGHPUT,
        evaluation=ESTIMATE_SETTINGS,
        notes=ESTIMATE_NOTES,
    script:
        "../scripts/estimate.py"
