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
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_measure import build_model, demo_tokenizer, measure_model, measure_startup  # noqa: E402
from eval_projection import (  # noqa: E402  (the paper config's tasks, the designs, the projection)
    ASSUMED_7B,
    DEMO_SHAPES,
    LLAMA_7B,
    PAPER_TASKS,
    assumed_7b_example_s,
    load_study,
    medians,
    print_projection,
    spreads,
    study_cells,
)

import bench_report  # noqa: E402  (bench/bench_report.py, beside this script)

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
