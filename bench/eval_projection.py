"""bench/eval_overhead.py's projection: the paper config's tasks as shapes and example counts, the designs (one
process per score, per task, per variant) and the wall time each would take from the measured figures."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from eval_measure import Shape
from finetune_models import ARCHS

import bench_report

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"


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
