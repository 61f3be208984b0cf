"""Finetuning: batching that wastes almost no token, resuming after a kill, the micro-batch halved by out-of-memory
retries, and the run's fingerprint (maple.train.finetune, workflow/rules/finetune.smk).

The Snakemake tests run the finetune rule of the reduced demo (tests/conftest.py small_config, rank 4, bits 16) on
copies of one build of its tiny model and data.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, SNAKEMAKE, copy_run, planned_jobs, run_snakemake, small_config, write_config
from maple.train.params import FinetuneParams, micro_batch_for_attempt
from maple.train.run_dirs import CHECKPOINT_MARKER, prepare_run_dir, run_fingerprint
from maple.train.trainer import FAKE_OOM_ENV, LengthGroupedBatches
from test_tracking import scalars

ADAPTER = "results/adapters/tiny/demo/r4-q16"


def run_args(*targets: str) -> tuple[str, ...]:
    """Snakemake's options and targets in an order its parser takes (--configfile and --resources take lists)."""
    return ("--cores", "2", *targets, "--resources", "gpu=1")


def finetune_config(**finetune) -> dict:
    config = small_config()
    config["finetune"].update(ranks=[4], bits=[16], **finetune)
    return config


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """The small config's tiny model and train data, built once."""
    work = tmp_path_factory.mktemp("finetune-base")
    config = write_config(work, finetune_config())
    run_snakemake(work, *run_args("results/models/tiny", "results/data/demo/train.jsonl"), config=config)
    return work


def fresh_run(base_run: Path, dest: Path, **finetune) -> tuple[Path, Path]:
    work = copy_run(base_run, dest)
    return work, write_config(work, finetune_config(**finetune))


# --- micro-batch, batching, fingerprint: no training -----------------------------------------------------------------


def test_each_attempt_halves_the_micro_batch_and_keeps_the_effective_batch():
    assert [micro_batch_for_attempt(16, 16, a) for a in (1, 2, 3, 4, 5, 6)] == [16, 8, 4, 2, 1, 1]
    assert [micro_batch_for_attempt(48, 16, a) for a in (1, 2, 3)] == [16, 8, 4]
    # not a power of two: the largest divisor of the effective batch not above half the previous micro-batch
    assert [micro_batch_for_attempt(12, 16, a) for a in (1, 2, 3)] == [12, 6, 3]
    assert [micro_batch_for_attempt(24, 10, a) for a in (1, 2, 3)] == [8, 4, 2]
    assert micro_batch_for_attempt(10, 4) == 2
    for effective, micro in ((16, 16), (48, 16), (12, 16), (10, 4)):
        for attempt in (1, 2, 3):
            assert effective % micro_batch_for_attempt(effective, micro, attempt) == 0


def test_length_grouped_batches_waste_few_tokens_in_random_order():
    import random

    rng = random.Random(0)
    lengths = [rng.randint(33, 70) for _ in range(840)]  # the demo's spread of example lengths
    sampler = LengthGroupedBatches(lengths, batch_size=16, seed=1234)
    first = list(sampler)
    assert sorted(first) == list(range(len(lengths))), "every example exactly once per epoch"
    assert list(sampler) == first, "a function of (seed, epoch): a resumed run sees the same order"
    batches = [first[i : i + 16] for i in range(0, len(first), 16)]
    real = sum(lengths[i] for b in batches for i in b)
    processed = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert real / processed >= 0.97
    maxima = [max(lengths[i] for i in b) for b in batches]
    assert maxima[0] == max(lengths), "the longest batch comes first (an out-of-memory shows at once)"
    assert maxima[1:] != sorted(maxima[1:]) and maxima[1:] != sorted(maxima[1:], reverse=True), (
        "batch lengths come in random order, not sorted"
    )
    sampler.set_epoch(1)
    assert list(sampler) != first, "another order each epoch"
    assert list(LengthGroupedBatches(lengths, 16, seed=99)) != first


