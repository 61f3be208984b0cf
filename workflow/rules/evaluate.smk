# Evaluate: one job per model x variant x task runs every language of the task with one model load and writes one
# score file per language. The base model (variant "base") is evaluated once per task and shared by all comparisons.
# What reruns: docs/evaluation.md, "What reruns".

for _task in STUDY.tasks.values():

    rule:
        name:
            f"evaluate_{_task.alias}"
        input:
            unpack(get_evaluate_input(_task.alias)),
            preflight=after_preflight,
        output:
            **get_evaluate_outputs(_task),
        log:
            f"logs/evaluate/{{model}}/{{variant}}/{_task.alias}.log",
        benchmark:
            EVALUATE_BENCHMARK.replace("{task}", _task.alias)
        conda:
            CONDA_ENV
        threads: GPU_JOB_THREADS
        resources:
            **job_resources(STUDY.evaluation_params),
        params:
            task=get_evaluate_task(_task.alias),
            languages=list(_task.languages),
            base_source=get_model_param("source"),
            bits=get_variant_bits,
            merge=get_merge_adapter,
            prompt_format=get_model_param("prompt_format"),
            revision=get_model_revision,  # a hub model: its pinned commit
            trust_remote_code=get_model_param("trust_remote_code"),
            batch_size=STUDY.evaluation_params["batch_size"],
            seed=STUDY.seed,
            code_version=STAGE_VERSIONS["evaluate"],
        script:
            "../scripts/evaluate.py"
