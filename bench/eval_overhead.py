"""How much of evaluation's wall time goes to loading models, under the workflow's design and under one process per
score.

  .venv/bin/python bench/eval_overhead.py --json bench-eval.json   # CPU: demo model measured, 7B from assumptions
  .venv/bin/python bench/eval_overhead.py --device cuda            # GPU: demo model and a 7B-shaped model measured
  .venv/bin/python bench/eval_overhead.py --smoke                  # does it run (a smaller model, 1 repeat)

Designs compared (a "process" is one Snakemake job: a fresh Python process that imports the stack and loads the
model, and the adapter, once):
  per score    one process per (model, variant, task, language)
  per task     one process per (model, variant, task), every language of the task in one lm-eval call (the design
               of workflow/rules/evaluate.smk)
  per variant  one process per (model, variant), every task (for reference: fewest loads, largest reruns)

Measured on this machine:
  startup      a fresh Python process importing torch, transformers, peft and lm_eval and building lm-eval's task
               index (what every process pays before it loads a model; printed apart from the load)
  load         maple.evaluate.job.load_variant, the workflow's own loading code: base + LoRA adapter (rank 16 on the
               7B, 4 on the demo model), at bits 16 and 4 (NF4, bitsandbytes; 8 is taken to cost what 4 does)
  per example  lm-eval's HFLM (the workflow's evaluation engine) on synthetic requests shaped like each task:
               loglikelihood requests (lm-eval shares one forward pass between choices that have one-token
               continuations, as for Belebele's A/B/C/D) and generate_until with a fixed number of new tokens
The demo model is the demo config's tiny Llama (random weights: timing does not depend on them). The 7B-shaped
model (Llama-2-7B's shape, random init, bf16) is measured with --device cuda (or --big); without a GPU its load
and per-example times are ASSUMPTIONS, printed as such (ASSUMED_7B below).

Each part is measured --repeats times (default 5: fresh processes, cold-cache loads per bits, runs of --examples
new requests per shape) and printed as the median (min-max); the projection uses the medians and, beside them, the
median (min-max) of the shares projected from each repeat's measurements. --json PATH writes every measurement's
spread, the projections, the machine, the library versions and the git commit (bench/bench_report.py).

The projection multiplies these by the grid of a config (models x variants x tasks x languages, resolved by
maple.config.study as the workflow does) and the number of examples per language: a local task's held-out set (capped
by its `limit`), or for lm-eval tasks the size of the split lm-eval evaluates (PAPER_TASKS, capped by `limit`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_report  # noqa: E402  (bench/bench_report.py, beside this script)
from finetune_throughput import ARCHS  # noqa: E402

SHIPPED_TASKS = REPO / "workflow" / "resources" / "lm_eval_tasks"


@dataclass(frozen=True)
class Shape:
    """One example of a task as the model sees it, in tokens of the model's tokenizer."""

    kind: str  # loglikelihood | generate
    context: int  # prompt tokens
    choices: int = 1  # loglikelihood requests per example (answer options)
    continuation: int = 1  # tokens per choice (1: lm-eval shares the forward pass between the choices)
    new_tokens: int = 0  # generate: decoding steps per batch (the batch runs until its longest answer ends)


@dataclass(frozen=True)
class PaperTask:
    examples: int | dict  # per language: the split lm-eval evaluates (a dict where sizes differ per language)
    shape: Shape
    source: str  # where the numbers come from


# The paper config's tasks (config/maple.yaml). Example counts: the split lm-eval's task YAML evaluates. Token counts
# with the Llama-2 tokenizer, averaged over the task's languages (non-Latin scripts take 2-4x the English count):
# estimates from the prompt templates of lm-eval 0.4.13, stated here so that they can be checked and changed.
PAPER_TASKS = {
    "belebele": PaperTask(
        900,
        Shape("loglikelihood", context=400, choices=4, continuation=1),
        "test 900/lang; passage+question+4 answers ~180 tokens in English, ~400 averaged",
    ),
    "xcopa": PaperTask(
        500,
        Shape("loglikelihood", context=25, choices=2, continuation=15),
        "test 500/lang; premise + connective, each alternative ~15 tokens",
    ),
    "xnli": PaperTask(
        2490,
        Shape("loglikelihood", context=1, choices=3, continuation=70),
        "validation 2490/lang (lm-eval's xnli has no test split); premise+hypothesis per choice",
    ),
    "xstorycloze": PaperTask(
        1511,
        Shape("loglikelihood", context=80, choices=2, continuation=20),
        "eval 1511/lang; four sentences, two endings",
    ),
    "xquad": PaperTask(
        1190,
        Shape("generate", context=350, new_tokens=24),
        "validation 1190/lang; paragraph+question, greedy until newline",
    ),
    "mlqa": PaperTask(
        {"en": 11590, "es": 5253, "de": 4517, "ar": 5335, "hi": 4918, "vi": 5495, "zh": 5137},
        Shape("generate", context=350, new_tokens=24),
        "test, same-language pairs (en 11590 .. de 4517); context+question, until newline",
    ),
    "xlsum": PaperTask(
        500,
        Shape("generate", context=1200, new_tokens=64),
        "test capped by the config's limit 500; first 2000 characters, summary until newline",
    ),
}

