# Config validation, the study grid resolved once into plain records, wildcard constraints, and every input, param
# and target function of the rule modules (they hold rules only).
import os
import re
import sys
from dataclasses import replace

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

# The repository's workflow/ (this file's folder's parent), wherever the workflow runs from (docs/module.md): from
# the repository, or as a module of another workflow, whose own Snakefile is workflow.basedir.
WORKFLOW_DIR = os.path.dirname(str(workflow.current_basedir))
sys.path.insert(0, os.path.join(WORKFLOW_DIR, "scripts"))
from maple.train.params import micro_batch_for_attempt, rule_params  # noqa: E402
from maple.runtime.devices import DeviceError, check_gpu_request, device_pool, threads_per_gpu_job  # noqa: E402
from maple.runtime.jobs import runtime_for_attempt  # noqa: E402
from maple.report.figures import figures_for_study  # noqa: E402
from maple.hub.pins import (
    model_repo,
    pinned_data_spec,
    pinned_revision,
    read_pins,
    task_dataset_revisions,
)  # noqa: E402
from maple.hub.preflight import preflight_plan, reads_hub  # noqa: E402
from maple.hub.api import hub_settings_env  # noqa: E402
from maple.config.stage_versions import STAGE_VERSIONS  # noqa: E402
from maple.config.study import BASE_VARIANT, Finetune  # noqa: E402
from maple.hub.task_sources import task_mirrors  # noqa: E402
from maple.config.validation import ConfigError, checked_study, lm_eval_tasks_dir  # noqa: E402
from maple.cost.estimate import estimate_notes  # noqa: E402
from maple.cost.table import STAGE_KEYS, runtime_warnings, total_line  # noqa: E402
from maple.config.lora_groups import lora_groups  # noqa: E402
from maple.cost.shards import split_languages  # noqa: E402
from maple.cost.plan import study_plan  # noqa: E402
from maple.cost.requests import TokenCountsError  # noqa: E402
from maple.cost.throughput import ThroughputError  # noqa: E402
from maple.evaluate.vllm_engine import max_lora_rank  # noqa: E402
from maple.track.settings import tracking_environment  # noqa: E402

# Validation, before any job starts (docs/reruns-and-faults.md, "Bad configs"; maple.config.validation.checked_study):
# each config file strictly, the config against the schema (one line per error), the schema's defaults, the cross-key
# rules and the lm-eval task names.
if str(config.get("allow_missing")).lower() in ("true", "false"):  # --config allow_missing=true arrives as a string
    config["allow_missing"] = str(config["allow_missing"]).lower() == "true"
try:
    _defaulted, STUDY = checked_study(config, workflow.configfiles, config_dir=os.getcwd())
except ConfigError as error:
    raise WorkflowError(f"Invalid config: {error}")
config.update(_defaulted)

R = STUDY.results_dir
# Tracking (docs/tracking.md): the jobs read it from the environment (maple.track.settings), not from params, so that
# switching it reruns nothing; every job parses this file too, on SLURM as well.
os.environ.update(tracking_environment(config["tracking"], workflow.configfiles, os.environ))

# The cost estimate and the evaluation shards (docs/cost-and-sharding.md): from the config, the shipped split sizes
# and the throughput table (estimate.gpu_summary: what bench/gpu_check.sh measured), the tokens counted with each
# model's tokenizer where estimate.token_counts names them (rule count_tokens), before allow_missing cuts the
# study down, so that the shards are the full study's. Each evaluation job (model x variant x shard) has its
# estimate, which is its SLURM runtime (times evaluation.runtime_margin) unless evaluation.resources gives one.
try:
    PLAN = study_plan(STUDY, config["estimate"])
except (ThroughputError, TokenCountsError) as error:
    raise WorkflowError(f"Invalid config: {error}")
