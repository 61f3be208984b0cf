"""Loading a base model for training and evaluation: quantised for QLoRA (bits 4 / 8) or in the compute dtype, through
hub_access, so that a source out of reach is one clear error naming it; and the preparation of a quantised base for
training without peft's fp32 upcast."""

from __future__ import annotations

import logging

from maple.hub.access import load_causal_lm, load_tokenizer

# bitsandbytes' LLM.int8 matmul logs this on every call whose input is not fp16 (our bf16 / fp32 activations): it
# quantises a float16 copy of the input, as documented, so the line says nothing a run needs to see.
INT8_CAST_LOGGER = "bitsandbytes.autograd._functions"
INT8_CAST_MESSAGE = "inputs will be cast from"


class _DropInt8CastWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return INT8_CAST_MESSAGE not in record.getMessage()


def silence_int8_cast_warning() -> None:
    """Drop bitsandbytes' per-matmul "inputs will be cast from ... to float16" warning (that one message only)."""
    logger = logging.getLogger(INT8_CAST_LOGGER)
    if not any(isinstance(f, _DropInt8CastWarning) for f in logger.filters):
        logger.addFilter(_DropInt8CastWarning())


def device_kind() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def compute_dtype():
    """bf16 where the device supports it, fp32 on CPU (CPU bf16 matmuls are slow and inexact)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def quantization_config(bits: int, dtype=None):
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
            bnb_4bit_compute_dtype=dtype or compute_dtype(),
        )
    raise ValueError(f"bits: expected 4, 8 or 16, got {bits!r}")


def load_arguments(bits: int, device: str | None = None, dtype=None) -> dict:
    """What from_pretrained gets for a base at these bits: the compute dtype, the quantisation and a device_map that
    places every weight on the device while loading (no CPU copy moved over afterwards), at every bit-width."""
    dtype = dtype or compute_dtype()
    return {
        "dtype": dtype,
        "quantization_config": quantization_config(bits, dtype),
        "attn_implementation": "sdpa",
        "device_map": {"": device or device_kind()},
    }


def load_base(source: str, bits: int, revision: str = "main", trust_remote_code: bool = False):
    """The base model as training and evaluation see it: quantised for bits 4/8, in the compute dtype otherwise,
    loaded straight onto the device."""
    tokenizer = load_tokenizer(source, revision=revision, trust_remote_code=trust_remote_code, kind="base tokenizer")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if bits == 8:
        silence_int8_cast_warning()
    model = load_causal_lm(
        source,
        kind="base model",
        revision=revision,
        trust_remote_code=trust_remote_code,
        **load_arguments(bits),
    )
    return model, tokenizer


def prepare_quantized_for_training(model, gradient_checkpointing: bool):
    """A 4/8-bit base made ready for LoRA training: every base weight frozen and, with gradient checkpointing, the
    input embeddings' output requiring grad (so that checkpointed blocks see a tensor that needs grad; the trainer
    turns checkpointing itself on from its arguments). What peft's prepare_model_for_kbit_training does, less its
    cast of every non-quantised weight (embeddings, norms, LM head) to fp32: those stay in the compute dtype, so the
    residual stream stays bf16 and no 4-bit layer converts fp32 <-> bf16 on every call."""
    for param in model.parameters():
        param.requires_grad = False
    if gradient_checkpointing:
        model.enable_input_require_grads()
    return model
