"""LoRA / QLoRA finetuning of one configuration with peft, bitsandbytes and trl's SFTTrainer.

bits 16: the base in bf16 (GPU with bf16) or fp32 (CPU); bits 8 / 4: the base loaded through bitsandbytes
(LLM.int8 / NF4 with double quantisation), i.e. QLoRA. The adapter directory is written atomically: trained in a
work directory beside it and renamed at the end, so a killed job never leaves a directory that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .prompts import format_prompt
from .records import read_jsonl

METRICS_FILE = "train_metrics.json"


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
    prompt_format: str = "plain"
    revision: str = "main"
    trust_remote_code: bool = False

    @property
    def grad_accumulation(self) -> int:
        if self.effective_batch_size % self.micro_batch_size:
            raise ValueError(
                f"finetune.effective_batch_size ({self.effective_batch_size}) must be a multiple of "
                f"micro_batch_size ({self.micro_batch_size})"
            )
        return self.effective_batch_size // self.micro_batch_size


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


def finetune(base_source: str, train_file: str, adapter_dir: str | os.PathLike, params: FinetuneParams) -> dict:
    """Train one LoRA adapter; returns the training metrics also written to adapter_dir/train_metrics.json."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, prepare_model_for_kbit_training
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    set_seed(params.seed)
    adapter_dir = Path(adapter_dir)
    work_dir = adapter_dir.with_name(adapter_dir.name + ".work")
    started = time.time()

    model, tokenizer = load_base(base_source, params.bits, params.revision, params.trust_remote_code)
    if params.bits != 16:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    dataset = Dataset.from_dict(to_prompt_completion(read_jsonl(train_file), params.prompt_format, tokenizer))

    lora = LoraConfig(
        r=params.rank,
        lora_alpha=params.rank * params.lora_alpha_per_rank,
        lora_dropout=params.lora_dropout,
        target_modules=list(params.target_modules),
        task_type="CAUSAL_LM",
    )
    on_gpu = device_kind() == "cuda"
    args = SFTConfig(
        output_dir=str(work_dir),
        num_train_epochs=params.epochs,
        max_steps=params.max_steps,
        per_device_train_batch_size=params.micro_batch_size,
        gradient_accumulation_steps=params.grad_accumulation,
        learning_rate=params.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=params.warmup_ratio,
        max_length=params.max_seq_length,
        completion_only_loss=True,
        bf16=compute_dtype() == torch.bfloat16,
        use_cpu=not on_gpu,
        optim="paged_adamw_8bit" if on_gpu and params.bits != 16 else "adamw_torch",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=params.seed,
        data_seed=params.seed,
        disable_tqdm=True,
        dataset_num_proc=None,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=lora)
    result = trainer.train()

    metrics = {
        "train_loss": result.training_loss,
        "global_step": trainer.state.global_step,
        "wall_seconds": time.time() - started,
        "log_history": trainer.state.log_history,
        "params": {**params.__dict__, "grad_accumulation": params.grad_accumulation},
        "base_model": base_source,
        "device": device_kind(),
    }
    tmp_dir = work_dir / "adapter"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    trainer.model.save_pretrained(tmp_dir)
    tokenizer.save_pretrained(tmp_dir)
    (tmp_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=1, default=str))
    if adapter_dir.exists():
        shutil.rmtree(adapter_dir)
    os.replace(tmp_dir, adapter_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    return metrics