THROUGHPUT, TOKENS, SHARDS, ESTIMATE = PLAN.throughput, PLAN.tokens, PLAN.shards, PLAN.estimate
# a model-written dataset too large for one job: its languages in parts (rule synth_part)
SYNTH_PARTS = PLAN.synth_parts
SYNTH_PARTS_OF = [name for name, parts in SYNTH_PARTS.items() if parts]
SYNTH_WHOLE = [name for name in STUDY.datasets if name not in SYNTH_PARTS_OF]  # rule synth_data's datasets
# engine vllm: one job per model x evaluation bit-width x shard scores each variant of the group (the same groups for
# every model), on an engine whose LoRA rank bound is the whole grid's (before allow_missing cuts it)
LORA_GROUPS = lora_groups(STUDY)
VLLM_TASKS = [alias for alias, task in STUDY.tasks.items() if task.engine == "vllm"]
try:
    VLLM_LORA_RANK = max_lora_rank([f.rank for f in STUDY.finetunes]) if VLLM_TASKS else None
except ValueError as error:
    raise WorkflowError(f"Invalid config: {error}")
EVALUATE_RUNTIME = {
    (r["model"], r["variant"], r["job"]): r["runtime_min"] for r in ESTIMATE if r["stage"] == "evaluate"
}
SYNTH_RUNTIME = {r["job"]: r["runtime_min"] for r in ESTIMATE if r["stage"] == "synth_data"}
FINETUNE_RUNTIME = {(r["model"], r["variant"]): r["runtime_min"] for r in ESTIMATE if r["stage"] == "finetune"}
ESTIMATE_SETTINGS = {k: STUDY.evaluation_params[k] for k in ("max_job_hours", "runtime_margin")}
RUNTIME_WARNINGS = runtime_warnings(
    ESTIMATE, {stage: getattr(STUDY, f"{key}_params")["resources"].get("runtime") for stage, key in STAGE_KEYS.items()}
)
ESTIMATE_NOTES = estimate_notes(STUDY, TOKENS, config["estimate"]["token_counts"]) + RUNTIME_WARNINGS
if workflow.is_main_process:
    logger.info(total_line(ESTIMATE, ESTIMATE_SETTINGS["max_job_hours"]))
    for line in filter(None, [THROUGHPUT["warning"], *RUNTIME_WARNINGS]):
        logger.warning(f"Warning: {line}")
LEXICON_DIR = os.path.join(WORKFLOW_DIR, "resources", "lexicons")
# Every rule runs in this software environment under `--software-deployment-method conda`; its pins are
# requirements.lock's (tests/test_conda_env.py). Relative to workflow/rules/, where the rules are.
CONDA_ENV = "../../envs/maple.yaml"
# The evaluation jobs of a task with engine vllm run in vLLM's own environment (it pins its own torch).
CONDA_ENV_VLLM = "../../envs/vllm.yaml"


def evaluate_conda_env(task_alias):
    return CONDA_ENV_VLLM if STUDY.tasks[task_alias].engine == "vllm" else CONDA_ENV


# Jobs that use every core they are given ask for more than any machine has: Snakemake caps a job's threads at
# --cores (for SLURM jobs too, where --cores is the CPUs per job). Unlike `workflow.cores`, this needs no --cores
# to parse, so `snakemake --report` and `--lint` work without one.
ALL_CORES = 4096

# GPUs (docs/gpus-slurm-offline.md, "GPUs"): on this machine, --resources gpu=N runs N GPU jobs at once, each on a
# device of its own (maple.runtime.devices claims it when the job starts), so a GPU job gets its share of the cores
# (config gpu_job_threads, "auto": --cores / N); asking for more GPUs than the machine has stops the run here. On SLURM
# each job is its own allocation: every core of it (--cores), and SLURM picks the GPU. The SLURM profile makes `gpu` a
# per-job resource (set-resource-scopes gpu=local): that marks a cluster run in a dry run too (-n swaps in a local
# executor).
GPU_SLOTS = workflow.global_resources.get("gpu").value  # --resources gpu=N; None where not given
ON_THIS_MACHINE = workflow.local_exec and not workflow.resource_scopes.is_local("gpu")
if ON_THIS_MACHINE and workflow.is_main_process:
    try:
        _no_gpu = check_gpu_request(GPU_SLOTS, max(STUDY.finetune_params["gpu"], STUDY.evaluation_params["gpu"]))
    except DeviceError as error:
        raise WorkflowError(f"GPUs: {error}")
    if _no_gpu:
        logger.warning(_no_gpu)
