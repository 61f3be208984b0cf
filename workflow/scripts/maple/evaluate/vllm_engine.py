"""evaluation.tasks.<t>.engine: vllm: the task runs through lm-eval's own vLLM model (lm_eval.models.vllm_causallms)
instead of HFLM, each adapter as a LoRA request on the base (vLLM applies it unmerged, batched with continuous
batching), in its own software environment (envs/vllm.yaml, envs/setup_vllm.sh: vLLM pins its own torch).

Not run on a GPU in this repository's tests: they check the model arguments, the environment a job gets, the LoRA
request of each adapter (a stand-in for lm-eval's VLLM class) and the message where vLLM is not installed
(tests/test_vllm_engine.py). docs/cost-and-sharding.md, "vLLM"."""

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
    enable_lora: bool = False,
) -> dict:
    """lm-eval's VLLM(...) keyword arguments for one evaluation job: the base at its pinned revision, the adapter as
    a LoRA request (lora_local_path, max_lora_rank from the grid), a 4-bit base through vLLM's bitsandbytes
    quantisation as the adapter was trained (QLoRA); bf16 otherwise. enable_lora without adapter_dir: an engine
    whose LoRA request each adapter sets in turn (use_adapter); lm-eval enables LoRA only with lora_local_path,
    and passes its other keywords on to vLLM's LLM over its own."""
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
    elif enable_lora:
        args["enable_lora"] = True
    if bits == 4:
        args["quantization"] = "bitsandbytes"
    if max_length:
        args["max_model_len"] = max_length
    if max_gen_toks:
        args["max_gen_toks"] = max_gen_toks
    return args


def task_vllm_lm(
    task, base_source, revision, adapter_dir, bits, batch_size, seed, trust_remote_code, enable_lora=False, **engine
):
    """lm-eval's VLLM model for an evaluation job of task (its max_length, its LoRA rank bound): the base, and the
    adapter as its LoRA request where adapter_dir is given; engine: further keywords for vLLM's LLM."""
    args = vllm_model_args(
        base_source=base_source,
        revision=revision,
        adapter_dir=adapter_dir,
        bits=bits,
        lora_rank=task.lora_rank,
        batch_size=batch_size,
        max_length=task.max_length,
        seed=seed,
        trust_remote_code=trust_remote_code,
        enable_lora=enable_lora,
    )
    return vllm_lm({**args, **engine})


def vllm_classes():
    """(lm-eval's VLLM model, vLLM's LoRARequest as that module imports it): the one import of vLLM, the seam the
    tests replace; VLLMUnavailable with the set-up hint where vLLM is absent."""
    try:
        from lm_eval.models.vllm_causallms import VLLM, LoRARequest
    except ImportError as error:
        raise VLLMUnavailable(f"{SETUP_HINT} ({error})") from None
    return VLLM, LoRARequest


def vllm_lm(args: dict):
    """lm-eval's VLLM model built from vllm_model_args."""
    model_class, _ = vllm_classes()
    return model_class(**args)


def use_adapter(lm, name: str, lora_id: int, adapter_dir: str | None) -> None:
    """Point lm-eval's VLLM model at one adapter (adapter_dir None: the base): every generate and loglikelihood
    request of it passes lm.lora_request to the engine. lora_id: unique per adapter within the engine (vLLM caches
    an adapter's weights by it), at least 1."""
    _, lora_request = vllm_classes()
    lm.lora_request = lora_request(name, lora_id, str(adapter_dir)) if adapter_dir else None
