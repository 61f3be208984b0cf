"""The study grid of a checked config (the schema's defaults filled in: maple.config.validation.checked_study), resolved once into plain records (models, datasets, finetunes, tasks), and the
cross-key rules a schema cannot check: names that must refer to each other, paths that must exist, a non-empty grid.
Each error names the key and what was expected."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace

from maple.hub.task_sources import mirror_data_spec
from maple.runtime.tasks import LOCAL_MAX_GEN_TOKS, Task
from maple.train.gguf import GGUFError, check_gguf

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
    gguf: str | None = None  # the GGUF file the workflow converts it from (models.<alias>.gguf, resolved)

    @property
    def made_here(self) -> bool:
        """A target of this workflow (built or converted into {results_dir}/models/{alias}), not a hub or local model."""
        return bool(self.build or self.gguf)


@dataclass(frozen=True)
class Finetune:
    model: str
    data: str
    rank: int
    bits: int

    @property
    def variant(self) -> str:
        return f"{self.data}-r{self.rank}-q{self.bits}"


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
    # dataset -> the seed of its data (datasets.<name>.seed, default: the global seed). Kept apart from `seed` so that
    # a new data sample reruns that data and what follows, not the tiny model build.
    data_seeds: dict[str, int] = field(default_factory=dict)
    # allow_missing: only these (model, variant, task) evaluations are part of the run (None: all of the grid).
    finished_evaluations: frozenset | None = None
    # hub dataset id -> local mirror directory (dataset_mirrors; maple.hub.task_sources).
    dataset_mirrors: dict[str, str] = field(default_factory=dict)
    # dataset -> the model alias its `teacher` names (that model's source is the teacher; its directory is the
    # synth_data job's input where the workflow makes it).
    data_teachers: dict[str, str] = field(default_factory=dict)

    def data_seed(self, data: str) -> int:
        return self.data_seeds.get(data, self.seed)

    def variants(self, model: str) -> list[str]:
        return [BASE_VARIANT] + [f.variant for f in self.finetunes if f.model == model]

    def finetune_of(self, model: str, variant: str) -> Finetune | None:
        for f in self.finetunes:
            if f.model == model and f.variant == variant:
                return f
        return None

    def evaluations(self) -> list[tuple[str, str, str]]:
        """Every (model, variant, task) evaluation job: the base model once, then every adapter."""
        jobs = [(m, v, t) for m in self.models for v in self.variants(m) for t in self.tasks]
        if self.finished_evaluations is not None:
            jobs = [job for job in jobs if job in self.finished_evaluations]
        return jobs

    def cells(self) -> list[tuple[str, str, str, str]]:
        """Every (model, variant, task, lang) score of the grid."""
        return [(m, v, t, lang) for m, v, t in self.evaluations() for lang in self.tasks[t].languages]

    def restricted_to_finished(self, adapter_done, scores_done) -> tuple[Study, list[dict]]:
        """The study cut down to what finished (config allow_missing): the finetunes whose adapter exists
        (adapter_done(finetune)) and the evaluations whose score files all exist (scores_done(model, variant,
        task)); models with no finished evaluation are dropped. Returns it and the missing cells of the full grid,
        each {model, variant, task, lang, reason}."""
        finetunes = [f for f in self.finetunes if adapter_done(f)]
        partial = replace(self, finetunes=finetunes)
        finished = frozenset(job for job in partial.evaluations() if scores_done(*job))
        models = {alias: m for alias, m in self.models.items() if any(job[0] == alias for job in finished)}
        partial = replace(
            partial, models=models, finetunes=[f for f in finetunes if f.model in models], finished_evaluations=finished
        )
        kept = set(partial.cells())
        missing = []
        for cell in self.cells():
            if cell in kept:
                continue
            f = self.finetune_of(cell[0], cell[1])
            reason = (
                "no adapter (finetune failed or not run)"
                if f and not adapter_done(f)
                else "no score (evaluation failed or not run)"
            )
            missing.append(dict(zip(("model", "variant", "task", "lang"), cell), reason=reason))
        return partial, missing


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _resolve_model(alias: str, spec: dict, finetune: dict, config_dir: str) -> Model:
    sources = [k for k in ("hub_id", "path", "build", "gguf") if k in spec]
    _require(
        len(sources) == 1, f"models.{alias}: give exactly one of hub_id, path, build or gguf (got {sources or 'none'})"
    )
    gguf = None
    if "gguf" in spec:
        try:
            gguf = str(check_gguf(spec["gguf"], config_dir)[0])
        except GGUFError as error:
            raise ConfigError(f"models.{alias}.gguf: {error}") from None
        source = ""  # filled in by the caller: {results_dir}/models/{alias}
    elif "path" in spec:
        path = spec["path"] if os.path.isabs(spec["path"]) else os.path.join(config_dir, spec["path"])
        _require(
            os.path.isdir(path),
            f"models.{alias}.path: expected an existing local model directory, got {spec['path']!r}",
        )
        source = path
    elif "hub_id" in spec:
        source = spec["hub_id"]
    else:
        source = ""  # filled in by the caller: {results_dir}/models/{alias}
    return Model(
        alias=alias,
        source=source,
        revision=spec["revision"],
        trust_remote_code=bool(spec["trust_remote_code"]),
        prompt_format=spec["prompt_format"],
        target_modules=tuple(spec.get("target_modules") or finetune["target_modules"]),
        build=spec.get("build"),
        gguf=gguf,
    )


def _with_teacher_model(spec: dict, model: Model) -> dict:
    """A dataset whose `teacher` is a model alias of this config: that model's source (a hub id, a local directory,
    or the directory the workflow builds or converts) is the teacher, with a hub model's revision and the model's
    trust_remote_code unless the dataset gives its own; the records' source names the alias."""
    resolved = {**spec, "teacher": model.source}
    if not model.made_here and not os.path.isdir(model.source):  # a hub model: its pinned revision
        resolved.setdefault("revision", model.revision)
    if model.trust_remote_code:
        resolved.setdefault("trust_remote_code", True)
    if spec["backend"] == "generate":
        resolved.setdefault("source", f"generate:{model.alias}")
    return resolved