GPU_JOB_THREADS = threads_per_gpu_job(
    config["gpu_job_threads"],
    cores=workflow.global_resources.get("_cores").value,
    gpu_slots=(GPU_SLOTS or len(device_pool())) if ON_THIS_MACHINE else None,
    local=ON_THIS_MACHINE,
    all_cores=ALL_CORES,
)

# Preflight and prefetch (preflight.smk; docs/gpus-slurm-offline.md, "Preflight"). The plan is the full study's (before
# allow_missing cuts it down) and the preflight rule's param: a change to what the study reads reruns preflight. The
# jobs that load a model or data wait for the checkpoints through after_preflight and read the pinned commits from
# pins.json as params (maple.hub.pins); with prefetch they run with the hub offline (resources.hub_offline: a resource,
# not a param, so that switching hub.prefetch reruns nothing).
PINS_FILE = f"{R}/preflight/pins.json"
PREFETCH_FILE = f"{R}/preflight/prefetched.json"
PREFLIGHT_PLAN = preflight_plan(STUDY, config["preflight"]["gpu_memory_gib"])
PREFETCH = bool(config["hub"]["prefetch"]) and reads_hub(PREFLIGHT_PLAN)
HUB_OFFLINE = int(PREFETCH)
# hub.retry_s and hub.timeout_s (maple.hub.transport) reach every process of the run, local rules and cluster jobs
# alike, as variables: changing them reruns nothing
os.environ.update(hub_settings_env(config["hub"]))

BUILT_MODELS = [alias for alias, m in STUDY.models.items() if m.build]
GGUF_MODELS = [alias for alias, m in STUDY.models.items() if m.gguf]
FINETUNE_BENCHMARK = "benchmarks/finetune/{model}/{data}/r{rank}-q{bits}.tsv"
EVALUATE_BENCHMARK = "benchmarks/evaluate/{model}/{variant}/{job}.tsv"  # job: the shard's name (the task's alias)
CAPTIONS = "../report"


def _alternatives(names):
    return "|".join(sorted(map(re.escape, names))) or "(?!x)x"


wildcard_constraints:
    model=_alternatives(STUDY.models),
    data=_alternatives(STUDY.datasets),
    rank=r"\d+",
    bits="4|8|16",
    variant=rf"{BASE_VARIANT}|({_alternatives(STUDY.datasets)})-r\d+-q(4|8|16)",
    task=_alternatives(STUDY.tasks),
    lang=_alternatives(STUDY.languages),


def job_resources(stage_params):
    """A GPU stage's resources: its `gpu` count, the config's further resources (runtime, mem_mb, gpu_model...)
    and, with prefetch, hub_offline (maple.runtime.jobs.logged_to)."""
    return {"gpu": stage_params["gpu"], **stage_params["resources"], **hub_offline_resource()}


def hub_offline_resource():
    return {"hub_offline": HUB_OFFLINE} if HUB_OFFLINE else {}


# --- preflight, prefetch, pins -----------------------------------------------------------------------------------


def after_preflight(wildcards):
    """No file: makes a job wait for the checkpoints preflight (and prefetch); Snakemake re-evaluates the job once
    they are done, and then reads its pinned commits (maple.hub.pins)."""
    checkpoints.preflight.get()
    if PREFETCH:
        checkpoints.prefetch.get()
    return []


def get_prefetch_input(wildcards):
    checkpoints.preflight.get()
    return []


def hub_pins():
    """pins.json ({} before preflight wrote it: the configured revisions stand in, e.g. in a first dry run)."""
    return read_pins(PINS_FILE)


def get_hub_pins(wildcards):
    """prefetch's param: each pinned repository and commit (which jobs use it is left out: no rerun for that)."""
    pins = hub_pins()
    return {
        kind: {key: {k: v for k, v in entry.items() if k != "used_by"} for key, entry in pins.get(kind, {}).items()}
        for kind in ("models", "datasets")
    }