# The demo's local tasks (workflow/scripts/maple/evaluate/job.py): the Alpaca-style prompt of a one-line question.
DEMO_SHAPES = {
    "multiple_choice": Shape("loglikelihood", context=24, choices=4, continuation=2),
    "generate": Shape("generate", context=24, new_tokens=8),
}

# Llama-2-7B's shape: the finetune benchmark's, one definition for both.
LLAMA_7B = ARCHS["llama-2-7b"]

# Used for the 7B when it is not measured (no GPU): ASSUMPTIONS, each with its reason. They lean towards a fast
# evaluation and a slow load, i.e. towards a large load share.
ASSUMED_7B = {
    "params": 6.74e9,
    # H100 SXM: 989 TFLOP/s dense bf16; HF transformers' padded batched forward reaches roughly 40 % of it.
    "prefill_flops_per_s": 400e12,
    # One decoding step of a batch of 32 in HF generate (bf16, KV cache): weights 13.5 GB / 3.35 TB/s = 4 ms of
    # memory traffic plus kernel-launch and Python overhead; published HF figures are 25-35 ms per step for 7B.
    "decode_step_s": 0.025,
    "batch_size": 32,
    # Loading 13.5 GB of bf16 safetensors from a cold local NVMe (~2 GB/s: 7 s) plus building the model and moving
    # it to the GPU; NF4/LLM.int8 quantise while loading (bitsandbytes), published 7B 4-bit loads take 20-30 s.
    "load_s": {16: 15.0, 8: 25.0, 4: 25.0},
}


# ---------------------------------------------------------------------------------------------------------------
# The projection (pure functions)


def example_counts(task, study) -> dict[str, int]:
    """Examples per language of a resolved task: the held-out set (local) or lm-eval's split, capped by limit."""
    counts = {}
    for lang in task.languages:
        if task.source == "local":
            n = int(study.datasets[task.dataset].get("n_eval_per_language", 40))
        else:
            spec = PAPER_TASKS.get(task.alias)
            if spec is None:
                raise KeyError(f"task {task.alias!r}: no example count in PAPER_TASKS")
            n = spec.examples[lang] if isinstance(spec.examples, dict) else spec.examples
        counts[lang] = min(n, task.limit) if task.limit else n
    return counts


def study_cells(study) -> list[dict]:
    """One record per score file of the study: model, variant, bits it is evaluated at, task, lang, examples."""
    quantize = study.evaluation_params.get("quantize_base_like_training", True)
    cells = []
    for model, variant, task_alias in study.evaluations():
        finetune = study.finetune_of(model, variant)
        bits = finetune.bits if finetune is not None and quantize else 16
        task = study.tasks[task_alias]
        for lang, n in example_counts(task, study).items():
            cells.append(dict(model=model, variant=variant, bits=bits, task=task_alias, lang=lang, examples=n))
    return cells


DESIGNS = {
    "per score": ("model", "variant", "task", "lang"),
    "per task": ("model", "variant", "task"),
    "per variant": ("model", "variant"),
}


def project(cells: list[dict], design: str, startup_s: float, load_s: dict, example_s: dict) -> dict:
    """Wall time of evaluating every cell when one process runs each group of DESIGNS[design].

    load_s: bits -> seconds to load base + adapter; example_s: task -> seconds per example."""
    keys = DESIGNS[design]
    groups = {}
    for cell in cells:
        groups.setdefault(tuple(cell[k] for k in keys), cell["bits"])
    load = sum(load_s[bits] for bits in groups.values())
    startup = startup_s * len(groups)
    evaluation = sum(cell["examples"] * example_s[cell["task"]] for cell in cells)
    total = startup + load + evaluation
    return dict(
        design=design,
        processes=len(groups),
        load_s=load,
        startup_s=startup,
        eval_s=evaluation,
        total_s=total,
        load_share=load / total,
        overhead_share=(load + startup) / total,
    )


