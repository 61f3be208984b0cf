"""LoRA / QLoRA finetuning of one configuration with peft, bitsandbytes and trl's SFTTrainer: fast, resumable,
measured.

bits 16: the base in bf16 (GPU with bf16) or fp32 (CPU); bits 8 / 4: the base loaded through bitsandbytes
(LLM.int8 / NF4 with double quantisation), i.e. QLoRA. Optimiser: paged 8-bit AdamW for QLoRA on a GPU, fused
(single-kernel) torch AdamW otherwise, CPU included. SDPA attention; gradient checkpointing on request.

Batching (`FinetuneParams.batching`), so that almost every processed token is a real one:
  length_grouped  micro-batches of examples of about the same length (LengthGroupedBatches: transformers'
                  length grouping, batches in shuffled order), padded to their longest; as many examples per
                  optimiser step as plain batching, so the learning dynamics are those of random batches. Best with
                  SDPA, whose attention cost stays per example.
  packed          trl's best-fit-decreasing packing into rows of max_seq_length, padding-free (position_ids mark
                  the examples, which never attend to each other); batch sizes then count packed rows. Best with a
                  varlen attention kernel (flash-attention) on a GPU; with SDPA the block-diagonal mask over a whole
                  micro-batch makes attention quadratic in its length (slow on CPU).
  padded          random micro-batches padded to their longest (the naive baseline).
The loss is on the response only (prompt tokens masked) unless completion_only_loss is off; trl's fused LM head then
computes logits for the response tokens only (compact_lm_head).

Micro-batch and accumulation: effective_batch_size is the target; the micro-batch is the largest divisor of it not
above micro_batch_size, and each retry after an out-of-memory failure (Snakemake `retries`, `attempt`) halves it
(micro_batch_for_attempt) and doubles the accumulation, so the effective batch stays the same.

Resumable and atomic: training runs in a work directory beside the adapter, `<adapter>.work/run-<fingerprint>/`,
keyed on a hash of everything that determines the result (params except the micro-batch and the checkpoint
interval, the train file's content, the base model's identity, library versions). Checkpoints are written there every
checkpoint_steps optimiser steps; a checkpoint counts only once its marker file is written after the save, so a save
cut short by a kill is never resumed from. A rerun (e.g. after Snakemake marked the killed job's output incomplete)
or an out-of-memory retry resumes from the newest complete checkpoint of the same fingerprint and discards any other
run directory; the data order is a function of (seed, epoch), so the resumed adapter equals an uninterrupted run's.
The final adapter is assembled inside the work directory and renamed onto the adapter path at the end, so a killed
job never leaves a directory that looks complete; the work directory is removed after the rename.

Metrics (adapter/train_metrics.json, for the report stage): the trainer's log history with, per step, the loss and
the running counts of examples, micro-batches, real and processed tokens and training seconds; for this process,
real and processed tokens per second and the useful-token fraction (real / processed); peak memory (CUDA: max
allocated; CPU: peak RSS of the process); wall and training seconds; the micro-batch, accumulation, attempt and every
earlier failed attempt of the run; the step resumed from.

Test hook: the environment variable MAPLE_FAKE_OOM_ATTEMPTS (comma-separated attempt numbers, e.g. "1") makes the
first training step of those attempts raise torch.OutOfMemoryError, as a real out-of-memory would; nothing else
reads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .prompts import format_prompt
from .provenance import file_sha256
from .records import read_jsonl

METRICS_FILE = "train_metrics.json"
CHECKPOINT_MARKER = "maple_checkpoint_complete.json"
FAKE_OOM_ENV = "MAPLE_FAKE_OOM_ATTEMPTS"
BATCHING = ("length_grouped", "packed", "padded")
# Params that change how fast a run goes (or how often it is saved) but not what it computes: they may differ
# between a killed run and the rerun that resumes it.
NOT_IN_FINGERPRINT = ("micro_batch_size", "checkpoint_steps")


@dataclass
class FinetuneParams:
    rank: int
    bits: int
    seed: int
    lora_alpha_per_rank: float = 2.0
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int = -1
    effective_batch_size: int = 16
    micro_batch_size: int = 16
    max_seq_length: int = 512
    warmup_ratio: float = 0.03
    batching: str = "length_grouped"
    completion_only_loss: bool = True
    gradient_checkpointing: bool = False
    checkpoint_steps: int = 50
    prompt_format: str = "plain"
    revision: str = "main"
    trust_remote_code: bool = False

    def __post_init__(self):
        if self.batching not in BATCHING:
            raise ValueError(f"finetune.batching: expected one of {BATCHING}, got {self.batching!r}")
        if self.micro_batch_size < 1 or self.effective_batch_size < 1:
            raise ValueError("finetune.micro_batch_size and effective_batch_size must be at least 1")

    @property
    def grad_accumulation(self) -> int:
        if self.effective_batch_size % self.micro_batch_size:
            raise ValueError(
                f"finetune.effective_batch_size ({self.effective_batch_size}) must be a multiple of "
                f"micro_batch_size ({self.micro_batch_size})"
            )
        return self.effective_batch_size // self.micro_batch_size


def micro_batch_for_attempt(effective_batch_size: int, micro_batch_size: int, attempt: int = 1) -> int:
    """The micro-batch of a (retry) attempt. Attempt 1: the largest divisor of the effective batch size not above
    micro_batch_size; each further attempt: the largest divisor not above half the previous attempt's. So each
    out-of-memory retry (at least) halves the micro-batch, and the accumulation effective_batch_size / micro makes up
    for it: the effective batch stays."""
    if effective_batch_size < 1 or micro_batch_size < 1 or attempt < 1:
        raise ValueError("effective_batch_size, micro_batch_size and attempt must be positive")

    def largest_divisor(cap: int) -> int:
        return max(d for d in range(1, max(1, cap) + 1) if effective_batch_size % d == 0)

    micro = largest_divisor(micro_batch_size)
    for _ in range(attempt - 1):
        micro = largest_divisor(micro // 2)
    return micro


def device_kind() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def compute_dtype():
    """bf16 where the device supports it, fp32 on CPU (CPU bf16 matmuls are slow and inexact)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def quantization_config(bits: int):
    from transformers import BitsAndBytesConfig

    if bits == 16:
        return None
    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    if bits == 4:
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype(),
        )
    raise ValueError(f"bits: expected 4, 8 or 16, got {bits!r}")