def get_model_revision(wildcards):
    """The {model} wildcard's revision as the jobs load it: a hub model's pinned commit."""
    model = STUDY.models[wildcards.model]
    return pinned_revision(hub_pins(), model_repo(model), model.revision)


def adapter_path(f):
    return f"{R}/adapters/{f.model}/{f.data}/r{f.rank}-q{f.bits}"


def score_path(model, variant, task, lang):
    return f"{R}/scores/{model}/{variant}/{task}/{lang}.json"


def all_score_files():
    return [score_path(m, v, t, lang) for m, v, t in STUDY.evaluations() for lang in STUDY.tasks[t].languages]


def get_final_output():
    """The tidy CSV, the tables derived from it, and every figure the study's grid supports (report.smk: FIGURES)."""
    tables = [f"{R}/tables/{name}" for name in ("scores.csv", "missing.csv", "cost.csv", "summary.md")]
    if REFERENCE:
        tables.append(f"{R}/tables/reference_comparison.csv")
    plots = expand(
        f"{R}/plots/{{model}}/{{figure}}.{{ext}}", model=plotted_models(), figure=FIGURES, ext=["png", "pdf"]
    )
    # preflight and prefetch are targets too: a dry run then shows them (the jobs after them reach them only
    # through checkpoints, which a dry run does not follow past the first)
    return [PINS_FILE, *([PREFETCH_FILE] if PREFETCH else [])] + tables + plots


def model_dir_input(alias):
    """A built or converted model is a target of this workflow ({R}/models/<alias>); a hub or local model is not."""
    return f"{R}/models/{alias}" if STUDY.models[alias].made_here else []


def get_base_model_input(wildcards):
    return model_dir_input(wildcards.model)


def get_gguf_file(wildcards):
    """The GGUF file a convert_gguf job reads (models.<alias>.gguf, resolved and checked at planning: maple.train.gguf)."""
    return STUDY.models[wildcards.model].gguf


def get_gguf_spec(wildcards):
    """models.<alias>.gguf as the config gives it (the provenance names it; the resolved path is machine-specific)."""
    return config["models"][wildcards.model]["gguf"]


def template_languages():
    langs = set()
    for spec in STUDY.datasets.values():
        if spec["backend"] == "template":
            langs.update(spec["languages"])
    return sorted(langs)


def lexicon_files(languages):
    return [os.path.join(LEXICON_DIR, f"{lang}.yaml") for lang in languages]


# allow_missing (config; docs/reruns-and-faults.md, "Failed jobs and partial results"): the second step after a
# --keep-going run in which jobs failed. The study is cut down to what finished, the adapters that exist and the
# evaluations whose score files all exist, so that aggregate, summarize and plot run on that and nothing upstream is
# scheduled; the cells cut are written to {results}/tables/missing.csv by aggregate (header only in a complete run).
ALLOW_MISSING = config["allow_missing"]
MISSING_CELLS = []
if ALLOW_MISSING:
    STUDY, MISSING_CELLS = STUDY.restricted_to_finished(
        adapter_done=lambda f: os.path.isdir(adapter_path(f)),
        scores_done=lambda m, v, t: all(os.path.isfile(score_path(m, v, t, lang)) for lang in STUDY.tasks[t].languages),
    )
    logger.warning(
        f"allow_missing: aggregating {len(STUDY.cells())} finished scores; {len(MISSING_CELLS)} cells of the grid "
        f"have none and are listed in {R}/tables/missing.csv"
    )


def plotted_models():
    """The models with figures: all; with allow_missing, those with at least one finished adapter evaluation (a
    model with base scores only has no comparison to draw; its scores are in the table all the same)."""
    if not ALLOW_MISSING:
        return list(STUDY.models)
    return [m for m in STUDY.models if any(v != BASE_VARIANT and mm == m for mm, v, _ in STUDY.evaluations())]


# --- data -------------------------------------------------------------------------------------------------------


def get_lexicon_dir(wildcards, input):
    """The lexicons' directory, from the job's input (a path prefix written into a param would not travel to a
    job on another file system)."""
    return os.path.dirname(input[0]) if input else LEXICON_DIR


