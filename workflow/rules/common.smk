# Config validation, the study grid resolved once into plain records, wildcard constraints and input functions.
import os
import sys

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

sys.path.insert(0, os.path.join(workflow.basedir, "workflow", "scripts"))
from maple.config import BASE_VARIANT, ConfigError, check_config, check_lm_eval_tasks, resolve_study  # noqa: E402

# Validation, before any job starts (README, "Reruns, faults and bad configs"): each config file with a YAML loader
# that rejects duplicate keys; the merged config against the schema, every error as one line naming the key path
# and what was expected; then the schema's defaults; then the cross-key rules and the lm-eval task names.
SCHEMA_FILE = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")
if str(config.get("allow_missing")).lower() in ("true", "false"):  # --config allow_missing=true arrives as a string
    config["allow_missing"] = str(config["allow_missing"]).lower() == "true"
try:
    with open(SCHEMA_FILE, encoding="utf-8") as _schema:
        check_config(config, yaml.safe_load(_schema), workflow.configfiles)
    validate(config, SCHEMA_FILE)
    STUDY = resolve_study(config, config_dir=os.getcwd())
    check_lm_eval_tasks(STUDY, [os.path.join(workflow.basedir, "workflow", "resources", "lm_eval_tasks")])
except ConfigError as error:
    raise WorkflowError(f"Invalid config: {error}")

R = STUDY.results_dir
LEXICON_DIR = os.path.join(workflow.basedir, "workflow", "resources", "lexicons")
# Jobs that use every core they are given ask for more than any machine has: Snakemake caps a job's threads at
# --cores (for SLURM jobs too, where --cores is the CPUs per job). Unlike `workflow.cores`, this needs no --cores
# to parse, so `snakemake --report` and `--lint` work without one.
ALL_CORES = 4096
BUILT_MODELS = [alias for alias, m in STUDY.models.items() if m.build]


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
    """A GPU stage's resources: its `gpu` count and the config's further resources (runtime, mem_mb, gpu_model...)."""
    return {"gpu": stage_params.get("gpu", 1), **stage_params.get("resources", {})}


def adapter_path(f):
    return f"{R}/adapters/{f.model}/{f.data}/r{f.rank}-q{f.bits}"


def score_path(model, variant, task, lang):
    return f"{R}/scores/{model}/{variant}/{task}/{lang}.json"


def all_score_files():
    return [score_path(m, v, t, lang) for m, v, t in STUDY.evaluations() for lang in STUDY.tasks[t].languages]


def get_final_output():
    """The tidy CSV, the tables derived from it, and every figure the study's grid supports (report.smk: FIGURES)."""
    tables = [f"{R}/tables/{name}" for name in ("scores.csv", "missing.csv", "cost.csv", "summary.md")]
    if config.get("reference_scores"):
        tables.append(f"{R}/tables/reference_comparison.csv")
    plots = expand(
        f"{R}/plots/{{model}}/{{figure}}.{{ext}}", model=plotted_models(), figure=FIGURES, ext=["png", "pdf"]
    )
    return tables + plots


def get_base_model_input(wildcards):
    """A built model is a target of this workflow; a hub or local model is not."""
    return f"{R}/models/{wildcards.model}" if STUDY.models[wildcards.model].build else []


def template_languages():
    langs = set()
    for spec in STUDY.datasets.values():
        if spec["backend"] == "template":
            langs.update(spec["languages"])
    return sorted(langs)


def lexicon_files(languages):
    return [os.path.join(LEXICON_DIR, f"{lang}.yaml") for lang in languages]


# allow_missing (config; README "Reruns, faults and bad configs"): the second step after a --keep-going run in which
# jobs failed. The study is cut down to what finished, the adapters that exist and the evaluations whose score files
# all exist, so that aggregate, summarize and plot run on that and nothing upstream is scheduled; the cells cut are
# written to {results}/tables/missing.csv by aggregate (header only in a complete run).
ALLOW_MISSING = bool(config.get("allow_missing", False))
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


_TASK_MIRRORS = {}


def task_dataset_mirrors(task):
    """The dataset_mirrors entries a source: lm_eval task reads (maple.task_sources), worked out once per task from
    the task YAMLs as text; all of them where lm-eval is not installed here. {} without dataset_mirrors."""
    if not STUDY.dataset_mirrors or task.source != "lm_eval":
        return {}
    if task.alias not in _TASK_MIRRORS:
        from maple.config import lm_eval_tasks_dir
        from maple.task_sources import task_mirrors

        builtin = lm_eval_tasks_dir()
        _TASK_MIRRORS[task.alias] = (
            task_mirrors(
                list(task.lm_eval_names.values()),
                STUDY.dataset_mirrors,
                shipped_dir=os.path.join(workflow.basedir, "workflow", "resources", "lm_eval_tasks"),
                lm_eval_dir=builtin,
            )
            if builtin is not None
            else dict(STUDY.dataset_mirrors)
        )
    return _TASK_MIRRORS[task.alias]
