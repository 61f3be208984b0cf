"""Outputs written under a temporary name beside the target and renamed onto it at the end, so that a job killed
half-way never leaves a target that looks complete."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def replacing(path: str | os.PathLike, tmp: str | os.PathLike | None = None):
    """Yield a temporary path (default: `.<name>.tmp` beside `path`) to write a file or directory to; when the block
    ends without an error, rename it onto `path` (replacing what was there); after an error, remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tmp) if tmp is not None else path.with_name(f".{path.name}.tmp")
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)  # os.replace cannot replace a non-empty directory
    os.replace(tmp, path)


def write_text(path: str | os.PathLike, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj, default=None, indent: int | None = 1) -> None:
    """`default` serialises what JSON cannot, as in json.dumps."""
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, default=default))