def get_synth_data_input(wildcards):
    """A template dataset's lexicons; a teacher that is a model this workflow builds or converts: its directory."""
    spec = STUDY.datasets[wildcards.data]
    files = lexicon_files(spec["languages"]) if spec["backend"] == "template" else []
    teacher = STUDY.data_teachers.get(wildcards.data)
    return files + ([model_dir_input(teacher)] if teacher and STUDY.models[teacher].made_here else [])


def get_synth_data_spec(wildcards):
    """The dataset's spec, each hub repository it reads at its pinned commit."""
    return pinned_data_spec(STUDY.datasets[wildcards.data], hub_pins())


# Backends whose data a model writes (a teacher LM, a translator): on a GPU like the finetunes, with a claimed device
# and a GPU job's share of the cores; the others are light CPU jobs.
MODEL_BACKENDS = ("generate", "translate")


def get_synth_gpus(wildcards):
    return 1 if STUDY.datasets[wildcards.data]["backend"] in MODEL_BACKENDS else 0


def synth_part_file(data, index):
    return f"{R}/data/{data}/parts/p{index}.jsonl"


def get_synth_data_parts(wildcards):
    """The synth_part files of a dataset written in parts (rule synth_data_from_parts)."""
    return [synth_part_file(wildcards.data, i) for i in range(1, len(SYNTH_PARTS[wildcards.data]) + 1)]


def get_synth_part_input(wildcards):
    """A synth_part job's teacher when this workflow builds it (as synth_data's)."""
    teacher = STUDY.data_teachers.get(wildcards.data)
    return [model_dir_input(teacher)] if teacher and STUDY.models[teacher].made_here else []


def get_synth_part_languages(wildcards):
    return list(SYNTH_PARTS[wildcards.data][int(wildcards.part) - 1])


LIGHT_DATA_RUNTIME_MINUTES = 60  # a data job that runs no model: template data, a hub dataset, parts held out


def get_synth_runtime(wildcards, attempt):
    """The SLURM runtime of a data job a model runs: its estimate's (estimate x evaluation.runtime_margin); any other
    data job: LIGHT_DATA_RUNTIME_MINUTES; times the attempt (data_retries)."""
    part = getattr(wildcards, "part", None)
    if not (part or get_synth_gpus(wildcards)):
        return runtime_for_attempt(LIGHT_DATA_RUNTIME_MINUTES, attempt)
    return runtime_for_attempt(SYNTH_RUNTIME[f"{wildcards.data}_p{part}" if part else wildcards.data], attempt)


def get_synth_threads(wildcards):
    return GPU_JOB_THREADS if get_synth_gpus(wildcards) else 1


def get_dataset_languages(wildcards):
    return {lang: STUDY.languages[lang] for lang in STUDY.datasets[wildcards.data]["languages"]}


# --- finetune ---------------------------------------------------------------------------------------------------


def get_finetune_params(wildcards):
    """Every FinetuneParams field but rank, bits (wildcards) and the attempt's micro-batch (a resource)."""
    return {
        **rule_params(STUDY.finetune_params, STUDY.models[wildcards.model], STUDY.seed),
        "revision": get_model_revision(wildcards),
    }


def get_finetune_micro_batch(wildcards, attempt):
    """Attempt 1: finetune.micro_batch_size; each retry halves it (maple.train.params.micro_batch_for_attempt).
    A resource, not a param: params would make a retried adapter look stale to the params rerun trigger."""
    ft = STUDY.finetune_params
    return micro_batch_for_attempt(ft["effective_batch_size"], ft["micro_batch_size"], attempt)


def get_model_param(name):
    """A param function giving the {model} wildcard's `name` (source, revision, prompt_format, ...)."""
    return lambda wildcards: getattr(STUDY.models[wildcards.model], name)


# --- evaluate ---------------------------------------------------------------------------------------------------

LOG_SAMPLES = STUDY.evaluation_params["log_samples"]


def samples_path(model, variant, task, lang):
    return f"{R}/samples/{model}/{variant}/{task}/{lang}.jsonl"


