"""The measured trainer: trl's SFTTrainer counting real and processed tokens per step, with length-grouped batches,
the compact LM head and the out-of-memory test hook (MAPLE_FAKE_OOM_ATTEMPTS, read here alone)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from maple.train.run_dirs import CHECKPOINT_MARKER

FAKE_OOM_ENV = "MAPLE_FAKE_OOM_ATTEMPTS"


class TokenMeter:
    """Counts the examples, micro-batches, real (non-padding) and processed tokens of every micro-batch a trainer
    trains on, and times the run; shared by the project's trainer and the benchmark's baseline so that both are
    measured the same way."""

    RUNNING = ("examples", "micro_batches", "real_tokens", "processed_tokens")

    def __init__(self):
        self.examples = self.micro_batches = self.real = self.processed = 0  # this process
        self.causal_pairs = self.loss_tokens = 0
        self.before = {key: 0 for key in self.RUNNING}  # from the checkpoint resumed from
        self.seconds_before = 0.0
        self.started = None

    def count(self, inputs: dict) -> None:
        """Add a micro-batch: padded rows (attention_mask) or one padding-free row of examples (position_ids)."""
        import torch

        if "attention_mask" in inputs:
            lengths = inputs["attention_mask"].sum(-1).flatten()
        else:  # padding-free: each example starts at position 0 (no pad_to_multiple_of, so no padding)
            positions = inputs["position_ids"].flatten()
            starts = (positions == 0).nonzero().flatten()
            lengths = torch.diff(starts, append=starts.new_tensor([positions.numel()]))
        self.examples += int(lengths.numel())
        self.micro_batches += 1
        self.real += int(lengths.sum())
        self.processed += int(inputs["input_ids"].numel())
        self.causal_pairs += int((lengths * (lengths + 1) // 2).sum())  # attended (query, key) pairs
        if "labels" in inputs:  # positions that predict a label (the response, with completion_only_loss)
            self.loss_tokens += int((inputs["labels"][..., 1:] != -100).sum())

    def start(self) -> None:
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return 0.0 if self.started is None else time.perf_counter() - self.started

    def _mine(self) -> dict:
        return {
            "examples": self.examples,
            "micro_batches": self.micro_batches,
            "real_tokens": self.real,
            "processed_tokens": self.processed,
        }

    def running(self) -> dict:
        """Totals over the whole training run, the resumed-from part included (for the log entries)."""
        return {
            **{k: self.before[k] + v for k, v in self._mine().items()},
            "train_seconds": round(self.seconds_before + self.seconds(), 4),
        }

    def resume_from(self, log_history: list[dict]) -> None:
        entries = [e for e in log_history if "real_tokens" in e]
        if entries:
            self.before = {key: int(entries[-1].get(key, 0)) for key in self.RUNNING}
            self.seconds_before = float(entries[-1].get("train_seconds", 0.0))

    def summary(self) -> dict:
        """Throughput of this process (not of a resumed-from run)."""
        seconds = self.seconds()
        return {
            **self._mine(),
            "useful_token_fraction": self.real / self.processed if self.processed else None,
            "real_tokens_per_second": self.real / seconds if seconds else None,
            "processed_tokens_per_second": self.processed / seconds if seconds else None,
        }


def measured(trainer_cls):
    """A subclass of a transformers Trainer class that counts tokens in every training step (TokenMeter), adds the
    running counts to each log entry, restores them when resuming, marks each finished checkpoint, and holds the
    out-of-memory test hook. It changes nothing in what is trained."""
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        def __init__(self, trainer):
            self.trainer = trainer

        def on_train_begin(self, args, state, control, **kwargs):
            self.trainer.meter.resume_from(state.log_history)
            self.trainer.meter.start()

        def on_save(self, args, state, control, **kwargs):
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                (ckpt / CHECKPOINT_MARKER).write_text(
                    json.dumps({"global_step": state.global_step, **self.trainer.meter.running()})
                )

    class Measured(trainer_cls):
        def __init__(self, *args, fake_oom: bool = False, **kwargs):
            super().__init__(*args, **kwargs)
            self.meter = TokenMeter()
            self.fake_oom = fake_oom
            self.add_callback(_Progress(self))

        def training_step(self, model, inputs, *args, **kwargs):
            if self.fake_oom:
                import torch

                raise torch.OutOfMemoryError(f"fake out-of-memory (test hook {FAKE_OOM_ENV})")
            self.meter.count(inputs)
            return super().training_step(model, inputs, *args, **kwargs)

        def log(self, logs, *args, **kwargs):
            if "loss" in logs or "train_loss" in logs:
                logs.update(self.meter.running())
            return super().log(logs, *args, **kwargs)

    Measured.__name__ = f"Measured{trainer_cls.__name__}"
    return Measured


class LengthGroupedBatches:
    """Training indices in effective batches of about equal length, the batches in random order.

    Each epoch: a permutation seeded by (seed, epoch) is cut into megabatches of `mega_batch_mult` effective batches,
    each sorted by length and cut into effective batches (transformers' get_length_grouped_indices); the full batches
    are then shuffled over the epoch, so that lengths (and what correlates with them: language, task) do not come in
    order, with the longest batch first (an out-of-memory shows at once) and a short last batch kept last (so that
    micro-batches never straddle two effective batches). A function of (seed, epoch) only, so a resumed run skips
    exactly the batches it had trained on."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, mega_batch_mult: int = 50):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.mega_batch_mult = mega_batch_mult
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        import torch
        from transformers.trainer_pt_utils import get_length_grouped_indices

        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        indices = get_length_grouped_indices(
            self.lengths, self.batch_size, mega_batch_mult=self.mega_batch_mult, generator=generator
        )
        batches = [indices[i : i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
        full = [b for b in batches if len(b) == self.batch_size]
        short = [b for b in batches if len(b) < self.batch_size]
        full = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
        if full:
            longest = max(range(len(full)), key=lambda i: max(self.lengths[j] for j in full[i]))
            full.insert(0, full.pop(longest))
        return iter([i for batch in full + short for i in batch])


@contextlib.contextmanager
def compact_lm_head():
    """Let trl's fused LM head score only the labelled positions (the response, with completion_only_loss) on every
    device: trl 1.16 does so on Triton devices only, and elsewhere scores every position (fixed tile shapes, for
    Neuron's compiler) and masks the result. Same loss and gradients; the LM head, a large part of a small model's
    step, then runs on the response tokens only. Patches trl.trainer.utils._use_triton, the name the fused head reads
    for that choice (the kernels keep their own); without that name (another trl) it does nothing."""
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None:
        yield
        return
    trl_utils._use_triton = lambda device: device.type in ("cpu", "cuda") or original(device)
    try:
        yield
    finally:
        trl_utils._use_triton = original


def maple_trainer_class():
    """trl's SFTTrainer, measured, with LengthGroupedBatches for batching length_grouped and the compact LM head."""
    from trl import SFTTrainer

    class MapleSFTTrainer(measured(SFTTrainer)):
        def __init__(self, *args, length_grouped: bool = False, **kwargs):
            self.length_grouped = length_grouped
            super().__init__(*args, **kwargs)

        def _get_train_sampler(self, train_dataset=None):
            dataset = self.train_dataset if train_dataset is None else train_dataset
            if not self.length_grouped:
                return super()._get_train_sampler(train_dataset)
            lengths = [len(ids) for ids in dataset["input_ids"]]
            return LengthGroupedBatches(
                lengths,
                self.args.train_batch_size * self.args.gradient_accumulation_steps,
                seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed,
            )

        def train(self, *args, **kwargs):
            with compact_lm_head():
                return super().train(*args, **kwargs)

    return MapleSFTTrainer


def peak_memory() -> dict:
    import resource

    import torch

    if torch.cuda.is_available():
        return {"peak_memory_bytes": int(torch.cuda.max_memory_allocated()), "peak_memory_kind": "cuda_max_allocated"}
    # ru_maxrss is in KiB on Linux; the whole process's peak, model loading included
    return {
        "peak_memory_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024,
        "peak_memory_kind": "cpu_peak_rss",
    }


def fake_oom_requested(attempt: int) -> bool:
    wanted = os.environ.get(FAKE_OOM_ENV, "")
    return str(attempt) in {a.strip() for a in wanted.split(",") if a.strip()}
