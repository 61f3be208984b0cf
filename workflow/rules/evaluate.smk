# Evaluate: one job per model x variant x task runs every language of the task with one model load and writes
# one score file per language. The base model (variant "base") is evaluated once and shared by all comparisons.
# Adding a language to a task reruns that task's jobs (its outputs change); other tasks are untouched.


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
        threads: workflow.cores
        resources:
            gpu=STUDY.evaluation_params.get("gpu", 1),
        log:
            f"logs/evaluate/{{model}}/{{variant}}/{_task.alias}.log",
        benchmark:
            f"benchmarks/evaluate/{{model}}/{{variant}}/{_task.alias}.tsv"
        script:
            "../scripts/evaluate.py"
