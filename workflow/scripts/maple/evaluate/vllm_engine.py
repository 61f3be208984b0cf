"""evaluation.tasks.<t>.engine: vllm: the task runs through lm-eval's own vLLM model (lm_eval.models.vllm_causallms)
instead of HFLM, the adapter as a LoRA request on the base (vLLM applies it unmerged, batched with continuous
batching), in its own software environment (envs/vllm.yaml, envs/setup_vllm.sh: vLLM pins its own torch).

Not run on a GPU in this repository's tests: they check the model arguments, the environment a job gets and the
message where vLLM is not installed (tests/test_vllm_engine.py). docs/cost-and-sharding.md, "vLLM"."""

from __future__ import annotations

# vLLM's accepted max_lora_rank values (vllm.config.LoRAConfig); the grid's largest rank is rounded up to one.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
SETUP_HINT = (
    "engine vllm: vLLM is not installed in this job's environment. Run the job in envs/vllm.yaml "
    "(snakemake --software-deployment-method conda) or set up the venv with envs/setup_vllm.sh and run snakemake "
    "from it; or set evaluation.tasks.<task>.engine: hf"
)


class VLLMUnavailable(RuntimeError):
    """vLLM (or lm-eval's vLLM model) cannot be imported here."""


def max_lora_rank(ranks) -> int:
    """The smallest rank vLLM accepts that holds every rank of the grid."""
    top = max(ranks)
    for rank in VLLM_LORA_RANKS:
        if rank >= top:
            return rank
    raise ValueError(f"finetune.ranks: vLLM takes LoRA ranks up to {VLLM_LORA_RANKS[-1]}, the grid has {top}")


def vllm_model_args(
    *,
    base_source: str,
    revision: str,
    adapter_dir: str | None,
    bits: int,
    lora_rank: int,
    batch_size,
    max_length: int | None,
    seed: int,
    trust_remote_code: bool = False,
    max_gen_toks: int | None = None,
) -> dict:
    """lm-eval's VLLM(...) keyword arguments for one evaluation job: the base at its pinned revision, the adapter as
    a LoRA request (lora_local_path, max_lora_rank from the grid), a 4-bit base through vLLM's bitsandbytes
    quantisation as the adapter was trained (QLoRA); bf16 otherwise."""
    if bits == 8:
        raise ValueError(
            "engine vllm: an 8-bit (LLM.int8) base is not supported by vLLM's bitsandbytes loader; evaluate 8-bit "
            "adapters with engine hf, or set evaluation.quantize_base_like_training: false"
        )
    args = {
        "pretrained": base_source,
        "revision": revision,
        "dtype": "bfloat16",
        "trust_remote_code": trust_remote_code,
        "batch_size": batch_size,
        "seed": seed,
        "max_lora_rank": lora_rank,
    }
    if adapter_dir:
        args["lora_local_path"] = str(adapter_dir)
    if bits == 4:
        args["quantization"] = "bitsandbytes"
    if max_length:
        args["max_model_len"] = max_length
    if max_gen_toks:
        args["max_gen_toks"] = max_gen_toks
    return args


def vllm_lm(args: dict):
    """lm-eval's VLLM model built from vllm_model_args; VLLMUnavailable with the set-up hint where vLLM is absent."""
    try:
        from lm_eval.models.vllm_causallms import VLLM
    except ImportError as error:
        raise VLLMUnavailable(f"{SETUP_HINT} ({error})") from None
    return VLLM(**args)