def load_base(source: str, bits: int, revision: str = "main", trust_remote_code: bool = False):
    """The base model as training and evaluation see it: quantised for bits 4/8, in the compute dtype otherwise."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        source,
        revision=revision,
        trust_remote_code=trust_remote_code,
        dtype=compute_dtype(),
        quantization_config=quantization_config(bits),
        attn_implementation="sdpa",
        device_map={"": device_kind()} if bits != 16 else None,
    )
    if bits == 16 and device_kind() == "cuda":
        model = model.to("cuda")
    return model, tokenizer


def to_prompt_completion(records: list[dict], prompt_format: str, tokenizer) -> dict[str, list[str]]:
    prompts = [format_prompt(r["instruction"], r["input"], prompt_format, tokenizer) for r in records]
    return {"prompt": prompts, "completion": [r["output"] for r in records]}


# --- resumable runs -------------------------------------------------------------------------------------------------


def _base_identity(source: str, revision: str) -> dict:
    """A local base: name, size and mtime of its files (cheap; a rebuilt model changes them). A hub id: id and
    revision."""
    if os.path.isdir(source):
        files = sorted(p for p in Path(source).rglob("*") if p.is_file())
        return {
            "path": os.path.abspath(source),
            "files": [[str(p.relative_to(source)), p.stat().st_size, p.stat().st_mtime_ns] for p in files],
        }
    return {"hub_id": source, "revision": revision}


def run_fingerprint(base_source: str, train_file: str | os.PathLike, params: FinetuneParams) -> str:
    """Hash of what determines a training run; a checkpoint is resumed only by a run with the same fingerprint."""
    from importlib.metadata import version

    fields = {k: v for k, v in asdict(params).items() if k not in NOT_IN_FINGERPRINT}
    key = {
        "params": fields,
        "train_sha256": file_sha256(train_file),
        "base": _base_identity(base_source, params.revision),
        "versions": {p: version(p) for p in ("torch", "transformers", "trl", "peft")},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def work_dir_for(adapter_dir: str | os.PathLike) -> Path:
    adapter_dir = Path(adapter_dir)
    return adapter_dir.with_name(adapter_dir.name + ".work")


def _checkpoint_step(path: Path) -> int:
    try:
        return int(path.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def prepare_run_dir(adapter_dir: str | os.PathLike, fingerprint: str) -> tuple[Path, Path | None]:
    """(run directory, newest complete checkpoint or None). Removes run directories of other fingerprints (stale:
    other params, data or base) and checkpoints whose save never finished."""
    work = work_dir_for(adapter_dir)
    run_dir = work / f"run-{fingerprint}"
    if work.exists():
        for other in work.iterdir():
            if other != run_dir:
                print(f"[maple] removing stale {other} (not this run's fingerprint {fingerprint})", flush=True)
                shutil.rmtree(other) if other.is_dir() else other.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    complete = []
    for ckpt in sorted(run_dir.glob("checkpoint-*"), key=_checkpoint_step):
        if (ckpt / CHECKPOINT_MARKER).is_file():
            complete.append(ckpt)
        else:
            print(f"[maple] removing incomplete checkpoint {ckpt}", flush=True)
            shutil.rmtree(ckpt)
    return run_dir, (complete[-1] if complete else None)


# --- measured trainer -------------------------------------------------------------------------------------------------


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


# --- the finetune -----------------------------------------------------------------------------------------------------


def sft_config(params: FinetuneParams, output_dir: str | os.PathLike):
    """trl's SFTConfig for these params: batching, loss masking, precision, optimiser, checkpoints."""
    import torch
    from trl import SFTConfig

    on_gpu = device_kind() == "cuda"
    packed = params.batching == "packed"
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=params.epochs,
        max_steps=params.max_steps,
        per_device_train_batch_size=params.micro_batch_size,
        gradient_accumulation_steps=params.grad_accumulation,
        learning_rate=params.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=params.warmup_ratio,  # a float below 1 is a ratio of the total steps
        max_length=params.max_seq_length,
        packing=packed,
        packing_strategy="bfd",
        padding_free=packed,
        pad_to_multiple_of=None,
        train_sampling_strategy="random",  # length_grouped: LengthGroupedBatches, in MapleSFTTrainer
        completion_only_loss=params.completion_only_loss,
        activation_checkpointing=params.gradient_checkpointing,  # transformers 5's name for gradient checkpointing
        activation_checkpointing_kwargs={"use_reentrant": False} if params.gradient_checkpointing else None,
        bf16=compute_dtype() == torch.bfloat16,
        use_cpu=not on_gpu,
        optim="paged_adamw_8bit" if on_gpu and params.bits != 16 else "adamw_torch_fused",
        logging_steps=1,
        save_strategy="steps" if params.checkpoint_steps > 0 else "no",
        save_steps=max(1, params.checkpoint_steps),
        save_total_limit=2,  # the newest may be cut short by a kill; the one before it is then resumed from
        report_to=[],
        seed=params.seed,
        data_seed=params.seed,
        disable_tqdm=True,
        dataset_num_proc=None,
    )


