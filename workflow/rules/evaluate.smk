# Evaluate: one job per model x variant x shard of a task runs the shard's languages with one model load and writes
# one score file per language. A task that fits evaluation.max_job_hours is one shard (rule evaluate_<task>, every
# language); a larger one is split into shards (rules evaluate_<task>_s<k>), a language too large for one job into
# ranges of its examples whose score files merge_<task> joins (docs/cost-and-sharding.md). The base model (variant
# "base") is evaluated once per task and shared by all comparisons. What reruns: docs/evaluation.md, "What reruns".
# A task with engine vllm has one job per model x evaluation bit-width x shard instead (rules
# evaluate_<task>[_s<k>]_q<bits>; common.smk: LORA_GROUPS), each variant of that bit-width a LoRA request on one
# engine, writing the same score files as the per-variant jobs would. A job killed or timed out resumes from the
# requests it had answered (maple.evaluate.request_cache); each retry (evaluation.retries) has a longer runtime.

for _task in STUDY.tasks.values():
    for _shard in SHARDS[_task.alias] if _task.engine == "hf" else []:

        rule:
            name:
                f"evaluate_{_task.alias}" + (f"_s{_shard.index}" if _shard.index else "")
            input:
                unpack(get_evaluate_input(_task.alias)),
                preflight=after_preflight,
            output:
                **get_evaluate_outputs(_shard),
            log:
                f"logs/evaluate/{{model}}/{{variant}}/{_shard.name}.log",
            benchmark:
                EVALUATE_BENCHMARK.replace("{job}", _shard.name)
            retries: STUDY.evaluation_params["retries"]
            conda:
                evaluate_conda_env(_task.alias)
            threads: GPU_JOB_THREADS
            resources:
                **get_evaluate_resources(_shard),
            params:
                **({"ranges": get_evaluate_ranges(_shard)} if _shard.ranges else {}),
                task=get_evaluate_task(_task.alias),
                languages=list(_shard.languages),
                base_source=get_model_param("source"),
                bits=get_variant_bits,
                merge=get_merge_adapter,
                prompt_format=get_model_param("prompt_format"),
                revision=get_model_revision,  # a hub model: its pinned commit
                trust_remote_code=get_model_param("trust_remote_code"),
                batch_size=get_evaluate_batch_size(_task.alias),
                seed=STUDY.seed,
                code_version=STAGE_VERSIONS["evaluate"],
            script:
                "../scripts/evaluate.py"

    # engine vllm: one job per model x evaluation bit-width x shard, every variant of the group on one engine
    for _shard in SHARDS[_task.alias] if _task.engine == "vllm" else []:
        for _group in LORA_GROUPS:

            rule:
                name:
                    f"evaluate_{_task.alias}" + (f"_s{_shard.index}" if _shard.index else "") + f"_q{_group.bits}"
                input:
                    unpack(get_group_input(_task.alias, _group)),
                    preflight=after_preflight,
                output:
                    **get_group_outputs(_shard, _group),
                log:
                    f"logs/evaluate/{{model}}/{_group.name}/{_shard.name}.log",
                benchmark:
                    EVALUATE_BENCHMARK.replace("{variant}", _group.name).replace("{job}", _shard.name)
                retries: STUDY.evaluation_params["retries"]
                conda:
                    evaluate_conda_env(_task.alias)
                threads: GPU_JOB_THREADS
                resources:
                    **get_evaluate_resources(_shard, _group),
                params:
                    **({"ranges": get_evaluate_ranges(_shard)} if _shard.ranges else {}),
                    task=get_evaluate_task(_task.alias),
                    languages=list(_shard.languages),
                    variants=list(_group.variants),
                    adapter_variants=group_adapters(_group),
                    base_source=get_model_param("source"),
                    bits=_group.bits,
                    prompt_format=get_model_param("prompt_format"),
                    revision=get_model_revision,  # a hub model: its pinned commit
                    trust_remote_code=get_model_param("trust_remote_code"),
                    batch_size=get_evaluate_batch_size(_task.alias),
                    seed=STUDY.seed,
                    code_version=STAGE_VERSIONS["evaluate"],
                script:
                    "../scripts/evaluate_group.py"

    if split_languages(SHARDS[_task.alias]):

        rule:
            name:
                f"merge_{_task.alias}"
            input:
                unpack(get_merge_input(_task.alias)),
            output:
                score=score_path("{model}", "{variant}", _task.alias, "{lang}"),
                samples=samples_path("{model}", "{variant}", _task.alias, "{lang}") if LOG_SAMPLES else [],
            log:
                f"logs/merge/{{model}}/{{variant}}/{_task.alias}/{{lang}}.log",
            wildcard_constraints:
                lang=_alternatives(split_languages(SHARDS[_task.alias])),
            localrule: True
            conda:
                CONDA_ENV
            params:
                code_version=STAGE_VERSIONS["merge_scores"],
            script:
                "../scripts/merge_scores.py"
