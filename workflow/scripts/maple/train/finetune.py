"""One LoRA / QLoRA finetune: the base loaded (maple.train.models), the data formatted, trl's SFTConfig for the params,
the measured trainer (maple.train.trainer) run in a resumable run directory (maple.train.run_dirs), the adapter renamed
into place at the end. docs/finetune.md, "How a finetune runs", says why each choice."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from maple.runtime.atomic import replacing
from maple.runtime.prompts import format_prompt
from maple.runtime.records import read_jsonl
from maple.track.finetune import tracking_callback
from maple.train.models import compute_dtype, device_kind, load_base, prepare_quantized_for_training
from maple.train.params import FinetuneParams
from maple.train.run_dirs import checkpoint_step, prepare_run_dir, run_fingerprint, work_dir_for
from maple.train.trainer import fake_oom_requested, maple_trainer_class, peak_memory

METRICS_FILE = "train_metrics.json"


def to_prompt_completion(records: list[dict], prompt_format: str, tokenizer) -> dict[str, list[str]]:
    prompts = [format_prompt(r["instruction"], r["input"], prompt_format, tokenizer) for r in records]
    return {"prompt": prompts, "completion": [r["output"] for r in records]}


# bitsandbytes' optimisers (finetune.optimizer) run on a GPU only; on a CPU a finetune uses this one.
CPU_OPTIMIZER = "adamw_torch_fused"


def optimizer_name(params: FinetuneParams, on_gpu: bool) -> str:
    """The optimiser the trainer gets: the config's finetune.optimizer on a GPU (paged only where it says so: a paged
    optimiser's state lives in CUDA managed memory, which max_memory_allocated does not count), CPU_OPTIMIZER on a
    CPU for the bitsandbytes ones."""
    if not on_gpu and "8bit" in params.optimizer:
        return CPU_OPTIMIZER
    return params.optimizer


def checkpointing_arguments(config_class, enabled: bool) -> dict:
    """Activation (gradient) checkpointing under the name this transformers' TrainingArguments has: transformers
    5.23 calls it activation_checkpointing (gradient_checkpointing is its deprecated alias), earlier releases (the GPU
    machine's 5.17) gradient_checkpointing only."""
    from dataclasses import fields

    name = (
        "activation_checkpointing"
        if "activation_checkpointing" in {f.name for f in fields(config_class)}
        else "gradient_checkpointing"
    )
    return {name: enabled, f"{name}_kwargs": {"use_reentrant": False} if enabled else None}


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
        **checkpointing_arguments(SFTConfig, params.gradient_checkpointing),
        bf16=compute_dtype() == torch.bfloat16,
        use_cpu=not on_gpu,
        optim=optimizer_name(params, on_gpu),
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
    from peft import LoraConfig
    from transformers import set_seed

    set_seed(params.seed)
    if model is None:
        model, tokenizer = load_base(base_source, params.bits, params.revision, params.trust_remote_code)
    if params.bits != 16:
        model = prepare_quantized_for_training(model, params.gradient_checkpointing)
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
        f"{torch.get_num_threads()} CPU threads; run {run_dir}; "
        + (f"resuming from {resume_from}" if resume_from else "no checkpoint to resume from"),
        flush=True,
    )

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer = build_trainer(base_source, train_file, params, run_dir, fake_oom=fake_oom_requested(attempt))
    tracked = {**asdict(params), "base_model": base_source}
    tracking = tracking_callback(adapter_dir, tracked, fingerprint, trainer, peak_memory)
    if tracking is not None:
        trainer.add_callback(tracking)
    this_attempt = {
        "attempt": attempt,
        "micro_batch_size": params.micro_batch_size,
        "grad_accumulation": params.grad_accumulation,
        "resumed_from_step": checkpoint_step(resume_from) if resume_from else None,
        # float sums split over threads: on a CPU another thread count gives another last bit
        "torch_threads": torch.get_num_threads(),
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
        "resumed_from_step": checkpoint_step(resume_from) if resume_from else None,
        "attempt": attempt,
        "attempts": earlier + [this_attempt],
        "micro_batch_size": params.micro_batch_size,
        "grad_accumulation": params.grad_accumulation,
        "effective_batch_size": params.effective_batch_size,
        "torch_threads": torch.get_num_threads(),
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
    with replacing(adapter_dir, tmp=work_dir / "adapter.tmp") as tmp_dir:
        trainer.model.save_pretrained(tmp_dir)
        trainer.processing_class.save_pretrained(tmp_dir)
        (tmp_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=1, default=str))
    shutil.rmtree(work_dir, ignore_errors=True)
    if tracking is not None:
        tracking.finished(adapter_dir, metrics)
    return metrics
