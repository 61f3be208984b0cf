"""A 16-bit LoRA adapter evaluated merged into its base and unmerged, side by side: the same scores, and the seconds.

  .venv/bin/python bench/merge_eval.py --json bench-merge.json   # CPU: SmolLM2 and its r8-q16 demo adapter
  .venv/bin/python bench/merge_eval.py --smoke --base DIR --adapter DIR --eval-dir DIR   # does it run (1 repeat)

Needs the config/smollm2.yaml run's converted model, adapter and held-out sets (`snakemake --configfile
config/smollm2.yaml results/adapters/smollm2/demo/r8-q16`), or --base/--adapter/--eval-dir.

Arms (each in a fresh Python process, --repeats times, the order reversed in every other repeat):
  merged    maple.evaluate.job.evaluate_variant(merge=True), as the workflow evaluates a 16-bit adapter: the adapter
            folded into the base weights (peft merge_and_unload), one matmul per adapted layer
  unmerged  the same with merge=False: peft's LoRA layers on the base, three matmuls per adapted layer
Both run the demo's two local tasks (demo_mc: log-likelihoods of the choices; demo_gen: greedy generation) through
lm-eval on the same held-out records. Measured per arm: the evaluation seconds (lm-eval, model load excluded) and
the load seconds (base + adapter, + the merge). Compared: each (task, language) headline score, every example's
value, every choice's log-likelihood and every generated answer.

Equal within the tolerance: every headline score of the two arms within SCORE_TOLERANCE of each other (0.05: one
example in 20 may flip where two choices are tied to within the rounding of the merged weights) and the
log-likelihoods within LOGLIK_TOLERANCE nats. On a CPU in fp32 they agree to ~1e-5 nats; in bf16 on a GPU merging
rounds the merged weights once, so small differences are expected there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_demo import TASKS, demo_task  # noqa: E402  (the demo's local tasks, as bench/gpu_demo.py evaluates them)

import bench_report  # noqa: E402  (bench/bench_report.py, beside this script)

ARMS = ("merged", "unmerged")
SCORE_TOLERANCE = 0.05
LOGLIK_TOLERANCE = 1e-3
# bf16 (a GPU): merging rounds each merged weight to bf16 (8 bits of mantissa, a relative step of 2**-8), which moves
# a log-likelihood of a few nats by a few hundredths; and one example in ten may flip where two choices are close.
BF16_SCORE_TOLERANCE = 0.1
BF16_LOGLIK_TOLERANCE = 0.1


def tolerances(device: str) -> tuple[float, float]:
    """(score, log-likelihood) tolerances: fp32 on a CPU, bf16 on a GPU (maple.train.models.compute_dtype)."""
    if device == "cuda":
        return BF16_SCORE_TOLERANCE, BF16_LOGLIK_TOLERANCE
    return SCORE_TOLERANCE, LOGLIK_TOLERANCE


FIGURES = ("eval_seconds", "load_seconds")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="results/models/smollm2", help="the base model directory")
    parser.add_argument("--adapter", default="results/adapters/smollm2/demo/r8-q16", help="a 16-bit LoRA adapter")
    parser.add_argument("--eval-dir", default="results/data/demo/eval", help="the held-out sets (eval_mc/, eval_gen/)")
    parser.add_argument("--prompt-format", default="chat_template", help="the base's prompt format (models.<alias>)")
    parser.add_argument("--languages", default="en,de,zh,sw", help="comma-separated; each needs a held-out file")
    parser.add_argument("--limit", type=int, default=10, help="examples per language and task")
    parser.add_argument("--repeats", type=int, default=None, help="per arm (default 3; 1 with --smoke)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per arm's process")
    parser.add_argument("--batch-size", default="8")
    parser.add_argument("--json", help="write the figures (per arm, per repeat, ratios, agreement) here")
    parser.add_argument("--smoke", action="store_true", help="a check that the benchmark runs: 1 repeat")
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.smoke else 3
    return args


def task_run(alias: str, args):
    task = demo_task(alias, Path(args.eval_dir), args.languages.split(","), args.limit)
    missing = [f for f in task.eval_files.values() if not os.path.isfile(f)]
    if missing:
        raise SystemExit(f"--eval-dir: no held-out file {missing[0]} (--languages {args.languages})")
    return task


def run_arm(args) -> dict:
    """One arm in this process: every task, scores and samples under args.out; the times and what lm-eval gave."""
    import torch
    from maple.evaluate.job import evaluate_variant
    from maple.runtime.records import read_jsonl

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    merge = args.arm == "merged"
    batch = int(args.batch_size) if args.batch_size.isdigit() else args.batch_size
    figures = {"eval_seconds": 0.0, "load_seconds": 0.0, "tasks": {}}
    for alias in TASKS:
        task = task_run(alias, args)
        scores = {lang: out / f"{alias}_{lang}.json" for lang in task.eval_files}
        samples = {lang: out / f"{alias}_{lang}.samples.jsonl" for lang in task.eval_files}
        evaluate_variant(
            model_alias="bench",
            variant="adapter",
            base_source=args.base,
            adapter_dir=args.adapter,
            bits=16,
            task=task,
            score_files=scores,
            prompt_format=args.prompt_format,
            batch_size=batch,
            samples_files=samples,
            merge=merge,
        )
        per_lang = {}
        for lang, path in scores.items():
            score = json.loads(path.read_text())
            provenance = score["provenance"]
            per_lang[lang] = {
                "value": score["value"],
                "per_example": [e["value"] for e in score["per_example"]],
                "responses": [s["filtered_resps"] for s in read_jsonl(samples[lang])],
            }
        figures["eval_seconds"] += provenance["eval_seconds"]
        figures["load_seconds"] += provenance["model_load_seconds"]
        figures["tasks"][alias] = per_lang
        assert provenance["adapter_merged"] is merge, provenance["adapter_merged"]
    return figures


def agreement(a: dict, b: dict, device: str = "cpu") -> dict:
    """How far the two arms' results are apart: headline scores, per-example values, log-likelihoods, answers."""
    score_diff, examples, same_examples, loglik_diff, answers, same_answers = 0.0, 0, 0, 0.0, 0, 0
    for alias, langs in a["tasks"].items():
        for lang, x in langs.items():
            y = b["tasks"][alias][lang]
            score_diff = max(score_diff, abs(x["value"] - y["value"]))
            examples += len(x["per_example"])
            same_examples += sum(u == v for u, v in zip(x["per_example"], y["per_example"]))
            for rx, ry in zip(x["responses"], y["responses"]):
                if TASKS[alias][0] == "multiple_choice":  # [[loglik, is_greedy], ...] per choice
                    for cx, cy in zip(rx, ry):
                        loglik_diff = max(loglik_diff, abs(float(cx[0]) - float(cy[0])))
                else:
                    answers += 1
                    same_answers += rx == ry
    return {
        "max_score_difference": score_diff,
        "examples": examples,
        "same_example_values": same_examples,
        "max_loglik_difference": loglik_diff,
        "generations": answers,
        "same_generations": same_answers,
        "within_tolerance": score_diff <= tolerances(device)[0] and loglik_diff <= tolerances(device)[1],
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the arms inherit it
    if args.arm:
        Path(args.out, "result.json").write_text(json.dumps(run_arm(args)))
        return
    for path, what in ((args.base, "--base"), (args.adapter, "--adapter")):
        if not os.path.isdir(path):
            raise SystemExit(f"{what}: no directory {path} (see the docstring: what to build first)")
    for alias in TASKS:
        task_run(alias, args)  # every held-out file exists, before any arm starts
    forward = list(argv if argv is not None else sys.argv[1:])
    if "--json" in forward:
        i = forward.index("--json")
        del forward[i : i + 2]
    forward += ["--repeats", str(args.repeats)]
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory(prefix="bench-merge-") as tmp:
        for repeat in range(args.repeats):
            for arm in ARMS if repeat % 2 == 0 else ARMS[::-1]:
                out = Path(tmp, f"{arm}-{repeat}")
                out.mkdir()
                started = time.time()
                proc = subprocess.run(
                    [sys.executable, __file__, *forward, "--arm", arm, "--out", str(out)],
                    capture_output=True,
                    text=True,
                )
                if proc.returncode != 0:
                    raise SystemExit(f"arm {arm} failed ({proc.returncode}):\n{proc.stderr[-5000:]}")
                result = json.loads((out / "result.json").read_text())
                result["repeat"], result["process_seconds"] = repeat, time.time() - started
                runs[arm].append(result)
                print(
                    f"repeat {repeat + 1} {arm:>8}: eval {result['eval_seconds']:.1f} s, load "
                    f"{result['load_seconds']:.1f} s, process {result['process_seconds']:.1f} s",
                    flush=True,
                )
    summary = {arm: bench_report.figures(rs, FIGURES) for arm, rs in runs.items()}
    ratios = {
        key: bench_report.paired_ratio([r[key] for r in runs["unmerged"]], [r[key] for r in runs["merged"]])
        for key in FIGURES
    }
    agree = [agreement(m, u, args.device) for m, u in zip(runs["merged"], runs["unmerged"])]
    score_tolerance, loglik_tolerance = tolerances(args.device)
    scores = {
        arm: {alias: {lang: x["value"] for lang, x in langs.items()} for alias, langs in runs[arm][0]["tasks"].items()}
        for arm in ARMS
    }
    print(
        f"\nmedian (min-max) of {args.repeats} repeat(s) per arm, arms alternating, each in its own process; "
        f"base {args.base}, adapter {args.adapter}, languages {args.languages}, limit {args.limit}, "
        f"{args.threads} thread(s)"
    )
    for arm in ARMS:
        s = summary[arm]
        print(
            f"{arm:>8}: eval s {bench_report.fmt(s['eval_seconds'], '{:.1f}')}, "
            f"load s {bench_report.fmt(s['load_seconds'])}"
        )
    print(
        f"unmerged / merged evaluation seconds: x{bench_report.fmt(ratios['eval_seconds'])} (median (min-max) of the "
        f"per-repeat ratios); load seconds x{bench_report.fmt(ratios['load_seconds'])}"
    )
    a = agree[0]
    print(
        f"scores: max difference {a['max_score_difference']:.3f} (tolerance {score_tolerance}), "
        f"{a['same_example_values']}/{a['examples']} examples equal, max log-likelihood difference "
        f"{a['max_loglik_difference']:.2e} nats (tolerance {loglik_tolerance}), {a['same_generations']}/"
        f"{a['generations']} generations identical: {'equal' if all(x['within_tolerance'] for x in agree) else 'NOT equal'} "
        "within the tolerance"
    )
    for alias in TASKS:
        print(
            f"  {alias}: "
            + ", ".join(
                f"{lang} {scores['merged'][alias][lang]:.2f}/{scores['unmerged'][alias][lang]:.2f}"
                for lang in scores["merged"][alias]
            )
            + " (merged/unmerged)"
        )
    if args.json:
        settings = {
            k: getattr(args, k)
            for k in (
                "base",
                "adapter",
                "eval_dir",
                "prompt_format",
                "languages",
                "limit",
                "repeats",
                "device",
                "threads",
                "batch_size",
                "smoke",
            )
        }
        report = bench_report.header("merge_eval", settings, args.device)
        report["machine"]["torch_threads"] = args.threads
        report.update(
            arms={
                arm: {
                    "figures": summary[arm],
                    "runs": [{k: r[k] for k in (*FIGURES, "repeat", "process_seconds")} for r in runs[arm]],
                }
                for arm in ARMS
            },
            ratios={"unmerged/merged": ratios},
            scores=scores,
            agreement=agree,
            tolerance={"score": score_tolerance, "loglik_nats": loglik_tolerance},
        )
        bench_report.write(args.json, report)
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