def test_a_run_resumes_only_its_own_complete_checkpoints(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text('{"id": "1"}\n')
    params = FinetuneParams(rank=4, bits=16, seed=1)
    fingerprint = run_fingerprint("some/hub-model", train, params)
    # what does not change the result does not change the fingerprint; data and hyperparameters do
    assert (
        run_fingerprint(
            "some/hub-model", train, FinetuneParams(rank=4, bits=16, seed=1, micro_batch_size=4, checkpoint_steps=7)
        )
        == fingerprint
    )
    assert (
        run_fingerprint("some/hub-model", train, FinetuneParams(rank=4, bits=16, seed=1, learning_rate=1e-3))
        != fingerprint
    )
    assert run_fingerprint("other/model", train, params) != fingerprint
    train.write_text('{"id": "2"}\n')
    assert run_fingerprint("some/hub-model", train, params) != fingerprint

    adapter = tmp_path / "r4-q16"
    work = adapter.with_name("r4-q16.work")
    stale = work / "run-0123456789abcdef" / "checkpoint-40"  # another fingerprint: other params or data
    stale.mkdir(parents=True)
    (stale / CHECKPOINT_MARKER).write_text("{}")
    run_dir = work / f"run-{fingerprint}"
    for step, complete in ((10, True), (20, True), (30, False)):  # 30: its save was cut short
        (run_dir / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (run_dir / f"checkpoint-{step}" / CHECKPOINT_MARKER).write_text("{}")
    got_dir, resume = prepare_run_dir(adapter, fingerprint)
    assert got_dir == run_dir and resume == run_dir / "checkpoint-20"
    assert not stale.parent.exists() and not (run_dir / "checkpoint-30").exists()
    assert (run_dir / "checkpoint-10").exists()
    assert prepare_run_dir(adapter, "f" * 16)[1] is None and not run_dir.exists()


# --- the rule, killed and rerun; out of memory and retried ------------------------------------------------------------


def start_snakemake(work: Path, config: Path, log: Path) -> subprocess.Popen:
    """Snakemake in its own process group, so that the test can kill it together with its job."""
    cmd = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(config),
        *run_args(ADAPTER),
    ]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def complete_checkpoints(work: Path) -> list[Path]:
    markers = (work / f"{ADAPTER}.work").glob(f"run-*/checkpoint-*/{CHECKPOINT_MARKER}")
    return sorted((m.parent for m in markers), key=lambda p: int(p.name.split("-")[1]))


def adapter_tensors(adapter: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(adapter / "adapter_model.safetensors")


@pytest.mark.slow
def test_a_killed_finetune_resumes_from_its_last_checkpoint(base_run, tmp_path):
    import torch
    from maple.train.finetune import finetune

    work, config = fresh_run(base_run, tmp_path / "run", epochs=2, checkpoint_steps=2)  # 9 steps per epoch
    proc = start_snakemake(work, config, tmp_path / "killed.out")
    deadline = time.time() + 300
    while not complete_checkpoints(work):
        assert proc.poll() is None, (tmp_path / "killed.out").read_text()[-3000:]
        assert time.time() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and its job, as a crash or the OOM killer would
    proc.wait()
    time.sleep(1)
    assert not (work / ADAPTER).exists(), "the killed finetune ended before the kill, or left a partial adapter"
    saved = complete_checkpoints(work)[-1]
    saved_step = int(saved.name.split("-")[1])
    assert 2 <= saved_step < 18
    # a save cut short by the kill (no marker) is never resumed from, nor a run with another fingerprint
    (saved.parent / "checkpoint-17").mkdir()
    (saved.parent / "checkpoint-17" / "trainer_state.json").write_text("{}")
    other = work / f"{ADAPTER}.work" / "run-0000000000000000" / "checkpoint-16"
    other.mkdir(parents=True)
    (other / CHECKPOINT_MARKER).write_text("{}")

    run_snakemake(work, "--unlock", "--cores", "1", config=config)
    assert planned_jobs(work, "--cores", "1", ADAPTER, config=config) == {"finetune": 1}, (
        "the killed finetune is not planned again"
    )
    run_snakemake(work, "--rerun-incomplete", *run_args(ADAPTER), config=config)

    metrics = json.loads((work / ADAPTER / "train_metrics.json").read_text())
    log = (work / "logs/finetune/tiny/demo/r4-q16.log").read_text()
    assert f"resuming from {saved.relative_to(work)}" in log
    assert metrics["resumed_from_step"] == saved_step and metrics["global_step"] == 18
    steps = [e["step"] for e in metrics["log_history"] if "loss" in e]
    assert steps == list(range(1, 19)), "the log history continues the killed run's steps"
    resumed = [e for e in metrics["log_history"] if "loss" in e and e["step"] > saved_step]
    assert metrics["real_tokens"] == resumed[-1]["real_tokens"] - next(
        e["real_tokens"] for e in metrics["log_history"] if e.get("step") == saved_step
    ), "tokens of this run only"
    assert not (work / f"{ADAPTER}.work").exists(), "the work directory is removed once the adapter is in place"
    # TensorBoard: the resumed run continues the killed run's curve; what the killed job logged after its checkpoint
    # is dropped (a purge at the resumed step), so that every step shows once, with the value the log history holds
    loss = scalars(work / "results/tracking/tensorboard/tiny/demo-r4-q16")["train/loss"]
    assert [step for step, _ in loss] == list(range(1, 19))
    history = {e["step"]: e["loss"] for e in metrics["log_history"] if "loss" in e}
    assert [value for _, value in loss] == pytest.approx([history[step] for step in range(1, 19)], rel=1e-6)

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(work / "results/models/tiny"), work / ADAPTER
    )
    assert model.peft_config["default"].r == 4

    # The resumed adapter is the one an uninterrupted run of the same params gives (same data order, optimiser and
    # scheduler state, RNG): resuming changes nothing in the result. The comparison runs at the job's thread count
    # (float sums are split over threads: the killed and the resumed job had the same --cores), whatever count this
    # test process has; and one attempt, at the configured micro-batch (a retry's halved one sums otherwise too).
    assert [(a["attempt"], a["micro_batch_size"]) for a in metrics["attempts"]] == [(1, 16)], metrics["attempts"]
    assert f"{metrics['torch_threads']} CPU threads" in log
    params = {k: v for k, v in metrics["params"].items() if k != "grad_accumulation"}
    before = torch.get_num_threads()
    torch.set_num_threads(metrics["torch_threads"])
    try:
        uninterrupted = finetune(
            str(work / "results/models/tiny"),
            str(work / "results/data/demo/train.jsonl"),
            tmp_path / "uninterrupted",
            FinetuneParams(**{**params, "checkpoint_steps": 0}),
        )
    finally:
        torch.set_num_threads(before)
    assert uninterrupted["global_step"] == 18 and uninterrupted["torch_threads"] == metrics["torch_threads"]
    a, b = adapter_tensors(work / ADAPTER), adapter_tensors(tmp_path / "uninterrupted")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_out_of_memory_retry_halves_the_micro_batch_and_keeps_the_effective_batch(base_run, tmp_path, monkeypatch):
    work, config = fresh_run(
        base_run, tmp_path / "run", max_steps=3, effective_batch_size=16, micro_batch_size=16, oom_retries=1
    )
    monkeypatch.setenv(FAKE_OOM_ENV, "1")  # the first attempt fails as out of memory would (test hook)
    out = run_snakemake(work, *run_args(ADAPTER), config=config)
    assert "Trying to restart job" in out.stdout + out.stderr
    metrics = json.loads((work / ADAPTER / "train_metrics.json").read_text())
    first, second = metrics["attempts"]
    assert (first["attempt"], first["micro_batch_size"], first["grad_accumulation"]) == (1, 16, 1)
    assert first["error"].startswith("OutOfMemoryError") and first["global_step"] == 0
    assert (second["attempt"], second["micro_batch_size"], second["grad_accumulation"]) == (2, 8, 2)
    assert (metrics["attempt"], metrics["micro_batch_size"], metrics["grad_accumulation"]) == (2, 8, 2)
    assert metrics["effective_batch_size"] == 16 and metrics["global_step"] == 3
    log = (work / "logs/finetune/tiny/demo/r4-q16.log").read_text()  # the retry's log
    assert "attempt 2: micro-batch 8 x accumulation 2 = effective batch 16" in log
    # each step trained on 16 examples in 2 micro-batches of 8
    assert [(e["examples"], e["micro_batches"]) for e in metrics["log_history"] if "loss" in e] == [
        (16, 2),
        (32, 4),
        (48, 6),
    ]
    assert metrics["useful_token_fraction"] >= 0.95
