"""Generation settings side by side on one model (default: SmolLM2-135M-Instruct on CPU, the demo's held-out
generation sets), through the evaluation job's own code (maple.evaluate.job.evaluate_variant):

  before   batch_size 1, no max_length, max_gen_toks 256: what batch_size 'auto' at the full context gives a 7B
           model (one example at a time) with lm-eval's fallback answer length
  batched  batch_size 16, max_length 512, max_gen_toks 256: the same protocol, explicit batch and context cap
  capped   batch_size 16, max_length 512, max_gen_toks 32: answers cut at 32 new tokens (a protocol change)

Per arm: generated examples per second (lm-eval's time, model load excluded) and the exact-match score; between
arms: how many per-example values and answers agree. Every arm keeps the task's stop sequence (a newline).

  python bench/generation_settings.py --base results/models/smollm2 --eval-dir results/data/demo/eval \
      --json bench/reference/generation_settings-smollm2-2core.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

ARMS = {
    "before": {"batch_size": 1, "max_length": None, "max_gen_toks": 256},
    "batched": {"batch_size": 16, "max_length": 512, "max_gen_toks": 256},
    "capped": {"batch_size": 16, "max_length": 512, "max_gen_toks": 32},
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="results/models/smollm2", help="the model directory")
    parser.add_argument("--eval-dir", default="results/data/demo/eval", help="the held-out sets (eval_gen/)")
    parser.add_argument("--prompt-format", default="chat_template")
    parser.add_argument("--languages", default="en,de,zh,hi,sw")
    parser.add_argument("--limit", type=int, default=8, help="examples per language")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--out", default=None, help="where the arms' score files go (default: a temp dir)")
    return parser.parse_args(argv)


def run_arm(name: str, args, out: Path) -> dict:
    from maple.evaluate.job import evaluate_variant
    from maple.runtime.records import read_jsonl
    from maple.runtime.tasks import Task

    settings = ARMS[name]
    languages = args.languages.split(",")
    files = {lang: str(Path(args.eval_dir) / "eval_gen" / f"{lang}.jsonl") for lang in languages}
    missing = [f for f in files.values() if not os.path.isfile(f)]
    if missing:
        raise SystemExit(f"--eval-dir: no held-out file {missing[0]}")
    task = Task(
        alias="gen",
        source="local",
        kind="generate",
        metric="exact_match",
        lm_eval_names={lang: f"maple_gen_{lang}" for lang in languages},
        eval_files=files,
        limit=args.limit,
        max_gen_toks=settings["max_gen_toks"],
        max_length=settings["max_length"],
    )
    scores = {lang: out / f"{name}_{lang}.json" for lang in languages}
    samples = {lang: out / f"{name}_{lang}.samples.jsonl" for lang in languages}
    started = time.time()
    evaluate_variant(
        model_alias="bench",
        variant="base",
        base_source=args.base,
        adapter_dir=None,
        bits=16,
        task=task,
        score_files=scores,
        prompt_format=args.prompt_format,
        batch_size=settings["batch_size"],
        samples_files=samples,
    )
    wall = time.time() - started
    per_example, responses, values, eval_seconds = [], [], [], 0.0
    for lang in languages:
        score = json.loads(scores[lang].read_text())
        eval_seconds = score["provenance"]["eval_seconds"]  # the job's lm-eval time, shared by its files
        values.append(score["value"])
        per_example += [e["value"] for e in score["per_example"]]
        responses += [s["filtered_resps"] for s in read_jsonl(samples[lang])]
    n = len(per_example)
    return {
        **settings,
        "examples": n,
        "eval_seconds": eval_seconds,
        "wall_seconds": wall,
        "examples_per_s": n / eval_seconds,
        "exact_match": sum(per_example) / n,
        "per_language": dict(zip(languages, values)),
        "per_example": per_example,
        "responses": responses,
    }


def agreement(a: dict, b: dict) -> dict:
    return {
        "per_example_equal": sum(x == y for x, y in zip(a["per_example"], b["per_example"])),
        "responses_equal": sum(x == y for x, y in zip(a["responses"], b["responses"])),
        "of": len(a["per_example"]),
        "scores_identical": a["per_language"] == b["per_language"],
    }


def main(argv=None) -> None:
    import tempfile

    import torch

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.arms.split(",")
    with tempfile.TemporaryDirectory(prefix="gen-bench-") as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        arms = {name: run_arm(name, args, out) for name in names}
    pairs = [
        (a, b)
        for a, b in (("before", "batched"), ("batched", "capped"), ("before", "capped"))
        if a in arms and b in arms
    ]
    result = {
        "model": args.base,
        "languages": args.languages,
        "limit": args.limit,
        "threads": args.threads,
        "arms": {k: {kk: vv for kk, vv in v.items() if kk != "responses"} for k, v in arms.items()},
        "speedup_vs_before": {k: v["examples_per_s"] / arms["before"]["examples_per_s"] for k, v in arms.items()}
        if "before" in arms
        else {},
        "agreement": {f"{a}_vs_{b}": agreement(arms[a], arms[b]) for a, b in pairs},
    }
    for name, arm in arms.items():
        print(f"{name:8s} {arm['examples_per_s']:7.2f} examples/s  exact_match {arm['exact_match']:.4f}")
    print(json.dumps({"speedup_vs_before": result["speedup_vs_before"], "agreement": result["agreement"]}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
