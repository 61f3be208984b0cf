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