def assumed_7b_example_s(shape: Shape, assumed: dict = ASSUMED_7B) -> float:
    """Seconds per example of a 7B from FLOPs (prefill) and decoding steps: the no-GPU assumption."""
    per_token = 2 * assumed["params"] / assumed["prefill_flops_per_s"]
    if shape.kind == "loglikelihood":
        tokens = shape.context + 1 if shape.continuation == 1 else shape.choices * (shape.context + shape.continuation)
        return tokens * per_token
    return shape.context * per_token + shape.new_tokens * assumed["decode_step_s"] / assumed["batch_size"]


# ---------------------------------------------------------------------------------------------------------------
# Measurements


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


def load_study(config_path: Path):
    import yaml
    from maple.config.study import resolve_study
    from maple.config.validation import with_defaults

    with open(config_path, encoding="utf-8") as f:
        config = with_defaults(yaml.safe_load(f))
    # Models with a local path need not exist to count the grid.
    for spec in config["models"].values():
        if "path" in spec:
            spec.pop("path")
            spec["hub_id"] = "placeholder/model"
    return resolve_study(config, config_dir=str(config_path.parent))


def repeat_shares(cells: list[dict], startup_runs: list, load_runs: dict, example_runs: dict) -> dict:
    """Per design, the spread over the repeats of the load share and the load + startup share: repeat i projected
    with every part's i-th measurement (a part with fewer values, such as an assumption, repeats its values)."""

    def pick(values, i):
        return values[i % len(values)]

    n = max(len(v) for v in [startup_runs, *load_runs.values(), *example_runs.values()])
    out = {}
    for design in DESIGNS:
        rows = [
            project(
                cells,
                design,
                pick(startup_runs, i),
                {bits: pick(v, i) for bits, v in load_runs.items()},
                {task: pick(v, i) for task, v in example_runs.items()},
            )
            for i in range(n)
        ]
        out[design] = {
            "load_share": bench_report.spread(r["load_share"] for r in rows),
            "overhead_share": bench_report.spread(r["overhead_share"] for r in rows),
        }
    return out


def medians(runs: dict) -> dict:
    return {key: statistics.median(values) for key, values in runs.items()}


def print_projection(
    title: str, cells: list[dict], startup_runs: list, load_runs: dict, example_runs: dict
) -> tuple[list[dict], dict]:
    """The projection of every design from the medians of the measured parts (printed), and the spread of its
    shares over the repeats."""
    n_examples = sum(c["examples"] for c in cells)
    startup_s, load_s, example_s = statistics.median(startup_runs), medians(load_runs), medians(example_runs)
    print(f"\n{title}")
    print(f"  {len(cells)} score files, {n_examples:,} examples evaluated in all; medians of the measured parts")
    rows = [project(cells, design, startup_s, load_s, example_s) for design in DESIGNS]
    unit, scale = ("h", 3600) if max(r["total_s"] for r in rows) > 3600 else ("s", 1)
    print(
        f"  {'design':<12} {'processes':>9} {'model load ' + unit:>12} {'startup ' + unit:>10} "
        f"{'evaluate ' + unit:>11} {'total ' + unit:>9} {'load share':>10} {'load+startup':>12}"
    )
    for r in rows:
        chosen = "  <- chosen" if r["design"] == "per task" else ""
        print(
            f"  {r['design']:<12} {r['processes']:>9,} {r['load_s'] / scale:>12.2f} {r['startup_s'] / scale:>10.2f} "
            f"{r['eval_s'] / scale:>11.2f} {r['total_s'] / scale:>9.2f} {r['load_share']:>10.1%} "
            f"{r['overhead_share']:>12.1%}{chosen}"
        )
    shares = repeat_shares(cells, startup_runs, load_runs, example_runs)
    print(
        "  per repeat, median (min-max): load share "
        + ", ".join(f"{d} {bench_report.fmt(s['load_share'], '{:.1f}', 100)} %" for d, s in shares.items())
        + "; load+startup "
        + ", ".join(f"{d} {bench_report.fmt(s['overhead_share'], '{:.1f}', 100)} %" for d, s in shares.items())
    )
    return rows, shares


def spreads(runs: dict) -> dict:
    return {str(key): bench_report.spread(values) for key, values in runs.items()}


