"""Cross-key checks of a schema-valid config, and the study grid resolved once into plain records.

The JSON schema (workflow/schemas/config.schema.yaml) checks types, ranges and unknown keys; this module checks what
a schema cannot: names that must refer to each other, paths that must exist, a grid that must not be empty. Each
error names the key and what was expected, and is raised before any job starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

BASE_VARIANT = "base"
LOCAL_TASK_KINDS = ("multiple_choice", "generate")
DEFAULT_METRIC = {"multiple_choice": "acc", "generate": "exact_match"}


class ConfigError(ValueError):
    """The config is wrong; the message names the key and what was expected."""


@dataclass(frozen=True)
class Model:
    alias: str
    source: str  # what from_pretrained receives: a hub id or a local directory
    revision: str
    trust_remote_code: bool
    prompt_format: str
    target_modules: tuple[str, ...]
    build: str | None  # "tiny_llama" when the workflow builds it


@dataclass(frozen=True)
class Finetune:
    model: str
    data: str
    rank: int
    bits: int

    @property
    def variant(self) -> str:
        return f"{self.data}-r{self.rank}-q{self.bits}"


@dataclass(frozen=True)
class Task:
    alias: str
    source: str  # local | lm_eval
    kind: str | None
    dataset: str | None
    languages: tuple[str, ...]
    lm_eval_names: dict  # lang -> lm-eval task name
    metric: str
    num_fewshot: int
    limit: int | None


@dataclass
class Study:
    results_dir: str
    seed: int
    languages: dict
    models: dict[str, Model]
    datasets: dict[str, dict]
    finetunes: list[Finetune]
    tasks: dict[str, Task]
    finetune_params: dict
    evaluation_params: dict
    tiny_model: dict = field(default_factory=dict)

    def variants(self, model: str) -> list[str]:
        return [BASE_VARIANT] + [f.variant for f in self.finetunes if f.model == model]

    def finetune_of(self, model: str, variant: str) -> Finetune | None:
        for f in self.finetunes:
            if f.model == model and f.variant == variant:
                return f
        return None

    def evaluations(self) -> list[tuple[str, str, str]]:
        """Every (model, variant, task) evaluation job: the base model once, then every adapter."""
        return [(m, v, t) for m in self.models for v in self.variants(m) for t in self.tasks]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _resolve_model(alias: str, spec: dict, finetune: dict, config_dir: str) -> Model:
    sources = [k for k in ("hub_id", "path", "build") if k in spec]
    _require(len(sources) == 1, f"models.{alias}: give exactly one of hub_id, path or build (got {sources or 'none'})")
    if "path" in spec:
        path = spec["path"] if os.path.isabs(spec["path"]) else os.path.join(config_dir, spec["path"])
        _require(os.path.isdir(path), f"models.{alias}.path: expected an existing local model directory, got {spec['path']!r}")
        source = path
    elif "hub_id" in spec:
        source = spec["hub_id"]
    else:
        source = ""  # filled in by the caller: {results_dir}/models/{alias}
    return Model(
        alias=alias,
        source=source,
        revision=spec.get("revision", "main"),
        trust_remote_code=bool(spec.get("trust_remote_code", False)),
        prompt_format=spec.get("prompt_format", "plain"),
        target_modules=tuple(spec.get("target_modules") or finetune.get("target_modules", ["q_proj", "v_proj"])),
        build=spec.get("build"),
    )


def _resolve_task(alias: str, spec: dict, languages: dict, datasets: dict) -> Task:
    key = f"evaluation.tasks.{alias}"
    for lang in spec["languages"]:
        _require(lang in languages, f"{key}.languages: {lang!r} is not in the languages table (known: {sorted(languages)})")
    kind = spec.get("kind")
    names: dict[str, str] = {}
    if spec["source"] == "local":
        _require(kind in LOCAL_TASK_KINDS, f"{key}.kind: a local task needs kind multiple_choice or generate, got {kind!r}")
        data = spec.get("dataset")
        _require(data in datasets, f"{key}.dataset: expected one of the datasets {sorted(datasets)}, got {data!r}")
        missing = sorted(set(spec["languages"]) - set(datasets[data]["languages"]))
        _require(not missing, f"{key}.languages: {missing} have no held-out set in dataset {data!r}")
        for lang in spec["languages"]:
            names[lang] = f"maple_{alias}_{lang}"
        metric = spec.get("metric", DEFAULT_METRIC[kind])
    else:
        template = spec.get("lm_eval_task")
        _require(bool(template) and "{code}" in template, f"{key}.lm_eval_task: expected an lm-eval task name with {{code}}, got {template!r}")
        code_key = spec.get("code_key", alias)
        for lang in spec["languages"]:
            code = languages[lang].get("codes", {}).get(code_key)
            _require(code is not None, f"languages.{lang}.codes.{code_key}: needed by task {alias!r}, missing")
            names[lang] = template.format(code=code)
        metric = spec.get("metric", "acc")
    return Task(
        alias=alias,
        source=spec["source"],
        kind=kind,
        dataset=spec.get("dataset"),
        languages=tuple(spec["languages"]),
        lm_eval_names=names,
        metric=metric,
        num_fewshot=int(spec.get("num_fewshot", 0)),
        limit=spec.get("limit"),
    )


def resolve_study(config: dict, config_dir: str = ".") -> Study:
    """Check the cross-key rules of a schema-valid config and resolve it into plain records."""
    languages = config["languages"]
    finetune = config["finetune"]
    results_dir = config.get("results_dir", "results")

    models = {}
    for alias, spec in config["models"].items():
        model = _resolve_model(alias, spec, finetune, config_dir)
        if model.build:
            model = Model(**{**model.__dict__, "source": os.path.join(results_dir, "models", alias)})
        models[alias] = model

    datasets = config["datasets"]
    for name, spec in datasets.items():
        for lang in spec["languages"]:
            _require(lang in languages, f"datasets.{name}.languages: {lang!r} is not in the languages table (known: {sorted(languages)})")

    for key in ("ranks", "bits"):
        _require(len(finetune[key]) > 0, f"finetune.{key}: expected a non-empty list")
    finetunes = [
        Finetune(model=m, data=d, rank=r, bits=b)
        for m in models
        for d in datasets
        for r in finetune["ranks"]
        for b in finetune["bits"]
    ]
    _require(len(finetunes) > 0, "models x datasets x finetune.ranks x finetune.bits: the study grid is empty")

    tasks = {alias: _resolve_task(alias, spec, languages, datasets) for alias, spec in config["evaluation"]["tasks"].items()}

    return Study(
        results_dir=results_dir,
        seed=int(config.get("seed", 1234)),
        languages=languages,
        models=models,
        datasets=datasets,
        finetunes=finetunes,
        tasks=tasks,
        finetune_params={k: v for k, v in finetune.items() if k not in ("ranks", "bits")},
        evaluation_params={k: v for k, v in config["evaluation"].items() if k != "tasks"},
        tiny_model=config.get("tiny_model", {}),
    )