def _checked_batch_size(key: str, batch_size):
    """An HFLM batch size: an integer >= 1, 'auto' or 'auto:N' (None: not given)."""
    ok = (
        batch_size is None
        or (isinstance(batch_size, int) and batch_size >= 1)
        or (isinstance(batch_size, str) and re.fullmatch(r"auto(:\d+)?", batch_size) is not None)
    )
    _require(ok, f"{key}: expected an integer >= 1, 'auto' or 'auto:N', got {batch_size!r}")
    return batch_size


def _resolve_task(alias: str, spec: dict, languages: dict, datasets: dict) -> Task:
    key = f"evaluation.tasks.{alias}"
    for lang in spec["languages"]:
        _require(
            lang in languages, f"{key}.languages: {lang!r} is not in the languages table (known: {sorted(languages)})"
        )
    kind = spec.get("kind")
    names: dict[str, str] = {}
    if spec["source"] == "local":
        _require(
            kind in LOCAL_TASK_KINDS, f"{key}.kind: a local task needs kind multiple_choice or generate, got {kind!r}"
        )
        data = spec.get("dataset")
        _require(data in datasets, f"{key}.dataset: expected one of the datasets {sorted(datasets)}, got {data!r}")
        missing = sorted(set(spec["languages"]) - set(datasets[data]["languages"]))
        _require(not missing, f"{key}.languages: {missing} have no held-out set in dataset {data!r}")
        for lang in spec["languages"]:
            names[lang] = f"maple_{alias}_{lang}"
        metric = spec.get("metric", DEFAULT_METRIC[kind])
    else:
        template = spec.get("lm_eval_task")
        _require(
            bool(template) and "{code}" in template,
            f"{key}.lm_eval_task: expected an lm-eval task name with {{code}}, got {template!r}",
        )
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
        num_fewshot=int(spec["num_fewshot"]),
        limit=spec["limit"],
        max_gen_toks=spec.get("max_gen_toks") or (LOCAL_MAX_GEN_TOKS if spec["source"] == "local" else None),
        batch_size=_checked_batch_size(f"{key}.batch_size", spec.get("batch_size")),
        max_length=spec.get("max_length"),
        engine=spec.get("engine", "hf"),
    )


