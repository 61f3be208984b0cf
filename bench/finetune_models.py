"""bench/finetune_throughput.py's arms and models: the shapes it builds (random-init 7B, smoke), the workflow's
finetune parameters, the model loading of each arm and the plain transformers Trainer baseline."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

ARMS = ("maple", "trainer_defaults", "trainer_same_micro")
DEFAULT_ARMS = ("maple", "trainer_defaults")
TRAINER_DEFAULT_MICRO_BATCH = 8  # transformers.TrainingArguments.per_device_train_batch_size
ARCHS = {
    # Llama-2-7B's shape (meta-llama/Llama-2-7b-hf config.json); random init, no weights needed
    "llama-2-7b": dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
    ),
    # the same architecture at a size a CPU trains in seconds: the GPU check's rehearsal (bench/gpu_check.sh)
    "llama-smoke": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=32000,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
    ),
}


def finetune_params(
    config_path: str,
    rank: int | None,
    bits: int,
    seed: int | None,
    epochs: float | None,
    max_steps: int | None,
    batching: str | None = None,
    overrides: dict | None = None,
):
    """FinetuneParams from a workflow config's finetune section (schema defaults for keys it leaves out), with the
    command line's overrides (max_seq_length, gradient_checkpointing, micro/effective batch size) on top."""
    import yaml
    from maple.train.params import FinetuneParams, micro_batch_for_attempt

    with open(config_path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    section = dict(config["finetune"])
    fields = set(FinetuneParams.__dataclass_fields__) - {"rank", "bits", "seed"}
    kwargs = {k: v for k, v in section.items() if k in fields}
    if epochs is not None:
        kwargs["epochs"] = epochs
    if max_steps is not None:
        kwargs["max_steps"] = max_steps
    if batching is not None:
        kwargs["batching"] = batching
    kwargs.update({k: v for k, v in (overrides or {}).items() if v is not None})
    params = FinetuneParams(
        rank=rank or section["ranks"][0], bits=bits, seed=config.get("seed", 1234) if seed is None else seed, **kwargs
    )
    params.micro_batch_size = micro_batch_for_attempt(params.effective_batch_size, params.micro_batch_size, 1)
    return params


def random_init_model(arch: str, tokenizer, device: str):
    import torch
    from maple.train.models import compute_dtype
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        **ARCHS[arch],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=compute_dtype(), attn_implementation="sdpa")
    return model


def load_model(args, params):
    """(model, tokenizer): the base at args.base, or a random-init model of args.arch's shape with its tokenizer."""
    from maple.train.models import load_base
    from transformers import AutoTokenizer

    if args.arch == "tiny":
        return load_base(args.base, params.bits)
    if params.bits != 16:
        return load_base(str(Path(args.model_cache) / args.arch), params.bits)
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return random_init_model(args.arch, tokenizer, args.device), tokenizer


def save_random_init(args, directory: Path) -> Path:
    """The random-init model of args.arch saved (bf16, with the tokenizer of args.base) for the arms to load quantised."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out = directory / args.arch
    model = random_init_model(args.arch, tokenizer, args.device)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def baseline_trainer(params, model, tokenizer, train_file: str, output_dir: str, micro_batch: int):
    """A plain transformers Trainer: prompt + response + EOS tokenised and truncated at max_seq_length, the default
    causal-LM padding collator, default TrainingArguments except what defines the training problem."""
    import torch
    from datasets import Dataset
    from maple.runtime.records import read_jsonl
    from maple.train.finetune import to_prompt_completion
    from maple.train.models import compute_dtype, device_kind
    from maple.train.params import micro_batch_for_attempt
    from maple.train.trainer import measured
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments, set_seed

    set_seed(params.seed)
    pc = to_prompt_completion(read_jsonl(train_file), params.prompt_format, tokenizer)
    texts = [p + c + tokenizer.eos_token for p, c in zip(pc["prompt"], pc["completion"])]
    dataset = Dataset.from_dict({"text": texts}).map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=params.max_seq_length),
        batched=True,
        remove_columns=["text"],
    )
    if params.bits != 16:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = get_peft_model(
        model,
        LoraConfig(
            r=params.rank,
            lora_alpha=params.rank * params.lora_alpha_per_rank,
            lora_dropout=params.lora_dropout,
            target_modules=list(params.target_modules),
            task_type="CAUSAL_LM",
        ),
    )
    micro = micro_batch_for_attempt(params.effective_batch_size, micro_batch, 1)
    args = TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=params.epochs,
        max_steps=params.max_steps,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=params.effective_batch_size // micro,
        learning_rate=params.learning_rate,
        seed=params.seed,
        bf16=compute_dtype() == torch.bfloat16,
        use_cpu=device_kind() != "cuda",
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
    )
    return measured(Trainer)(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
    )
