"""engine vllm: the variants one evaluation job scores on one vLLM engine. A task with engine vllm has one job per
base model x evaluation bit-width x shard, each adapter of that model and bit-width a LoRA request of its own on the
one engine (maple.evaluate.lora_group), the base model in the 16-bit group with no LoRA request; engine hf keeps
one job per variant. docs/cost-and-sharding.md, "vLLM"."""

from __future__ import annotations

from dataclasses import dataclass

from maple.config.study import BASE_VARIANT


def eval_bits(study, finetune) -> int:
    """The bit-width a variant is evaluated at: its base quantised as it was trained, unless the config says not to
    (evaluation.quantize_base_like_training); the base model at 16."""
    if finetune is None or not study.evaluation_params["quantize_base_like_training"]:
        return 16
    return finetune.bits


@dataclass(frozen=True)
class LoraGroup:
    bits: int
    variants: tuple[str, ...]  # in the study's order, the base first where it is in the group

    @property
    def name(self) -> str:
        """The group's name where a variant's would stand: its jobs' log and benchmark directory, estimate.csv's
        `variant`."""
        return f"vllm-q{self.bits}"


def lora_groups(study) -> list[LoraGroup]:
    """The study's variants by the bit-width they are evaluated at, 16 first. Every model has the same variants (the
    grid is models x datasets x ranks x bits), so one list of groups serves every model."""
    by_bits: dict[int, list[str]] = {16: [BASE_VARIANT]}
    for f in study.finetunes:
        variants = by_bits.setdefault(eval_bits(study, f), [])
        if f.variant not in variants:
            variants.append(f.variant)
    return [LoraGroup(bits, tuple(variants)) for bits, variants in sorted(by_bits.items(), key=lambda kv: -kv[0])]