def _check_vllm_bits(tasks: dict, bits: list, quantize_base_like_training: bool) -> None:
    """engine vllm runs a base through vLLM's bitsandbytes loader, which is 4-bit only: no 8-bit base, found here
    rather than when the job starts."""
    vllm = [alias for alias, task in tasks.items() if task.engine == "vllm"]
    _require(
        not (vllm and 8 in bits and quantize_base_like_training),
        f"evaluation.tasks.{vllm[0] if vllm else ''}.engine: vllm cannot evaluate the 8-bit adapters of finetune.bits "
        "on their 8-bit base (vLLM's bitsandbytes loader is 4-bit); set engine: hf for this task, take 8 out of "
        "finetune.bits, or set evaluation.quantize_base_like_training: false",
    )


def resolve_study(config: dict, config_dir: str = ".") -> Study:
    """Check the cross-key rules of a schema-valid config and resolve it into plain records."""
    languages = config["languages"]
    finetune = config["finetune"]
    results_dir = config["results_dir"]

    models = {}
    for alias, spec in config["models"].items():
        model = _resolve_model(alias, spec, finetune, config_dir)
        if model.made_here:
            model = replace(model, source=os.path.join(results_dir, "models", alias))
        models[alias] = model

    seed = int(config["seed"])
    mirrors = dict(config.get("dataset_mirrors") or {})
    datasets, data_seeds, data_teachers = {}, {}, {}
    for name, spec in config["datasets"].items():
        for lang in spec["languages"]:
            _require(
                lang in languages,
                f"datasets.{name}.languages: {lang!r} is not in the languages table (known: {sorted(languages)})",
            )
        # The data seed travels as its own param: the spec without it, so that writing the global seed out
        # explicitly reruns nothing.
        data_seeds[name] = int(spec.get("seed", seed))
        datasets[name] = mirror_data_spec({k: v for k, v in spec.items() if k != "seed"}, mirrors)
        if spec.get("teacher") in models:
            datasets[name] = _with_teacher_model(datasets[name], models[spec["teacher"]])
            data_teachers[name] = spec["teacher"]

    for key in ("ranks", "bits"):
        _require(len(finetune[key]) > 0, f"finetune.{key}: expected a non-empty list")
    effective, micro = finetune["effective_batch_size"], finetune["micro_batch_size"]
    _require(
        effective % micro == 0,
        f"finetune.effective_batch_size: expected a multiple of finetune.micro_batch_size ({micro}), got {effective}",
    )
    max_steps = finetune["max_steps"]
    _require(
        max_steps == -1 or max_steps >= 1, f"finetune.max_steps: expected -1 (run the epochs) or >= 1, got {max_steps}"
    )
    _checked_batch_size("evaluation.batch_size", config["evaluation"]["batch_size"])
    finetunes = [
        Finetune(model=m, data=d, rank=r, bits=b)
        for m in models
        for d in datasets
        for r in finetune["ranks"]
        for b in finetune["bits"]
    ]
    _require(len(finetunes) > 0, "models x datasets x finetune.ranks x finetune.bits: the study grid is empty")

    tasks = {
        alias: _resolve_task(alias, spec, languages, datasets) for alias, spec in config["evaluation"]["tasks"].items()
    }
    _check_vllm_bits(tasks, finetune["bits"], config["evaluation"]["quantize_base_like_training"])

    return Study(
        results_dir=results_dir,
        seed=seed,
        languages=languages,
        models=models,
        datasets=datasets,
        finetunes=finetunes,
        tasks=tasks,
        finetune_params={k: v for k, v in finetune.items() if k not in ("ranks", "bits")},
        evaluation_params={k: v for k, v in config["evaluation"].items() if k != "tasks"},
        tiny_model=config["tiny_model"],
        data_seeds=data_seeds,
        dataset_mirrors=mirrors,
        data_teachers=data_teachers,
    )
