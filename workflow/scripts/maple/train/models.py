"""Loading a base model for training and evaluation: quantised for QLoRA (bits 4 / 8) or in the compute dtype, through
hub_access, so that a source out of reach is one clear error naming it."""

from __future__ import annotations

from maple.hub.access import load_causal_lm, load_tokenizer


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
    tokenizer = load_tokenizer(source, revision=revision, trust_remote_code=trust_remote_code, kind="base tokenizer")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = load_causal_lm(
        source,
        kind="base model",
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
