"""lm-eval task files as planning reads them: a YAML read without running its functions, its includes merged, the
shipped tasks and lm-eval's built-in ones (its task directory found without importing lm_eval) indexed by name; and
a task config written back as YAML, `!function`s kept."""

from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path

import yaml

SHIPPED_TASKS_DIR = Path(__file__).resolve().parents[3] / "resources" / "lm_eval_tasks"  # workflow/resources
FUNCTION_TAG = "!function "  # how read_task_yaml keeps a `!function utils.x` value: the string "!function utils.x"


class TaskSourceError(ValueError):
    """A task or dataset source cannot be resolved; the message names it."""


def lm_eval_tasks_dir() -> Path | None:
    """lm-eval's built-in task directory, found on sys.path without importing (or find_spec-ing) lm_eval."""
    for entry in sys.path:
        candidate = Path(entry or ".") / "lm_eval" / "tasks"
        if (candidate.parent / "__init__.py").is_file() and candidate.is_dir():
            return candidate.resolve()
    return None


class _TolerantLoader(yaml.SafeLoader):
    """safe_load that reads lm-eval's `!function x.y` as the string "!function x.y" (for indexing only)."""


_TolerantLoader.add_constructor("!function", lambda loader, node: FUNCTION_TAG + loader.construct_scalar(node))


class _TaskDumper(yaml.SafeDumper):
    """safe_dump that writes read_task_yaml's "!function x.y" strings back as `!function x.y` and text with line
    breaks double-quoted (its \\n kept visible, as lm-eval's own task files write prompts)."""


def _represent_str(dumper: yaml.SafeDumper, value: str):
    if value.startswith(FUNCTION_TAG):
        return dumper.represent_scalar("!function", value[len(FUNCTION_TAG) :])
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if "\n" in value else None)


_TaskDumper.add_representer(str, _represent_str)


def task_yaml_text(cfg: dict) -> str:
    """A task config as YAML that lm-eval reads back to the same config (keys in their order)."""
    text = yaml.dump(cfg, Dumper=_TaskDumper, sort_keys=False, allow_unicode=True, width=120)
    return re.sub(r"!function '([\w.]+)'", r"!function \1", text)  # the emitter quotes a tagged scalar


def read_task_yaml(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as f:
        cfg = yaml.load(f, Loader=_TolerantLoader)  # noqa: S506 (SafeLoader plus one string constructor)
    if not isinstance(cfg, dict):
        raise TaskSourceError(f"{path}: expected a YAML mapping")
    return cfg


def shipped_task_files(shipped_dir: str | os.PathLike) -> dict[str, Path]:
    """Task name -> file of every shipped task YAML (a file with a `task:` string) under shipped_dir."""
    found: dict[str, Path] = {}
    for path in sorted(Path(shipped_dir).rglob("*.yaml")):
        cfg = read_task_yaml(path)
        if isinstance(cfg.get("task"), str):
            found.setdefault(cfg["task"], path)
    return found


def resolve_include(value: str, base_dir: str | os.PathLike) -> Path:
    """An `include:` value as an absolute path: relative ones against the including file's directory."""
    path = Path(value) if Path(value).is_absolute() else Path(base_dir) / value
    if not path.is_file():
        raise TaskSourceError(f"include {value!r}: no file {path}")
    return path.resolve()


_TASK_LINE = re.compile(r"^task:\s*[\"']?([^\s\"'#\[\]]+)", re.MULTILINE)


def builtin_task_files(names, lm_eval_dir: str | os.PathLike) -> dict[str, Path]:
    """Task name -> the lm-eval YAML that defines it (its `task:` line), for the names asked for."""
    index = _builtin_index(str(lm_eval_dir))
    return {name: index[name] for name in dict.fromkeys(names) if name in index}


@functools.lru_cache(maxsize=4)
def _builtin_index(lm_eval_dir: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(Path(lm_eval_dir).rglob("*.yaml")):
        if "__pycache__" not in path.parts:
            for name in _TASK_LINE.findall(path.read_text(encoding="utf-8", errors="replace")):
                found.setdefault(name, path.resolve())
    return found


def plain_config(path: str | os.PathLike, _depth: int = 0) -> dict:
    """A task YAML merged with its includes without importing lm-eval, `!function` values kept as strings: enough
    to tell where a task's data comes from when planning, and what write_wrappers writes out."""
    if _depth > 10:
        raise TaskSourceError(f"{path}: includes nested too deep")
    path = Path(path)
    raw = read_task_yaml(path)
    includes = raw.pop("include", None) or []
    merged: dict = {}
    for include in [includes] if isinstance(includes, str) else includes:
        inc = plain_config(resolve_include(include, path.parent), _depth + 1)
        inc.pop("task_list", None)
        merged.update(inc)
    merged.update(raw)
    return merged


def merged_config(path: str | os.PathLike) -> dict:
    """A task YAML with its includes merged, as lm-eval reads it (functions left unresolved)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(path, resolve_func=False, recursive=True)
