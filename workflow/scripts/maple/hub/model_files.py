"""What a local model directory (models.<alias>.path, a local teacher or translator, a model this workflow builds or
converts) must hold for from_pretrained to load it: a config, weights (one file, or a sharded index whose shards are
all there) and tokenizer files. Preflight names what is missing in one line; the rules that make a model check their
own output the same way."""

from __future__ import annotations

import json
from pathlib import Path

CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "vocab.json",
    "vocab.txt",
    "tokenizer.tiktoken",
    "tekken.json",
)


def _missing_weights(directory: Path) -> str | None:
    if any((directory / name).is_file() for name in WEIGHT_FILES):
        return None
    for index_name in WEIGHT_INDEXES:
        index = directory / index_name
        if not index.is_file():
            continue
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return f"a readable weight_map in {index_name}"
        absent = [shard for shard in shards if not (directory / shard).is_file()]
        if absent:
            shown = ", ".join(absent[:3]) + (", ..." if len(absent) > 3 else "")
            return f"{len(absent)} of the {len(shards)} shards {index_name} names ({shown})"
        return None
    return f"weights ({' or '.join(WEIGHT_FILES)}, or a sharded {' / '.join(WEIGHT_INDEXES)} with its shards)"


def missing_model_files(directory) -> list[str]:
    """What the directory lacks of a loadable model and tokenizer ([]: nothing)."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        return ["the directory itself"]
    missing = []
    if not (directory / CONFIG_FILE).is_file():
        missing.append(CONFIG_FILE)
    weights = _missing_weights(directory)
    if weights:
        missing.append(weights)
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        missing.append(f"tokenizer files (one of {', '.join(TOKENIZER_FILES)})")
    return missing


def model_files_problem(key: str, directory) -> str | None:
    """One line naming the config key and what its directory lacks, or None."""
    missing = missing_model_files(directory)
    if not missing:
        return None
    return f"{key}: the model directory {str(directory)!r} is incomplete: missing {'; '.join(missing)}"


def require_model_files(key: str, directory) -> None:
    """For a rule that makes a model: its output directory must hold a whole model (else RuntimeError, one line)."""
    problem = model_files_problem(key, directory)
    if problem:
        raise RuntimeError(problem)
