"""A functional bitsandbytes check: an NF4 Linear4bit and an LLM.int8 Linear8bitLt forward on the device, each
against the same layer in bf16 (fp32 on a CPU). `import bitsandbytes` succeeds even where its CUDA library fails to
load (it falls back), so only a forward that runs and agrees shows that the quantised paths work there.

  python bench/bnb_check.py --device cuda   # first step of bench/gpu_check.sh

Prints one JSON line (versions, the library bitsandbytes loaded, each layer's relative error); exits 1 on a failure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

# NF4 keeps ~4 bits of each weight, LLM.int8 8: relative errors of a random layer's output stay well under these
TOLERANCE = {"linear4bit_nf4": 0.25, "linear8bitlt": 0.05}


VERSIONS = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "lm_eval",
    "bitsandbytes",
    "huggingface_hub",
    "tokenizers",
    "safetensors",
    "pyarrow",
    "fsspec",
    "numpy",
)


def versions() -> dict:
    """The installed versions of what the check imports (the carried wheels and the machine's own)."""
    from importlib import metadata

    found = {}
    for name in VERSIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    args = parser.parse_args(argv)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"ok": False, "error": "torch sees no CUDA device"}))
        return 1
    import bitsandbytes as bnb

    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    report = {
        "device": args.device,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "bitsandbytes": bnb.__version__,
        "bitsandbytes_backend": str(getattr(bnb.cextension, "BNB_BACKEND", "")),
    }
    # the native library bitsandbytes loaded; ErrorHandlerMockBNBNativeLibrary: it failed to load one (and fell back)
    native = getattr(bnb.cextension, "lib", None)
    report["bitsandbytes_library"] = {
        "class": type(native).__name__,
        "path": getattr(getattr(native, "_lib", None), "_name", None),
    }
    loaded = report["bitsandbytes_library"]["class"] != "ErrorHandlerMockBNBNativeLibrary"
    if args.device == "cuda":
        query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
        report["gpu"] = torch.cuda.get_device_name()
        report["nvidia_smi"] = subprocess.run(query, capture_output=True, text=True).stdout.strip()
    torch.manual_seed(0)
    reference = torch.nn.Linear(256, 128, bias=False, dtype=dtype)
    x = torch.randn(8, 256, dtype=dtype)
    expected = reference(x).float()
    layers = {
        "linear4bit_nf4": bnb.nn.Linear4bit(256, 128, bias=False, compute_dtype=dtype, quant_type="nf4"),
        "linear8bitlt": bnb.nn.Linear8bitLt(256, 128, bias=False, has_fp16_weights=False, threshold=6.0),
    }
    report["versions"] = versions()
    ok = True
    for name, layer in layers.items():
        try:
            if name == "linear4bit_nf4":
                layer.weight = bnb.nn.Params4bit(reference.weight.data.clone(), requires_grad=False, quant_type="nf4")
            else:
                layer.weight = bnb.nn.Int8Params(
                    reference.weight.data.clone(), requires_grad=False, has_fp16_weights=False
                )
            layer = layer.to(args.device)  # quantises the weights on the device
            with torch.no_grad():
                got = layer(x.to(args.device)).float().cpu()
            if args.device == "cuda":
                torch.cuda.synchronize()
            error = float(torch.linalg.vector_norm(got - expected) / torch.linalg.vector_norm(expected))
            passed = bool(torch.isfinite(got).all()) and error < TOLERANCE[name]
            report[name] = {"relative_error": error, "tolerance": TOLERANCE[name], "ok": passed}
        except Exception as exc:  # the point of the check: report which layer fails and how
            passed = False
            report[name] = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        ok = ok and passed
    report["ok"] = ok = ok and loaded
    print(json.dumps(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
