# Config validation, the study grid resolved once into plain records, wildcard constraints and input functions.
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, os.path.join(workflow.basedir, "workflow", "scripts"))
from maple.config import BASE_VARIANT, ConfigError, resolve_study  # noqa: E402

validate(config, os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"))
try:
    STUDY = resolve_study(config, config_dir=os.getcwd())
except ConfigError as error:
    raise WorkflowError(f"Invalid config: {error}")

R = STUDY.results_dir
LEXICON_DIR = os.path.join(workflow.basedir, "workflow", "resources", "lexicons")
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


def adapter_path(f):
    return f"{R}/adapters/{f.model}/{f.data}/r{f.rank}-q{f.bits}"


def score_path(model, variant, task, lang):
    return f"{R}/scores/{model}/{variant}/{task}/{lang}.json"


def all_score_files():
    return [
        score_path(m, v, t, lang)
        for m, v, t in STUDY.evaluations()
        for lang in STUDY.tasks[t].languages
    ]


def get_final_output():
    plots = expand(f"{R}/plots/{{model}}/{{figure}}.png", model=STUDY.models, figure=["score_vs_rank", "delta_heatmap"])
    return [f"{R}/tables/scores.csv"] + plots


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