def range_path(model, variant, task, part, ext="json"):
    """The score file (ext json) or samples (jsonl) of one range of a split language's examples (merge_<task>
    joins them into its score file)."""
    return f"{R}/scores/{model}/{variant}/{task}/ranges/{part.lang}.{part.start}-{part.stop}.{ext}"


def get_evaluate_outputs(shard, variant="{variant}"):
    """The score files of one evaluation job (its shard's languages, and its ranges of a split language) and, with
    evaluation.log_samples, lm-eval's samples beside them (outputs of the job, not targets of `all`)."""
    wc = ("{model}", variant, shard.task)
    outputs = {
        "scores": [score_path(*wc, lang) for lang in shard.languages],
        "samples": [samples_path(*wc, lang) for lang in shard.languages] if LOG_SAMPLES else [],
    }
    if shard.ranges:
        outputs["range_scores"] = [range_path(*wc, part) for part in shard.ranges]
        if LOG_SAMPLES:
            outputs["range_samples"] = [range_path(*wc, part, "samples.jsonl") for part in shard.ranges]
    return outputs


def get_group_outputs(shard, group):
    """engine vllm: the outputs of one job of a group (maple.config.lora_groups), each kind every variant's files in
    turn (maple.evaluate.lora_group.group_members reads them so): the files of the group's per-variant jobs."""
    outputs = {}
    for variant in group.variants:
        for key, files in get_evaluate_outputs(shard, variant).items():
            outputs.setdefault(key, []).extend(files)
    return outputs


def get_group_input(task_alias, group):
    """engine vllm: the adapters of a group's variants (in group order, the base has none), the base model where
    this workflow makes it, a local task's held-out sets."""
    task = STUDY.tasks[task_alias]

    def inputs(wildcards):
        files = {"adapters": [adapter_path(STUDY.finetune_of(wildcards.model, v)) for v in group_adapters(group)]}
        base = get_base_model_input(wildcards)
        if base:
            files["base"] = base
        if task.source == "local":
            files["eval_dir"] = f"{R}/data/{task.dataset}/eval"
        return files

    return inputs


def group_adapters(group):
    return [v for v in group.variants if v != BASE_VARIANT]


def get_evaluate_ranges(shard):
    """The evaluate job's param: each range of a split language as {lang, start, stop} (stop None for the last
    range of a language: to the end of its split); [] for a shard of whole languages."""
    split = split_languages(SHARDS[shard.task])
    return [
        {"lang": p.lang, "start": p.start, "stop": None if p == split[p.lang][-1] else p.stop} for p in shard.ranges
    ]


def get_finetune_resources():
    """The stage's resources, with each job's SLURM runtime from its estimate (unless finetune.resources gives one
    for every job), times the attempt (finetune.oom_retries)."""
    configured = STUDY.finetune_params["resources"].get("runtime")

    def runtime(wc, attempt):
        variant = Finetune(wc.model, wc.data, int(wc.rank), int(wc.bits)).variant
        return runtime_for_attempt(configured or FINETUNE_RUNTIME[(wc.model, variant)], attempt)

    return {**job_resources(STUDY.finetune_params), "runtime": runtime}


def get_evaluate_resources(shard, group=None):
    """The stage's resources, with each job's SLURM runtime from its estimate (unless evaluation.resources gives
    one for every job; a group's job, engine vllm: the group's estimate), times the attempt (evaluation.retries)."""
    configured = STUDY.evaluation_params["resources"].get("runtime")

    def runtime(wc, attempt):
        first = configured or EVALUATE_RUNTIME[(wc.model, group.name if group else wc.variant, shard.name)]
        return runtime_for_attempt(first, attempt)

    return {**job_resources(STUDY.evaluation_params), "runtime": runtime}


def get_evaluate_batch_size(task_alias):
    task = STUDY.tasks[task_alias]
    return task.batch_size if task.batch_size is not None else STUDY.evaluation_params["batch_size"]


def get_merge_input(task_alias):
    """The ranges' score files (and samples) of one split language of the task."""

    def inputs(wildcards):
        parts = split_languages(SHARDS[task_alias])[wildcards.lang]
        wc = (wildcards.model, wildcards.variant, task_alias)
        files = {"parts": [range_path(*wc, p) for p in parts]}
        if LOG_SAMPLES:
            files["samples"] = [range_path(*wc, p, "samples.jsonl") for p in parts]
        return files

    return inputs


