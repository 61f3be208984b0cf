# Finetune: one LoRA (bits 16) or QLoRA (bits 4 / 8) adapter per model x data x rank x bits.


def finetune_train_params(wildcards):
    model = STUDY.models[wildcards.model]
    return {
        **{k: v for k, v in STUDY.finetune_params.items() if k not in ("gpu", "target_modules")},
        "target_modules": list(model.target_modules),
        "prompt_format": model.prompt_format,
        "revision": model.revision,
        "trust_remote_code": model.trust_remote_code,
        "seed": STUDY.seed,
    }


rule finetune:
    input:
        train=f"{R}/data/{{data}}/train.jsonl",
        base=get_base_model_input,
    output:
        adapter=directory(f"{R}/adapters/{{model}}/{{data}}/r{{rank}}-q{{bits}}"),
    params:
        base_source=lambda wc: STUDY.models[wc.model].source,
        train=finetune_train_params,
    threads: workflow.cores
    resources:
        gpu=STUDY.finetune_params.get("gpu", 1),
    log:
        "logs/finetune/{model}/{data}/r{rank}-q{bits}.log",
    benchmark:
        "benchmarks/finetune/{model}/{data}/r{rank}-q{bits}.tsv"
    script:
        "../scripts/finetune.py"
