"""What produced a result: content hashes of models and adapters, software versions, the workflow's git commit.

Nothing here reads the environment beyond versions and git: no token or other secret can reach a score file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from maple.hub.access import is_commit

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".model", ".txt")


def _update_with_file(digest, path: str | os.PathLike) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    _update_with_file(digest, path)
    return digest.hexdigest()


def hash_files(paths: list[Path], root: Path) -> str:
    """sha256 over (relative name, content) of the files, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode())
        _update_with_file(digest, path)
    return digest.hexdigest()


def directory_hash(directory: str | os.PathLike, suffixes=WEIGHT_SUFFIXES, exclude=()) -> str:
    root = Path(directory)
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix in suffixes and p.name not in exclude]
    return hash_files(files, root)


def adapter_hash(adapter_dir: str | os.PathLike) -> str:
    """Hash of the adapter weights and config: what determines the adapted model (not its logs or README).

    The config is hashed in a canonical form: peft writes `target_modules` (a set) in a different order in each
    process, which would give the same adapter a different hash in every run.
    """
    root = Path(adapter_dir)
    weights, config = root / "adapter_model.safetensors", root / "adapter_config.json"
    if not weights.exists() and not config.exists():
        raise FileNotFoundError(f"{adapter_dir}: no adapter_model.safetensors or adapter_config.json")
    digest = hashlib.sha256()
    if weights.exists():
        digest.update(hash_files([weights], root).encode())
    if config.exists():
        digest.update(canonical_adapter_config(config).encode())
    return digest.hexdigest()


def canonical_adapter_config(path: Path) -> str:
    config = json.loads(path.read_text(encoding="utf-8"))
    for key in ("target_modules", "modules_to_save", "exclude_modules"):
        if isinstance(config.get(key), list):
            config[key] = sorted(config[key])
    return json.dumps(config, sort_keys=True)


def model_fingerprint(source: str, config=None, revision: str | None = None) -> dict:
    """A local model: the sha256 of its files. A hub model: the commit it was loaded at: the commit hash
    transformers resolved where its config still carries one, else the revision when that is a commit (a pinned
    revision: transformers 5 dropped `_commit_hash`, and a commit loads exactly that commit's files)."""
    if os.path.isdir(source):
        return {"kind": "sha256", "value": directory_hash(source)}
    commit = getattr(config, "_commit_hash", None) if config is not None else None
    if commit is None and is_commit(revision):
        commit = revision
    return {"kind": "hub_commit", "value": commit}


def software_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("lm_eval", "transformers", "peft", "torch", "trl", "bitsandbytes", "datasets", "snakemake"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return versions


def workflow_commit() -> str | None:
    """The git commit of the workflow checkout this code runs from (None outside a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True
    )
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