def get_evaluate_input(task_alias):
    task = STUDY.tasks[task_alias]

    def inputs(wildcards):
        files = {}
        f = STUDY.finetune_of(wildcards.model, wildcards.variant)
        if f:
            files["adapter"] = adapter_path(f)
        base = get_base_model_input(wildcards)
        if base:
            files["base"] = base
        if task.source == "local":
            files["eval_dir"] = f"{R}/data/{task.dataset}/eval"
        return files

    return inputs


def get_evaluate_task(task_alias):
    """A param function: the evaluation job's task (maple.runtime.tasks.Task.job_param), with the pinned commits of
    the hub datasets its lm-eval tasks read (only where there are some: a config without plans as it did)."""
    task = evaluate_task(task_alias)
    names = list(task.lm_eval_names.values())

    def task_param(wildcards):
        revisions = task_dataset_revisions(names, hub_pins()) if task.source == "lm_eval" else {}
        return replace(task, dataset_revisions=revisions).job_param()

    return task_param


def get_token_count_input(wildcards):
    """count_tokens reads the models built here (cheap CPU rules), nothing else: hub models and data count where
    they are cached, a local task where its held-out data exist."""
    return [model_dir_input(alias) for alias, model in STUDY.models.items() if model.made_here]


def get_token_count_models(wildcards):
    return {
        alias: {
            "source": model.source,
            "revision": pinned_revision(hub_pins(), model_repo(model), model.revision),
            "prompt_format": model.prompt_format,
            "trust_remote_code": model.trust_remote_code,
        }
        for alias, model in STUDY.models.items()
    }


def get_token_count_training(wildcards):
    """Per model, each training set it is finetuned on: its train file (counted where it exists) and languages."""
    training = {}
    for f in STUDY.finetunes:
        training.setdefault(f.model, {})[f.data] = {
            "train_file": f"{R}/data/{f.data}/train.jsonl",
            "languages": list(STUDY.datasets[f.data]["languages"]),
        }
    return training


def get_token_count_tasks(wildcards):
    return {
        alias: {"task": get_evaluate_task(alias)(wildcards), "languages": list(task.languages)}
        for alias, task in STUDY.tasks.items()
    }


def evaluate_task(task_alias):
    """The study's task with what its evaluation jobs read: a local task's held-out files, the dataset_mirrors an
    lm-eval task reads."""
    task = STUDY.tasks[task_alias]
    subdir = "eval_mc" if task.kind == "multiple_choice" else "eval_gen"
    eval_files = (
        {lang: f"{R}/data/{task.dataset}/eval/{subdir}/{lang}.jsonl" for lang in task.languages}
        if task.source == "local"
        else {}
    )
    vllm = {"lora_rank": VLLM_LORA_RANK} if task.engine == "vllm" else {}
    return replace(task, eval_files=eval_files, mirrors=task_dataset_mirrors(task), **vllm)


_TASK_MIRRORS = {}


def task_dataset_mirrors(task):
    """The dataset_mirrors entries a source: lm_eval task reads (maple.hub.task_sources), worked out once per task from
    the task YAMLs as text; all of them where lm-eval is not installed here. {} without dataset_mirrors."""
    if not STUDY.dataset_mirrors or task.source != "lm_eval":
        return {}
    if task.alias not in _TASK_MIRRORS:
        builtin = lm_eval_tasks_dir()
        _TASK_MIRRORS[task.alias] = (
            task_mirrors(
                list(task.lm_eval_names.values()),
                STUDY.dataset_mirrors,
                shipped_dir=os.path.join(WORKFLOW_DIR, "resources", "lm_eval_tasks"),
                lm_eval_dir=builtin,
            )
            if builtin is not None
            else dict(STUDY.dataset_mirrors)
        )
    return _TASK_MIRRORS[task.alias]


