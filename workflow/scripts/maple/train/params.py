"""The parameters of one finetune, as the finetune rule and the by-hand CLI (workflow/scripts/finetune.py) pass them.

The config schema (workflow/schemas/config.schema.yaml, key finetune) holds each default and its help text; the
dataclass fields carry the same defaults, and tests/test_finetune_params.py checks that they agree, so the CLI
trains what the workflow trains.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from pathlib import Path

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "schemas" / "config.schema.yaml"

BATCHING = ("length_grouped", "packed", "padded")
OPTIMIZERS = ("adamw_torch_fused", "adamw_torch", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit")
# finetune keys of the config that are the rule's own settings (resources, retries) or resolved per model, not
# FinetuneParams fields
RULE_KEYS = ("gpu", "resources", "target_modules", "oom_retries")
# Params that change how fast a run goes (or how often it is saved) but not what it computes: they may differ
# between a killed run and the rerun that resumes it.
NOT_IN_FINGERPRINT = ("micro_batch_size", "checkpoint_steps")


@dataclass
class FinetuneParams:
    rank: int
    bits: int
    seed: int = 1234
    lora_alpha_per_rank: float = 2.0
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
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
    optimizer: str = "adamw_torch_fused"
    checkpoint_steps: int = 50
    prompt_format: str = "plain"
    revision: str = "main"
    trust_remote_code: bool = False

    def __post_init__(self):
        if self.batching not in BATCHING:
            raise ValueError(f"finetune.batching: expected one of {BATCHING}, got {self.batching!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"finetune.optimizer: expected one of {OPTIMIZERS}, got {self.optimizer!r}")
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


def rule_params(finetune: dict, model, seed: int) -> dict:
    """The FinetuneParams fields (less rank, bits and the attempt's micro-batch) that the finetune rule passes for
    one model: the config's finetune keys, the model's target modules, prompt format, revision and remote-code flag."""
    return {
        **{k: v for k, v in finetune.items() if k not in RULE_KEYS},
        "target_modules": list(model.target_modules),
        "prompt_format": model.prompt_format,
        "revision": model.revision,
        "trust_remote_code": model.trust_remote_code,
        "seed": seed,
    }


def schema_entries(schema_file=SCHEMA_FILE) -> dict[str, dict]:
    """FinetuneParams field -> its entry in the config schema (default, description): finetune.<field>, the model
    keys (prompt_format, revision, trust_remote_code) and the global seed."""
    import yaml

    schema = yaml.safe_load(Path(schema_file).read_text(encoding="utf-8"))["properties"]
    places = {**schema["models"]["additionalProperties"]["properties"], "seed": schema["seed"]}
    places.update(schema["finetune"]["properties"])
    return {f.name: places[f.name] for f in fields(FinetuneParams) if f.name in places}


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """One --option per FinetuneParams field but rank and bits, with the config schema's default and help text."""
    entries = schema_entries()
    for f in fields(FinetuneParams):
        if f.name in ("rank", "bits"):
            continue
        entry = entries[f.name]
        default, flag = entry.get("default"), "--" + f.name.replace("_", "-")
        help_text = " ".join(str(entry.get("description", "")).split()) + f" [{default}]"
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif isinstance(default, list):
            parser.add_argument(flag, nargs="+", default=default, help=help_text)
        else:
            kind = {"float": float, "int": int}.get(str(f.type), str)
            parser.add_argument(flag, type=kind, default=default, help=help_text, choices=entry.get("enum"))


def params_from_cli(args: argparse.Namespace, rank: int, bits: int) -> FinetuneParams:
    names = [f.name for f in fields(FinetuneParams) if f.name not in ("rank", "bits")]
    return FinetuneParams(rank=rank, bits=bits, **{name: getattr(args, name) for name in names})
