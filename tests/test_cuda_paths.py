"""The CUDA paths as far as a CPU shows them: how a base is loaded at every bit-width (device_map, no copy moved
over afterwards), a 4-bit base prepared for QLoRA without an fp32 residual stream, bitsandbytes' 8-bit cast warning
silenced, adapters evaluated in their own dtype (no fp32 upcast), the optimiser, the checkpointing argument's name.

bitsandbytes 0.50 quantises and runs Linear4bit / Linear8bitLt on a CPU, so the dtypes here are the ones a GPU run
gets (with bf16 asked for explicitly: a CPU run's compute dtype is fp32)."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch
from maple.evaluate import job
from maple.train import finetune, models
from maple.train.params import FinetuneParams
from tiny_models import build_tiny_llama


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> str:
    return build_tiny_llama(tmp_path_factory.mktemp("cuda-paths") / "base")


def load_quantized(path: str, bits: int, dtype=torch.bfloat16):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, **models.load_arguments(bits, "cpu", dtype))


@pytest.mark.parametrize("bits", [4, 8, 16])
def test_every_bit_width_loads_onto_the_device_through_device_map(bits, monkeypatch):
    arguments = models.load_arguments(bits, "cuda", torch.bfloat16)
    assert arguments["device_map"] == {"": "cuda"} and arguments["dtype"] is torch.bfloat16
    assert (arguments["quantization_config"] is None) == (bits == 16)
    if bits == 4:
        assert arguments["quantization_config"].bnb_4bit_compute_dtype is torch.bfloat16

    # load_base passes them as they are (device_map at 16 bits too) and moves nothing afterwards
    seen = {}

    class Loaded:
        def to(self, *args, **kwargs):
            raise AssertionError(f"the base was moved after loading: .to{args}")

    def fake_load(source, **kwargs):
        seen.update(kwargs)
        return Loaded()

    class Tokenizer:
        pad_token, eos_token = None, "</s>"

    monkeypatch.setattr(models, "load_causal_lm", fake_load)
    monkeypatch.setattr(models, "load_tokenizer", lambda *a, **k: Tokenizer())
    monkeypatch.setattr(models, "device_kind", lambda: "cuda")
    monkeypatch.setattr(models, "compute_dtype", lambda: torch.bfloat16)
    model, tokenizer = models.load_base("some/model", bits)
    assert isinstance(model, Loaded) and tokenizer.pad_token == "</s>"
    assert seen["device_map"] == {"": "cuda"} and seen["dtype"] is torch.bfloat16


def test_a_prepared_4_bit_base_keeps_its_norms_embeddings_and_head_in_bf16(tiny_base):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    model = models.prepare_quantized_for_training(load_quantized(tiny_base, 4), gradient_checkpointing=True)
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    floats = {name: dtype for name, dtype in dtypes.items() if dtype != torch.uint8}  # uint8: the packed NF4 weights
    assert any("norm" in n for n in floats) and "model.embed_tokens.weight" in floats and "lm_head.weight" in floats
    assert set(floats.values()) == {torch.bfloat16}, floats
    assert not any(p.requires_grad for p in model.parameters())

    # a LoRA step runs on it in bf16 end to end: the hidden states (the residual stream) stay bf16
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    peft_model.train()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    out = peft_model(input_ids=ids, labels=ids, output_hidden_states=True)
    assert {h.dtype for h in out.hidden_states} == {torch.bfloat16}
    out.loss.backward()
    assert all(p.grad is not None for n, p in peft_model.named_parameters() if p.requires_grad)

    # what peft's own preparation would have done: everything that is not 4-bit cast to fp32
    upcast = prepare_model_for_kbit_training(load_quantized(tiny_base, 4), use_gradient_checkpointing=False)
    assert {p.dtype for p in upcast.parameters() if p.dtype != torch.uint8} == {torch.float32}


def test_the_8_bit_cast_warning_is_silenced_and_other_warnings_are_not(tiny_base, caplog):
    model, _ = models.load_base(tiny_base, 8)  # installs the filter
    with caplog.at_level(logging.WARNING, logger=models.INT8_CAST_LOGGER):
        model(input_ids=torch.tensor([[5, 6, 7]]))  # fp32 input: bitsandbytes would log the cast on every matmul
        logging.getLogger(models.INT8_CAST_LOGGER).warning("another warning")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["another warning"], messages


def test_an_adapter_is_evaluated_in_its_own_dtype_not_upcast_to_fp32(tiny_base, tmp_path, monkeypatch):
    from peft import LoraConfig, get_peft_model

    assert job.ADAPTER_LOAD_ARGUMENTS == {"autocast_adapter_dtype": False}
    trained = get_peft_model(
        load_quantized(tiny_base, 4), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    for name, param in trained.named_parameters():
        if "lora_" in name:  # as trl leaves a QLoRA adapter: bf16
            param.data = param.data.to(torch.bfloat16)
    trained.save_pretrained(tmp_path / "adapter")

    monkeypatch.setattr(models, "compute_dtype", lambda: torch.bfloat16)  # as on a GPU
    model, _ = job.load_variant(tiny_base, str(tmp_path / "adapter"), 4, "main", False)
    lora = {name: p.dtype for name, p in model.named_parameters() if "lora_" in name}
    assert lora and set(lora.values()) == {torch.bfloat16}, lora


def test_the_optimiser_is_not_paged_unless_the_config_says_so():
    params = FinetuneParams(rank=4, bits=4)
    assert params.optimizer == "adamw_torch_fused"
    assert finetune.optimizer_name(params, on_gpu=True) == "adamw_torch_fused"
    paged = FinetuneParams(rank=4, bits=4, optimizer="paged_adamw_8bit")
    assert finetune.optimizer_name(paged, on_gpu=True) == "paged_adamw_8bit"
    assert finetune.optimizer_name(paged, on_gpu=False) == finetune.CPU_OPTIMIZER  # bitsandbytes' need a GPU
    with pytest.raises(ValueError, match="finetune.optimizer"):
        FinetuneParams(rank=4, bits=4, optimizer="sgd")


def test_checkpointing_is_passed_under_the_name_the_installed_transformers_has(tmp_path):
    from trl import SFTConfig

    @dataclasses.dataclass
    class OlderArguments:  # transformers before activation_checkpointing (5.17: the GPU machine's)
        gradient_checkpointing: bool = False
        gradient_checkpointing_kwargs: dict | None = None

    assert finetune.checkpointing_arguments(OlderArguments, True) == {
        "gradient_checkpointing": True,
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
    }
    config = finetune.sft_config(FinetuneParams(rank=4, bits=4, gradient_checkpointing=True), tmp_path)
    assert isinstance(config, SFTConfig) and config.gradient_checkpointing is True
    assert config.optim == "adamw_torch_fused"