def build_trainer(
    base_source: str,
    train_file: str | os.PathLike,
    params: FinetuneParams,
    output_dir,
    fake_oom: bool = False,
    model=None,
    tokenizer=None,
):
    """The measured SFTTrainer for one finetune (model loaded, data formatted and tokenised). `model` and
    `tokenizer`: an already built base (the benchmark's random-init models) instead of loading base_source."""
    from datasets import Dataset
    from peft import LoraConfig, prepare_model_for_kbit_training
    from transformers import set_seed

    set_seed(params.seed)
    if model is None:
        model, tokenizer = load_base(base_source, params.bits, params.revision, params.trust_remote_code)
    if params.bits != 16:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=params.gradient_checkpointing)
    dataset = Dataset.from_dict(to_prompt_completion(read_jsonl(train_file), params.prompt_format, tokenizer))
    lora = LoraConfig(
        r=params.rank,
        lora_alpha=params.rank * params.lora_alpha_per_rank,
        lora_dropout=params.lora_dropout,
        target_modules=list(params.target_modules),
        task_type="CAUSAL_LM",
    )
    return maple_trainer_class()(
        model=model,
        args=sft_config(params, output_dir),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
        fake_oom=fake_oom,
        length_grouped=params.batching == "length_grouped",
    )


def finetune(
    base_source: str, train_file: str, adapter_dir: str | os.PathLike, params: FinetuneParams, attempt: int = 1
) -> dict:
    """Train one LoRA adapter, resuming from a complete checkpoint of the same run if there is one; returns the
    training metrics also written to adapter_dir/train_metrics.json."""
    import torch

    started = time.time()
    adapter_dir = Path(adapter_dir)
    work_dir = work_dir_for(adapter_dir)
    fingerprint = run_fingerprint(base_source, train_file, params)
    run_dir, resume_from = prepare_run_dir(adapter_dir, fingerprint)
    (run_dir / "params.json").write_text(json.dumps({"fingerprint": fingerprint, **asdict(params)}, indent=1))
    print(
        f"[maple] finetune attempt {attempt}: micro-batch {params.micro_batch_size} x accumulation "
        f"{params.grad_accumulation} = effective batch {params.effective_batch_size}; batching {params.batching}; "
        f"run {run_dir}; " + (f"resuming from {resume_from}" if resume_from else "no checkpoint to resume from"),
        flush=True,
    )

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer = build_trainer(base_source, train_file, params, run_dir, fake_oom=fake_oom_requested(attempt))
    this_attempt = {
        "attempt": attempt,
        "micro_batch_size": params.micro_batch_size,
        "grad_accumulation": params.grad_accumulation,
        "resumed_from_step": _checkpoint_step(resume_from) if resume_from else None,
    }
    attempts_file = run_dir / "attempts.json"  # earlier failed attempts of this run (Snakemake clears their logs)
    earlier = json.loads(attempts_file.read_text()) if attempts_file.exists() else []
    try:
        result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except torch.OutOfMemoryError as error:
        print(
            f"[maple] out of memory at micro-batch {params.micro_batch_size} (attempt {attempt}); a Snakemake "
            "retry halves the micro-batch and resumes from the last checkpoint",
            file=sys.stderr,
            flush=True,
        )
        failed = {
            **this_attempt,
            "error": f"{type(error).__name__}: {str(error)[:300]}",
            "global_step": trainer.state.global_step,
        }
        attempts_file.write_text(json.dumps(earlier + [failed], indent=1))
        raise
    train_seconds = trainer.meter.seconds()
    metrics = {
        "train_loss": result.training_loss,
        "global_step": trainer.state.global_step,
        "resumed_from_step": _checkpoint_step(resume_from) if resume_from else None,
        "attempt": attempt,
        "attempts": earlier + [this_attempt],
        "micro_batch_size": params.micro_batch_size,
        "grad_accumulation": params.grad_accumulation,
        "effective_batch_size": params.effective_batch_size,
        "wall_seconds": time.time() - started,
        "train_seconds": train_seconds,
        **trainer.meter.summary(),
        **peak_memory(),
        "log_history": trainer.state.log_history,
        "params": {**asdict(params), "grad_accumulation": params.grad_accumulation},
        "fingerprint": fingerprint,
        "base_model": base_source,
        "device": device_kind(),
        "dtype": str(compute_dtype()).replace("torch.", ""),
    }
    tmp_dir = work_dir / "adapter.tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    trainer.model.save_pretrained(tmp_dir)
    trainer.processing_class.save_pretrained(tmp_dir)
    (tmp_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=1, default=str))
    if adapter_dir.exists():
        shutil.rmtree(adapter_dir)
    os.replace(tmp_dir, adapter_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    return metrics