SMOKE_SHAPE = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=128
)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--big", action="store_true", help="measure the 7B-shaped model (implied by --device cuda)")
    parser.add_argument(
        "--big-shape",
        type=json.loads,
        default=None,
        help="JSON overrides of the 7B shape (e.g. to try the --big path small on a CPU)",
    )
    parser.add_argument("--paper-config", type=Path, default=REPO / "config" / "maple.yaml")
    parser.add_argument("--demo-config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="repeats of each measured part: fresh-process startups, loads per bits, per-example runs (default 5)",
    )
    parser.add_argument("--examples", type=int, default=None, help="synthetic examples per task shape (default 64)")
    parser.add_argument("--batch-size", default="32", help="lm-eval batch size for the per-example timing")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default 1 on CPU: stable timings on a shared machine)",
    )
    parser.add_argument("--bits", default="16,4", help="bit-widths whose load is measured (4: with bitsandbytes)")
    parser.add_argument(
        "--shapes",
        default=",".join(PAPER_TASKS),
        help="the paper tasks whose example shape is measured on the 7B-shaped model (the others: assumed)",
    )
    parser.add_argument("--tmpdir", default=None, help="where the measured models are saved (local disk)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here (bench/bench_report.py)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a check that the benchmark runs, not a measurement: a smaller model, 4 examples, 1 repeat",
    )
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.smoke else 5
    if args.examples is None:
        args.examples = 4 if args.smoke else 64

    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    sys.path.insert(0, str(SCRIPTS))
    import torch
    import yaml

    torch.set_num_threads(args.threads or (1 if args.device == "cpu" else torch.get_num_threads()))
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device visible")
    batch_size = int(args.batch_size) if args.batch_size.isdigit() else args.batch_size
    bits_list = [int(b) for b in args.bits.split(",")]
    if not _has_bitsandbytes():
        bits_list = [b for b in bits_list if b == 16]

    print(
        f"device {args.device} ({torch.cuda.get_device_name(0) if args.device == 'cuda' else 'CPU'}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"[startup] fresh process: imports + lm-eval task index x {args.repeats} ...", flush=True)
    startup_runs = measure_startup(args.repeats)

    with open(args.demo_config, encoding="utf-8") as f:
        demo_spec = yaml.safe_load(f).get("tiny_model", {})
    demo_shape = {
        k: demo_spec.get(k, v)
        for k, v in dict(
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=128,
        ).items()
    }
    vocab_size = demo_spec.get("vocab_size", 2000)
    if args.smoke:
        demo_shape, vocab_size = dict(SMOKE_SHAPE), 500
    if args.tmpdir:
        os.makedirs(args.tmpdir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="maple-eval-overhead-", dir=args.tmpdir) as tmp:
        tmp = Path(tmp)
        tokenizer = demo_tokenizer(vocab_size)
        build_model(tmp / "demo", demo_shape, tokenizer, torch.float32, "cpu", adapter_rank=4)
        demo = measure_model(
            "demo model", tmp / "demo", tokenizer, DEMO_SHAPES, bits_list, args.repeats, args.examples, batch_size
        )
        big = None
        if args.big or args.device == "cuda":
            shape = {**LLAMA_7B, **(args.big_shape or {})}
            tokenizer = demo_tokenizer(vocab_size, pad_to=shape["vocab_size"])
            dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
            print(f"[7B-shaped] building {shape} ...", flush=True)
            build_model(
                tmp / "big",
                {k: v for k, v in shape.items() if k != "vocab_size"},
                tokenizer,
                dtype,
                args.device,
                adapter_rank=16,
            )
            wanted = args.shapes.split(",")
            shapes = {name: task.shape for name, task in PAPER_TASKS.items() if name in wanted}
            big = measure_model(
                "7B-shaped",
                tmp / "big",
                tokenizer,
                shapes,
                bits_list,
                max(1, args.repeats - 1),
                args.examples,
                batch_size,
            )

    measured = {
        "startup_s": bench_report.spread(startup_runs),
        "demo": {"load_s": spreads(demo["load_s"]), "example_s": spreads(demo["example_s"])},
        "big": None if big is None else {"load_s": spreads(big["load_s"]), "example_s": spreads(big["example_s"])},
    }
    print(
        f"\nmeasured, median (min-max) of {args.repeats} repeat(s): startup "
        f"{bench_report.fmt(measured['startup_s'])} s per process; demo model load (base + adapter) "
        + ", ".join(f"bits {b}: {bench_report.fmt(s)} s" for b, s in measured["demo"]["load_s"].items())
        + f" (torch threads {torch.get_num_threads()})"
    )
    print(
        "  demo per example: "
        + ", ".join(f"{k} {bench_report.fmt(s, '{:.2f}', 1e3)} ms" for k, s in measured["demo"]["example_s"].items())
    )
    demo_load = dict(demo["load_s"])
    demo_load.setdefault(4, demo_load[16])  # not measured: as bits 16
    demo_load.setdefault(8, demo_load[4])  # LLM.int8 taken to cost what NF4 does

    demo_study = load_study(args.demo_config)
    demo_cells = study_cells(demo_study)
    demo_example = {alias: demo["example_s"][task.kind] for alias, task in demo_study.tasks.items()}
    demo_rows, demo_shares = print_projection(
        f"DEMO config {args.demo_config.name} on this {args.device.upper()} (all measured)",
        demo_cells,
        startup_runs,
        demo_load,
        demo_example,
    )

    paper_study = load_study(args.paper_config)
    paper_cells = study_cells(paper_study)
    if big is not None:
        # a bit-width that could not be loaded: assumed
        load_runs = {**{b: [s] for b, s in ASSUMED_7B["load_s"].items()}, **big["load_s"]}
        if 8 not in big["load_s"] and 4 in big["load_s"]:
            load_runs[8] = load_runs[4]
        example_runs = {
            name: big["example_s"].get(name) or [assumed_7b_example_s(task.shape)] for name, task in PAPER_TASKS.items()
        }
        source = f"7B-shaped model MEASURED on {args.device}"
        if args.big_shape:
            source += f" (shape overridden: {args.big_shape})"
    else:
        load_runs = {b: [s] for b, s in ASSUMED_7B["load_s"].items()}
        example_runs = {name: [assumed_7b_example_s(task.shape)] for name, task in PAPER_TASKS.items()}
        source = "7B on one H100 ASSUMED (no GPU here; see ASSUMED_7B), startup measured here"
    load_s, example_s = medians(load_runs), medians(example_runs)
    print(
        f"\n7B per example ({'measured' if big else 'ASSUMED'}): "
        + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in example_s.items())
    )
    measured_bits = big["load_s"] if big else {}
    print(
        "7B load (base + adapter): "
        + ", ".join(
            f"bits {b} {s:.1f} s ({'measured' if b in measured_bits else 'ASSUMED'})" for b, s in sorted(load_s.items())
        )
    )
    print("examples per language: " + "; ".join(f"{k}: {t.source}" for k, t in PAPER_TASKS.items()))
    rows, paper_shares = print_projection(
        f"PAPER config {args.paper_config.name}: {source}", paper_cells, startup_runs, load_runs, example_runs
    )
    chosen = next(r for r in rows if r["design"] == "per task")
    per_score = next(r for r in rows if r["design"] == "per score")
    # How much faster evaluation would have to be for the chosen design's load share to reach 10 %:
    # load / (startup + load + eval / k) = 0.1  <=>  k = eval / (9 load - startup).
    margin = 9 * chosen["load_s"] - chosen["startup_s"]
    print(
        f"\nmodel-load share of evaluation wall time, paper config: {chosen['load_share']:.1%} under the chosen "
        f"design (one process per model x variant x task) vs {per_score['load_share']:.1%} with one process "
        f"per score ({chosen['overhead_share']:.1%} vs {per_score['overhead_share']:.1%} with process startup)"
    )
    if margin > 0:
        print(
            f"the chosen design stays at or under 10 % model-load share unless evaluation is "
            f"{chosen['eval_s'] / margin:.1f}x faster than {'measured' if big else 'assumed'}"
        )
    else:
        print("the chosen design stays under 10 % model-load share however fast evaluation is (startup dominates)")
    settings = {
        "device": args.device,
        "repeats": args.repeats,
        "examples": args.examples,
        "batch_size": batch_size,
        "bits": bits_list,
        "smoke": args.smoke,
        "demo_config": str(args.demo_config),
        "paper_config": str(args.paper_config),
        "demo_shape": demo_shape,
        "big_shape": {**LLAMA_7B, **(args.big_shape or {})} if big is not None else None,
    }
    report = bench_report.header("eval_overhead", settings, args.device)
    report.update(
        measured=measured,
        projections={
            "demo": {"rows": demo_rows, "shares": demo_shares},
            "paper": {
                "source": source,
                "load_s": {str(b): s for b, s in load_s.items()},
                "example_s": example_s,
                "rows": rows,
                "shares": paper_shares,
            },
        },
    )
    if args.json:
        bench_report.write(args.json, report)
        print(f"figures written to {args.json}")
    return report


def _has_bitsandbytes() -> bool:
    """NF4 / LLM.int8 loads need bitsandbytes (>= 0.45 also on CPU: the demo evaluates q4 adapters there)."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception:
        return False
    return True


if __name__ == "__main__":
    main()
