"""The config checks before any job starts, in order: each config file read strictly (syntax, a key given twice), the
config against the schema (one line per error, naming the key path and what was expected), the schema's defaults
filled in, the study's cross-key rules (maple.config.study), the lm-eval task names. `checked_study` runs them all; the
workflow (common.smk) and `python workflow/scripts/check_config.py CONFIG` both call it."""

from __future__ import annotations

import copy
import difflib
import os
import re
from pathlib import Path

from maple.config.study import ConfigError, Study, resolve_study
from maple.hub.task_files import SHIPPED_TASKS_DIR, lm_eval_tasks_dir

WORKFLOW_DIR = Path(__file__).resolve().parents[3]
SCHEMA_FILE = WORKFLOW_DIR / "schemas" / "config.schema.yaml"


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


def _expected_keys(extra: list[str], known: set[str]) -> str:
    """What an unknown key should have been: the close matches, and the known keys (named where they are few)."""
    close = [match for key in extra for match in difflib.get_close_matches(key, sorted(known), n=1)]
    hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
    if len(known) <= 12:
        return f"{hint}expected one of {sorted(known)}"
    return f"{hint}expected one of the {len(known)} keys listed there in workflow/schemas/config.schema.yaml"


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
        return f"{where}: unknown key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}; " + _expected_keys(
            extra, known
        )
    if kind == "unevaluatedProperties" and expected is False and isinstance(value, dict):
        # A dataset's keys: the common ones and those of the branch (allOf: if backend ... then) its backend selects.
        known = set(schema.get("properties", {}))
        backend = value.get("backend")
        for branch in schema.get("allOf", []):
            if branch.get("if", {}).get("properties", {}).get("backend", {}).get("const") == backend:
                known |= set(branch.get("then", {}).get("properties", {}))
        extra = sorted(str(k) for k in value if k not in known)
        scope = f" for backend {backend!r}" if backend else ""
        keys = ", ".join(map(repr, extra))
        return f"{where}: unknown key{'s' if len(extra) > 1 else ''} {keys}{scope}; " + _expected_keys(extra, known)
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


def backend_keys(schema: dict) -> dict[str, set[str]]:
    """backend -> the keys of its branch of datasets.<name> (allOf: if backend ... then)."""
    branches = schema["properties"]["datasets"]["additionalProperties"]["allOf"]
    return {b["if"]["properties"]["backend"]["const"]: set(b["then"]["properties"]) for b in branches}


def with_defaults(config: dict, schema_file=SCHEMA_FILE) -> dict:
    """A copy of a schema-valid config with the schema's defaults filled in (as Snakemake's validate does), but for
    a dataset's backend keys: one the config leaves out stays out, and maple.data.settings gives it the same default.
    So the dataset's spec, the synth_data job's param, holds what the config says, and the model a dataset names as
    its teacher lends its revision and trust_remote_code where the dataset sets none (maple.config.study)."""
    import yaml
    from snakemake.utils import validate

    filled = copy.deepcopy(config)
    validate(filled, str(schema_file), set_default=True)
    own = backend_keys(yaml.safe_load(Path(schema_file).read_text(encoding="utf-8")))
    for name, block in filled["datasets"].items():
        given, backend = config["datasets"][name], own.get(block["backend"], set())
        filled["datasets"][name] = {k: v for k, v in block.items() if k in given or k not in backend}
    return copy.deepcopy(filled)  # no dict shared between the filled-in defaults


def checked_study(config, config_files=(), config_dir: str = ".", schema_file=SCHEMA_FILE) -> tuple[dict, Study]:
    """Every check, in order, then the resolved study: (the config with the schema's defaults, the Study). Raises
    ConfigError naming the key."""
    import yaml

    check_config(config, yaml.safe_load(Path(schema_file).read_text(encoding="utf-8")), config_files)
    config = with_defaults(config, schema_file)
    study = resolve_study(config, config_dir=config_dir)
    check_lm_eval_tasks(study, [SHIPPED_TASKS_DIR])
    return config, study
