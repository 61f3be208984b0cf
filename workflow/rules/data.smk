# Data: the local model sources (the tiny demo base model, GGUF checkpoints converted) and the instruction datasets
# with their held-out evaluation sets.


rule build_tiny_model:
    input:
        lexicon_files(template_languages()),
        preflight=after_preflight,
    output:
        directory(f"{R}/models/{{model}}"),
    log:
        "logs/build_tiny_model/{model}.log",
    benchmark:
        "benchmarks/build_tiny_model/{model}.tsv"
    wildcard_constraints:
        model=_alternatives(BUILT_MODELS),
    conda:
        CONDA_ENV
    threads: GPU_JOB_THREADS
    resources:
        gpu=STUDY.finetune_params["gpu"],  # it trains (pretrains) a model: on a GPU, a claimed one like a finetune
    params:
        lexicon_dir=get_lexicon_dir,
        languages=template_languages(),
        seed=STUDY.seed,
        spec=STUDY.tiny_model,
        code_version=STAGE_VERSIONS["build_tiny_model"],
    script:
        "../scripts/build_tiny_model.py"


rule convert_gguf:
    input:
        gguf=get_gguf_file,
        preflight=after_preflight,
    output:
        directory(f"{R}/models/{{model}}"),
    log:
        "logs/convert_gguf/{model}.log",
    benchmark:
        "benchmarks/convert_gguf/{model}.tsv"
    wildcard_constraints:
        model=_alternatives(GGUF_MODELS),
    conda:
        CONDA_ENV
    params:
        gguf=get_gguf_spec,
        code_version=STAGE_VERSIONS["convert_gguf"],
    script:
        "../scripts/convert_gguf.py"


rule synth_data:
    input:
        get_synth_data_input,
        preflight=after_preflight,
    output:
        train=f"{R}/data/{{data}}/train.jsonl",
        eval_dir=directory(f"{R}/data/{{data}}/eval"),
        stats=f"{R}/data/{{data}}/stats.json",
    log:
        "logs/synth_data/{data}.log",
    benchmark:
        "benchmarks/synth_data/{data}.tsv"
    wildcard_constraints:
        data=_alternatives(SYNTH_WHOLE),
    retries: config["data_retries"]
    conda:
        CONDA_ENV
    threads: get_synth_threads
    resources:
        **hub_offline_resource(),
        gpu=get_synth_gpus,
        runtime=get_synth_runtime,
    params:
        spec=get_synth_data_spec,  # hub repositories at their pinned commits
        languages=get_dataset_languages,
        seed=lambda wc: STUDY.data_seed(wc.data),  # datasets.<name>.seed, default: the global seed
        lexicon_dir=LEXICON_DIR,
        code_version=STAGE_VERSIONS["synth_data"],
    script:
        "../scripts/synth_data.py"


# A model-written dataset estimated over evaluation.max_job_hours is written in parts (docs/cost-and-sharding.md,
# "Data jobs"): each synth_part job writes the records of some of its languages (each language seeded on its own,
# so they are the records one job would write); synth_data_from_parts then holds them out and writes the dataset's
# files as synth_data does, without a model. A killed part reruns alone.
if SYNTH_PARTS_OF:

    rule synth_data_from_parts:
        input:
            parts=get_synth_data_parts,
        output:
            train=f"{R}/data/{{data}}/train.jsonl",
            eval_dir=directory(f"{R}/data/{{data}}/eval"),
            stats=f"{R}/data/{{data}}/stats.json",
        log:
            "logs/synth_data/{data}.log",
        wildcard_constraints:
            data=_alternatives(SYNTH_PARTS_OF),
        retries: config["data_retries"]
        conda:
            CONDA_ENV
        resources:
            runtime=lambda wc, attempt: runtime_for_attempt(LIGHT_DATA_RUNTIME_MINUTES, attempt),
        params:
            spec=get_synth_data_spec,
            languages=get_dataset_languages,
            seed=lambda wc: STUDY.data_seed(wc.data),
            code_version=STAGE_VERSIONS["synth_data"],
        script:
            "../scripts/synth_data_from_parts.py"

    rule synth_part:
        input:
            get_synth_part_input,
            preflight=after_preflight,
        output:
            f"{R}/data/{{data}}/parts/p{{part}}.jsonl",
        log:
            "logs/synth_part/{data}/p{part}.log",
        benchmark:
            "benchmarks/synth_part/{data}/p{part}.tsv"
        wildcard_constraints:
            data=_alternatives(SYNTH_PARTS_OF),
            part=r"\d+",
        retries: config["data_retries"]
        conda:
            CONDA_ENV
        threads: GPU_JOB_THREADS
        resources:
            **hub_offline_resource(),
            gpu=1,
            runtime=get_synth_runtime,
        params:
            spec=get_synth_data_spec,
            languages=get_dataset_languages,
            produce=get_synth_part_languages,
            seed=lambda wc: STUDY.data_seed(wc.data),
            code_version=STAGE_VERSIONS["synth_data"],
        script:
            "../scripts/synth_part.py"
