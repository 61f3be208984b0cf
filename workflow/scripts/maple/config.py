"""Cross-key checks of a schema-valid config, and the study grid resolved once into plain records.

The JSON schema (workflow/schemas/config.schema.yaml) checks types, ranges and unknown keys; this module checks what
a schema cannot: names that must refer to each other, paths that must exist, a grid that must not be empty. Each
error names the key and what was expected, and is raised before any job starts.

It also holds the checks that run before the schema: the config files read with a YAML loader that rejects a key
given twice (yaml.safe_load silently keeps the last), and the schema errors turned into one line per error that
names the key path and what the schema expects (jsonschema's own message dumps the whole schema and instance).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

if __package__:
    from .task_sources import mirror_data_spec
else:  # run as a script (python workflow/scripts/maple/config.py CONFIG): its directory is on sys.path
    from task_sources import mirror_data_spec

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
    # dataset -> the seed of its data (datasets.<name>.seed, default: the global seed). Kept apart from `seed` so that
    # a new data sample reruns that data and what follows, not the tiny model build.
    data_seeds: dict[str, int] = field(default_factory=dict)
    # allow_missing: only these (model, variant, task) evaluations are part of the run (None: all of the grid).
    finished_evaluations: frozenset | None = None
    # hub dataset id -> local mirror directory (dataset_mirrors; maple.task_sources).
    dataset_mirrors: dict[str, str] = field(default_factory=dict)

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
    sources = [k for k in ("hub_id", "path", "build") if k in spec]
    _require(len(sources) == 1, f"models.{alias}: give exactly one of hub_id, path or build (got {sources or 'none'})")
    if "path" in spec:
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
        revision=spec.get("revision", "main"),
        trust_remote_code=bool(spec.get("trust_remote_code", False)),
        prompt_format=spec.get("prompt_format", "plain"),
        target_modules=tuple(spec.get("target_modules") or finetune.get("target_modules", ["q_proj", "v_proj"])),
        build=spec.get("build"),
    )


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

    seed = int(config.get("seed", 1234))
    mirrors = dict(config.get("dataset_mirrors") or {})
    datasets, data_seeds = {}, {}
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

    for key in ("ranks", "bits"):
        _require(len(finetune[key]) > 0, f"finetune.{key}: expected a non-empty list")
    effective, micro = finetune.get("effective_batch_size", 16), finetune.get("micro_batch_size", 16)
    _require(
        effective % micro == 0,
        f"finetune.effective_batch_size: expected a multiple of finetune.micro_batch_size ({micro}), got {effective}",
    )
    max_steps = finetune.get("max_steps", -1)
    _require(
        max_steps == -1 or max_steps >= 1, f"finetune.max_steps: expected -1 (run the epochs) or >= 1, got {max_steps}"
    )
    batch_size = config["evaluation"].get("batch_size", "auto")
    _require(
        not isinstance(batch_size, str) or re.fullmatch(r"auto(:\d+)?", batch_size) is not None,
        f"evaluation.batch_size: expected an integer >= 1, 'auto' or 'auto:N', got {batch_size!r}",
    )
    _require(
        not isinstance(batch_size, int) or batch_size >= 1,
        f"evaluation.batch_size: expected an integer >= 1, 'auto' or 'auto:N', got {batch_size!r}",
    )
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
        tiny_model=config.get("tiny_model", {}),
        data_seeds=data_seeds,
        dataset_mirrors=mirrors,
    )


# --- Before the schema: the config files themselves --------------------------------------------------------------


def _key_path(parts) -> str:
    """['finetune', 'ranks', 0] -> 'finetune.ranks[0]'; [] -> '(top level)'."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def load_yaml_strict(path: str | os.PathLike):
    """A config file as yaml.safe_load reads it, but a key given twice in one mapping (safe_load silently keeps the
    last: a duplicate model alias would drop a model) or a syntax error is a ConfigError naming file, line and key."""
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        detail = " ".join(str(x) for x in (error.context, error.problem) if x)
        raise ConfigError(f"{path}{where}: not valid YAML: {detail}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None

    def walk(node, parts):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is not None and key != "<<":
                    if key in seen:
                        raise ConfigError(
                            f"{path}, line {key_node.start_mark.line + 1}: {_key_path(parts + [key])}: duplicate key "
                            f"{key!r} (first given on line {seen[key]}); expected each key once in "
                            f"{_key_path(parts)}"
                        )
                    seen[key] = key_node.start_mark.line + 1
                walk(value_node, parts + [key])
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, parts + [index])

    if root is not None:
        walk(root, [])
    return yaml.safe_load(text)