def get_variant_bits(wildcards):
    """An adapter is evaluated on the base quantised as it was trained (QLoRA), unless the config says not to."""
    f = STUDY.finetune_of(wildcards.model, wildcards.variant)
    if f is None or not STUDY.evaluation_params["quantize_base_like_training"]:
        return 16
    return f.bits


def get_merge_adapter(wildcards):
    """A 16-bit adapter is evaluated merged into the base (one matmul per adapted layer, not three); an adapter on a
    quantised base stays unmerged: merging into NF4 / int8 weights is not exact."""
    f = STUDY.finetune_of(wildcards.model, wildcards.variant)
    return f is not None and STUDY.evaluation_params["merge_adapters"] and get_variant_bits(wildcards) == 16


# --- report -----------------------------------------------------------------------------------------------------

REFERENCE = config["reference_scores"]
if REFERENCE and not os.path.isfile(REFERENCE):
    raise WorkflowError(f"Invalid config: reference_scores: no such file {REFERENCE!r} (relative to {os.getcwd()})")
FIGURES = figures_for_study(
    list(STUDY.datasets),
    {alias: list(task.languages) for alias, task in STUDY.tasks.items()},
    bool(REFERENCE),
)


def evaluation_benchmark(model, variant, task_alias, shard):
    """A variant's evaluation job as the cost table counts it: its benchmark file; a group's job (engine vllm) is
    shared by the group's variants in equal parts (`share`)."""
    job = {"model": model, "variant": variant, "stage": "evaluate"}
    group = next((g for g in LORA_GROUPS if variant in g.variants), None)
    if STUDY.tasks[task_alias].engine == "vllm" and group:
        benchmark = EVALUATE_BENCHMARK.format(model=model, variant=group.name, job=shard.name)
        return {**job, "benchmark": benchmark, "gpu": STUDY.evaluation_params["gpu"], "share": 1 / len(group.variants)}
    benchmark = EVALUATE_BENCHMARK.format(model=model, variant=variant, job=shard.name)
    return {**job, "benchmark": benchmark, "gpu": STUDY.evaluation_params["gpu"]}


# Every GPU job's benchmark file (the rules' own `benchmark:` paths), as records for the cost table.
BENCHMARK_JOBS = [
    {
        "model": f.model,
        "variant": f.variant,
        "stage": "finetune",
        "benchmark": FINETUNE_BENCHMARK.format(model=f.model, data=f.data, rank=f.rank, bits=f.bits),
        "gpu": STUDY.finetune_params["gpu"],
    }
    for f in STUDY.finetunes
] + [evaluation_benchmark(m, v, t, shard) for m, v, t in STUDY.evaluations() for shard in SHARDS[t]]
# (model, variant) -> its adapter's train_metrics.json; the adapter directory is the rules' input.
TRAIN_METRICS = {(f.model, f.variant): f"{adapter_path(f)}/train_metrics.json" for f in STUDY.finetunes}


def get_summary_outputs():
    outputs = {
        "summary": report(f"{R}/tables/summary.md", caption=f"{CAPTIONS}/summary.rst", category="Tables"),
        "cost": report(f"{R}/tables/cost.csv", caption=f"{CAPTIONS}/cost.rst", category="Tables"),
    }
    if REFERENCE:
        outputs["reference_comparison"] = report(
            f"{R}/tables/reference_comparison.csv", caption=f"{CAPTIONS}/reference_table.rst", category="Tables"
        )
    return outputs


def get_plot_outputs():
    """Each figure of the study as a PNG (a report item) and a PDF."""
    outputs = {}
    for figure in FIGURES:
        outputs[figure] = report(
            f"{R}/plots/{{model}}/{figure}.png",
            caption=f"{CAPTIONS}/{figure}.rst",
            category="Figures",
            subcategory="{model}",
            labels={"model": "{model}", "figure": figure.replace("_", " ")},
        )
        outputs[f"{figure}_pdf"] = f"{R}/plots/{{model}}/{figure}.pdf"
    return outputs


def get_model_adapters(wildcards):
    return [adapter_path(f) for f in STUDY.finetunes if f.model == wildcards.model]


def get_model_train_metrics(wildcards):
    return {v: path for (m, v), path in TRAIN_METRICS.items() if m == wildcards.model}
