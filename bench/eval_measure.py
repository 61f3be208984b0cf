"""bench/eval_overhead.py's measurements on this machine: a fresh process's start-up, a model's load at each
bit-width (the workflow's own loading code), lm-eval's HFLM per example on synthetic requests of a task's shape."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"
SHIPPED_TASKS = REPO / "workflow" / "resources" / "lm_eval_tasks"


@dataclass(frozen=True)
class Shape:
    """One example of a task as the model sees it, in tokens of the model's tokenizer."""

    kind: str  # loglikelihood | generate
    context: int  # prompt tokens
    choices: int = 1  # loglikelihood requests per example (answer options)
    continuation: int = 1  # tokens per choice (1: lm-eval shares the forward pass between the choices)
    new_tokens: int = 0  # generate: decoding steps per batch (the batch runs until its longest answer ends)


def measure_startup(repeats: int = 1) -> list[float]:
    """A fresh process: interpreter, imports of the evaluation stack and lm-eval's task index (seconds, per repeat)."""
    code = (
        "import torch, transformers, peft, lm_eval\n"
        "from lm_eval.models.huggingface import HFLM\n"
        "from lm_eval.tasks import TaskManager\n"
        f"TaskManager(include_path=[{str(SHIPPED_TASKS)!r}])\n"
    )
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=os.environ.copy())
        times.append(time.perf_counter() - started)
    return times


def drop_page_cache(directory: Path) -> None:
    """Ask the kernel to forget the files' cached pages (no root needed for our own files), so a load reads disk."""
    for path in directory.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass
            finally:
                os.close(fd)


def build_model(out_dir: Path, shape: dict, tokenizer, dtype, device: str, adapter_rank: int, seed: int = 0) -> Path:
    """A random-init Llama of the given shape and a LoRA adapter on it, saved with save_pretrained."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        **{**shape, "vocab_size": len(tokenizer)},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.save_pretrained(out_dir / "base")
    tokenizer.save_pretrained(out_dir / "base")
    lora = LoraConfig(
        r=adapter_rank,
        lora_alpha=2 * adapter_rank,
        task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )
    get_peft_model(model, lora).save_pretrained(out_dir / "adapter")
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return out_dir


def demo_tokenizer(vocab_size: int, pad_to: int | None = None):
    """The demo's tokenizer (BPE on the demo lexicons' corpus); with pad_to, filler tokens up to that vocabulary."""
    from maple.data.template import pretraining_corpus
    from maple.train.tiny_model import train_tokenizer

    lexicons = REPO / "workflow" / "resources" / "lexicons"
    languages = sorted(p.stem for p in lexicons.glob("*.yaml"))
    tokenizer = train_tokenizer(pretraining_corpus(languages, lexicons, 0, 100), vocab_size)
    if pad_to and len(tokenizer) < pad_to:
        tokenizer.add_tokens([f"<fill{i}>" for i in range(pad_to - len(tokenizer))])
    return tokenizer


def measure_load(model_dir: Path, bits_list: list[int], repeats: int) -> dict[int, list[float]]:
    """Seconds of load_variant (base + adapter) per bits and repeat, each from a cold page cache."""
    import gc

    import torch
    from maple.evaluate.job import load_variant

    times = {}
    for bits in bits_list:
        runs = []
        for _ in range(repeats):
            drop_page_cache(model_dir)
            started = time.perf_counter()
            try:
                model, _ = load_variant(str(model_dir / "base"), str(model_dir / "adapter"), bits, "main", False)
            except Exception as error:  # e.g. no bitsandbytes build for this device
                print(f"  bits {bits}: cannot load ({type(error).__name__}: {error}); not measured")
                break
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            runs.append(time.perf_counter() - started)
            del model
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        if runs:
            times[bits] = runs
    return times


def synthetic_requests(shape: Shape, n_examples: int, vocab: int, rng):
    """lm-eval requests shaped like n_examples examples: token-id requests (loglikelihood) or prompts (generate)."""
    first = 4  # after the special tokens
    if shape.kind == "loglikelihood":
        requests = []
        for _ in range(n_examples):
            context = [int(t) for t in rng.integers(first, vocab, shape.context)]
            for _ in range(shape.choices):
                continuation = [int(t) for t in rng.integers(first, vocab, shape.continuation)]
                requests.append((("", ""), context, continuation))
        return requests
    return [[int(t) for t in rng.integers(first, vocab, shape.context)] for _ in range(n_examples)]


def measure_per_example(lm, tokenizer, shape: Shape, n_examples: int, repeats: int = 1, seed: int = 0) -> list[float]:
    """Seconds per example of lm-eval's HFLM on synthetic requests of the shape, per repeat of n_examples new
    requests (after one warm-up batch)."""
    import numpy as np
    from lm_eval.api.instance import Instance

    rng = np.random.default_rng(seed)
    vocab = len(tokenizer)

    def run(n):
        requests = synthetic_requests(shape, n, vocab, rng)
        if shape.kind == "loglikelihood":
            started = time.perf_counter()
            lm._loglikelihood_tokens(requests, disable_tqdm=True)
            return time.perf_counter() - started
        # A stop string the model cannot produce: every example decodes exactly new_tokens tokens.
        kwargs = {"until": ["\u0000never\u0000"], "max_gen_toks": shape.new_tokens, "do_sample": False}
        instances = [
            Instance("generate_until", {}, (tokenizer.decode(ids), dict(kwargs)), i) for i, ids in enumerate(requests)
        ]
        started = time.perf_counter()
        lm.generate_until(instances, disable_tqdm=True)
        return time.perf_counter() - started

    run(min(n_examples, 4))  # warm-up: kernels, caches
    return [run(n_examples) / n_examples for _ in range(repeats)]


def measure_model(
    label: str,
    model_dir: Path,
    tokenizer,
    shapes: dict,
    bits_list: list[int],
    repeats: int,
    n_examples: int,
    batch_size,
) -> dict:
    import gc

    import torch
    from lm_eval.models.huggingface import HFLM
    from maple.evaluate.job import load_variant

    print(f"[{label}] load (base + adapter) x {repeats} per bits ...", flush=True)
    load = measure_load(model_dir, bits_list, repeats)
    model, tok = load_variant(str(model_dir / "base"), str(model_dir / "adapter"), 16, "main", False)
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size)
    per_example = {}
    for name, shape in shapes.items():
        print(f"[{label}] per example: {name} ({n_examples} examples x {repeats}) ...", flush=True)
        per_example[name] = measure_per_example(lm, tok, shape, n_examples, repeats)
    del lm, model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {"load_s": load, "example_s": per_example}


# ---------------------------------------------------------------------------------------------------------------
# Report
