# Evaluate: one job per model x variant x task runs every language of the task with one model load and writes
# one score file per language. The base model (variant "base") is evaluated once per task and shared by all
# comparisons.
#
# What reruns (README, "How evaluation is organised"): a job of evaluate_<task> reruns when one of its score files
# is missing (a language added to the task: its new file), when its params change (the task's languages, lm-eval task
# names, num_fewshot, limit; the model's source, revision, prompt format; the bits it is evaluated at;
# batch_size; seed), when an input is newer (the adapter, the built model, a local task's held-out sets) or when
# workflow/scripts/evaluate.py is edited. Other tasks' jobs are untouched by any of these for this task.
# Edits to the maple package (e.g. maple/evaluation.py) trigger nothing: rerun with --forcerun evaluate_<task>.
# The samples files (evaluation.log_samples) are outputs but not targets of `all`: switching the option on writes
# them for evaluations that run from then on and reruns nothing by itself.

LOG_SAMPLES = bool(STUDY.evaluation_params.get("log_samples", False))


def samples_path(model, variant, task, lang):
    return f"{R}/samples/{model}/{variant}/{task}/{lang}.jsonl"


def get_adapter_input(wildcards):
    f = STUDY.finetune_of(wildcards.model, wildcards.variant)
    return {"adapter": adapter_path(f)} if f else {}


def get_evaluate_input(task_alias):
    task = STUDY.tasks[task_alias]

    def inputs(wildcards):
        files = {**get_adapter_input(wildcards)}
        base = get_base_model_input(wildcards)
        if base:
            files["base"] = base
        if task.source == "local":
            files["eval_dir"] = f"{R}/data/{task.dataset}/eval"
        return files

    return inputs


def get_evaluate_params(task_alias):
    task = STUDY.tasks[task_alias]
    subdir = "eval_mc" if task.kind == "multiple_choice" else "eval_gen"
    mirrors = task_dataset_mirrors(task)

    def task_params(wildcards):
        eval_files = (
            {lang: f"{R}/data/{task.dataset}/eval/{subdir}/{lang}.jsonl" for lang in task.languages}
            if task.source == "local"
            else {}
        )
        return {
            "alias": task.alias,
            "source": task.source,
            "kind": task.kind,
            "metric": task.metric,
            "lm_eval_names": dict(task.lm_eval_names),
            "eval_files": eval_files,
            "num_fewshot": task.num_fewshot,
            "limit": task.limit,
            # the dataset_mirrors this task reads; only when there are some, so that a config without them plans
            # the jobs it always did
            **({"mirrors": mirrors} if mirrors else {}),
        }

    return task_params


def variant_bits(wildcards):
    """An adapter is evaluated on the base quantised as it was trained (QLoRA), unless the config says not to."""
    f = STUDY.finetune_of(wildcards.model, wildcards.variant)
    if f is None or not STUDY.evaluation_params.get("quantize_base_like_training", True):
        return 16
    return f.bits


for _task in STUDY.tasks.values():

    rule:
        name:
            f"evaluate_{_task.alias}"
        input:
            unpack(get_evaluate_input(_task.alias)),
        output:
            scores=[score_path("{model}", "{variant}", _task.alias, lang) for lang in _task.languages],
            # lm-eval's full samples (prompts, responses) beside the scores, with evaluation.log_samples.
            samples=(
                [samples_path("{model}", "{variant}", _task.alias, lang) for lang in _task.languages]
                if LOG_SAMPLES
                else []
            ),
        log:
            f"logs/evaluate/{{model}}/{{variant}}/{_task.alias}.log",
        benchmark:
            f"benchmarks/evaluate/{{model}}/{{variant}}/{_task.alias}.tsv"
        threads: ALL_CORES
        resources:
            **job_resources(STUDY.evaluation_params),
        params:
            task=get_evaluate_params(_task.alias),
            languages=list(_task.languages),
            base_source=lambda wc: STUDY.models[wc.model].source,
            bits=variant_bits,
            prompt_format=lambda wc: STUDY.models[wc.model].prompt_format,
            revision=lambda wc: STUDY.models[wc.model].revision,
            trust_remote_code=lambda wc: STUDY.models[wc.model].trust_remote_code,
            batch_size=STUDY.evaluation_params.get("batch_size", "auto"),
            seed=STUDY.seed,
        script:
            "../scripts/evaluate.py"
