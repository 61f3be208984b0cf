"""Determinism: the same config run again gives byte-identical data files and, on CPU, identical adapter tensors.

The small run's data and both rank-4 adapters (LoRA and 4-bit QLoRA) are recomputed in a copy of it
(`--forcerun synth_data` with the adapters as targets: synth_data and the two finetunes, in new processes) and
compared with the originals. Nothing else runs (checked), so the test stays cheap.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import copy_run, run_snakemake

pytestmark = pytest.mark.slow

ADAPTERS = ("r4-q16", "r4-q4")


@pytest.fixture(scope="module")
def rerun(small_run, tmp_path_factory):
    src, config = small_run
    work = copy_run(src, tmp_path_factory.mktemp("determinism") / "run")
    started = time.time()
    targets = [f"results/adapters/tiny/demo/{name}" for name in ADAPTERS]
    # Targets right after --cores N: Snakemake's list-valued options (--configfile, --resources, --forcerun) would
    # take them as their own values.
    run_snakemake(work, "--cores", "2", *targets, "--resources", "gpu=1", "--forcerun", "synth_data", config=config)
    return src, work, started


def test_data_files_are_byte_identical(rerun):
    src, work, started = rerun
    files = sorted(p.relative_to(src) for p in (src / "results/data").rglob("*") if p.is_file())
    assert any(f.name == "train.jsonl" for f in files) and any(f.parent.name == "eval_mc" for f in files)
    for rel in files:
        assert (work / rel).stat().st_mtime > started, f"{rel} was not recomputed"
        assert (work / rel).read_bytes() == (src / rel).read_bytes(), f"{rel} differs between two runs"


@pytest.mark.parametrize("name", ADAPTERS)
def test_adapter_tensors_are_identical(rerun, name):
    import torch
    from safetensors.torch import load_file

    src, work, started = rerun
    first = src / "results/adapters/tiny/demo" / name
    second = work / "results/adapters/tiny/demo" / name
    assert (second / "adapter_model.safetensors").stat().st_mtime > started, "the adapter was not recomputed"
    a, b = load_file(first / "adapter_model.safetensors"), load_file(second / "adapter_model.safetensors")
    assert a.keys() == b.keys() and len(a) > 0
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{name}: tensors differ between two runs: {different[:5]}"
    # The LoRA config too, but for the order of target_modules: peft writes them from a set, in an order that
    # follows Python's per-process string hashing.
    configs = [json.loads((d / "adapter_config.json").read_text()) for d in (first, second)]
    for c in configs:
        c["target_modules"] = sorted(c["target_modules"])
    assert configs[0] == configs[1]


def test_nothing_but_the_data_and_the_adapters_was_recomputed(rerun):
    src, work, started = rerun
    for path in (work / "results").rglob("*"):
        # tracking/: the finetunes' TensorBoard events, written while they train (no output of a rule)
        if path.is_file() and path.relative_to(work).parts[1] not in ("data", "adapters", "tracking"):
            assert path.stat().st_mtime < started, f"{path.relative_to(work)} was recomputed"