_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def _python_type(value) -> str:
    if value is None:
        return "null"
    # bool before int: True is an int too
    for kind, name in (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (list, "a list"),
        (dict, "a mapping"),
    ):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_schema_error(error) -> str:
    """One line for a jsonschema ValidationError: the key path and what the schema expects there."""
    parts = list(error.absolute_path)
    kind, expected, value, schema = error.validator, error.validator_value, error.instance, error.schema
    if "propertyNames" in error.absolute_schema_path:
        # The instance is the offending key itself; the path is the mapping that holds it.
        what = schema.get("description") if isinstance(schema, dict) else None
        rule = what or (f"a name matching {expected}" if kind == "pattern" else error.message)
        return f"{_key_path(parts)}: {value!r} is not an allowed name; expected {rule}"
    where = _key_path(parts)
    if kind == "additionalProperties" and expected is False:
        known = set(schema.get("properties", {}))
        extra = sorted(str(k) for k in value if k not in known)
        return (
            f"{where}: unknown key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}; "
            f"expected one of {sorted(known)}"
        )
    if kind == "required":
        missing = [k for k in expected if k not in value]
        return f"{where}: missing required key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
    if kind == "type":
        types = expected if isinstance(expected, list) else [expected]
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
        return f"{where}: expected {names}, got {_python_type(value)} ({_short(value)})"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[kind]
        return f"{where}: expected a value {op} {expected}, got {_short(value)}"
    if kind == "enum":
        return f"{where}: expected one of {expected}, got {_short(value)}"
    if kind == "const":
        return f"{where}: expected {expected!r}, got {_short(value)}"
    if kind == "pattern":
        what = schema.get("description") if isinstance(schema, dict) else None
        return f"{where}: expected {what or f'a string matching {expected}'}, got {_short(value)}"
    if kind in ("minItems", "maxItems"):
        bound = "at least" if kind == "minItems" else "at most"
        return f"{where}: expected a list of {bound} {expected} item{'s' if expected != 1 else ''}, got {_short(value)}"
    if kind in ("minProperties", "maxProperties"):
        bound = "at least" if kind == "minProperties" else "at most"
        return f"{where}: expected {bound} {expected} entr{'ies' if expected != 1 else 'y'}, got {_short(value)}"
    if kind == "uniqueItems":
        return f"{where}: expected no repeated items, got {_short(value)}"
    if kind == "oneOf":
        choices = [s.get("required") for s in expected if isinstance(s, dict)]
        if all(isinstance(c, list) and len(c) == 1 for c in choices) and isinstance(value, dict):
            keys = [c[0] for c in choices]
            present = [k for k in keys if k in value]
            return (
                f"{where}: expected exactly one of {', '.join(keys)}, got {', '.join(present) if present else 'none'}"
            )
    return f"{where}: {error.message}"


def schema_errors(config, schema: dict) -> list[str]:
    """Every schema error of the config, one line each, sorted by key path (empty: the config is schema-valid)."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    return list(dict.fromkeys(describe_schema_error(e) for e in errors))


def check_config(config, schema: dict, config_files=()) -> None:
    """The checks before any job starts, in order: each config file on its own (syntax, duplicate keys), the
    merged config against the schema (every error, one line each). Raises ConfigError."""
    for path in config_files:
        load_yaml_strict(path)
    if not isinstance(config, dict):
        raise ConfigError(f"(top level): expected a mapping of keys, got {_python_type(config)}")
    problems = schema_errors(config, schema)
    if problems:
        head = "1 error" if len(problems) == 1 else f"{len(problems)} errors"
        raise ConfigError(f"{head} against workflow/schemas/config.schema.yaml:\n  " + "\n  ".join(problems[:20]))


# --- lm-eval task names, read as text (planning must not import lm-eval) -------------------------------------------

_TASK_LINE = re.compile(r"^(?:task|group|tag):\s*[\"']?([^\s\"'#\[\]]+)", re.MULTILINE)


def lm_eval_tasks_dir() -> Path | None:
    """lm-eval's built-in task directory, found on sys.path without importing (or find_spec-ing) lm_eval."""
    for entry in sys.path:
        candidate = Path(entry or ".") / "lm_eval" / "tasks"
        if (candidate.parent / "__init__.py").is_file() and candidate.is_dir():
            return candidate
    return None


def lm_eval_task_names(directories) -> set[str]:
    """Task, group and tag names from the `task:` / `group:` / `tag:` lines of the YAML files under directories."""
    names: set[str] = set()
    for directory in directories:
        for path in Path(directory).rglob("*.yaml"):
            names.update(_TASK_LINE.findall(path.read_text(encoding="utf-8", errors="replace")))
    return names


def check_lm_eval_tasks(study: Study, extra_dirs=()) -> None:
    """Every lm-eval task name a `source: lm_eval` task resolves to exists in lm-eval or in extra_dirs (the task
    YAMLs this repo ships), so that a typo stops the run now rather than after the finetunes."""
    wanted = {
        (t.alias, lang, name)
        for t in study.tasks.values()
        if t.source == "lm_eval"
        for lang, name in t.lm_eval_names.items()
    }
    if not wanted:
        return
    builtin = lm_eval_tasks_dir()
    if builtin is None:
        return  # lm-eval not installed here: the evaluation jobs will say so
    known = lm_eval_task_names([builtin, *extra_dirs])
    unknown = sorted(w for w in wanted if w[2] not in known)
    if unknown:
        alias, lang, name = unknown[0]
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise ConfigError(
            f"evaluation.tasks.{alias}.lm_eval_task: resolves to {name!r} for language {lang!r}{more}; expected a task "
            f"lm-eval knows (lm_eval/tasks or workflow/resources/lm_eval_tasks)"
        )


if __name__ == "__main__":
    # python workflow/scripts/maple/config.py CONFIG.yaml: every check of the workflow, offline, without Snakemake.
    import yaml as _yaml

    _schema_file = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"
    try:
        _config = load_yaml_strict(sys.argv[1])
        check_config(_config, _yaml.safe_load(_schema_file.read_text(encoding="utf-8")))
        _study = resolve_study(_config, config_dir=os.getcwd())
        check_lm_eval_tasks(_study, [Path(__file__).resolve().parents[2] / "resources" / "lm_eval_tasks"])
    except ConfigError as _error:
        sys.exit(f"Invalid config: {_error}")
    print(f"{sys.argv[1]}: valid ({len(_study.finetunes)} finetunes, {len(_study.evaluations())} evaluation jobs)")
