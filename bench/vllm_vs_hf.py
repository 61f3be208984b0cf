"""The GPU check's vllm_vs_hf step: the demo's generation task (demo_gen) on the tiny base and its 16-bit adapter
through engine vllm, on one engine with the adapter as its LoRA request (maple.evaluate.lora_group.evaluate_group:
the workflow's own group job), against the same task on the same model and adapter through engine hf, which the
check's demo step ran (bench/gpu_demo.py wrote its score and samples files). Per variant: examples per second both
ways, the share of identical answers, the score difference.

  python bench/vllm_vs_hf.py --demo WORK/demo --languages en,sw --limit 20 --json WORK/vllm_vs_hf.json

Where vLLM cannot be imported it writes {"status": "skipped", "reason": ...} and exits with 3, which the check
records as the step skipped, not failed. Prints one JSON line either way.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIPPED = 3  # the exit status bench/gpu_check.sh records as `skipped`
TASK = "demo_gen"
VARIANTS = {"base": None, "demo-r4-q16": "r4-q16"}  # variant -> its adapter under the demo's adapters/


def read_arm(scores_dir: Path, samples_dir: Path, variant: str, languages: list[str]) -> dict:
    """One variant's evaluation of the task as its files hold it: per language the score and the answers by doc_id;
    the examples of its whole job (every language in it) and the job's lm-eval seconds."""
    arm = {"languages": {}}
    for lang in languages:
        score = json.loads((scores_dir / variant / TASK / f"{lang}.json").read_text(encoding="utf-8"))
        answers = {}
        for line in (samples_dir / variant / TASK / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines():
            sample = json.loads(line)
            answers[sample["doc_id"]] = sample["filtered_resps"][0]
        arm["languages"][lang] = {"value": score["value"], "answers": answers}
    job = score["provenance"]
    arm["eval_seconds"] = job["eval_seconds"]
    arm["examples"] = sum(
        json.loads((scores_dir / variant / TASK / f"{part}.json").read_text(encoding="utf-8"))["n"]
        for part in job["languages_in_job"]
    )
    return arm


def compare(hf: dict, vllm: dict) -> dict:
    """The two arms of one variant side by side: examples per second (each job's examples over its lm-eval
    seconds), identical answers over the examples both answered, the mean score and its largest difference."""
    identical = total = 0
    differences = []
    for lang, h in hf["languages"].items():
        v = vllm["languages"][lang]
        shared = sorted(set(h["answers"]) & set(v["answers"]))
        identical += sum(h["answers"][d] == v["answers"][d] for d in shared)
        total += len(shared)
        differences.append(v["value"] - h["value"])
    n = len(differences)
    hf_rate = hf["examples"] / hf["eval_seconds"] if hf["eval_seconds"] else None
    vllm_rate = vllm["examples"] / vllm["eval_seconds"] if vllm["eval_seconds"] else None
    return {
        "examples": total,
        "hf_examples_per_s": hf_rate,
        "vllm_examples_per_s": vllm_rate,
        "vllm_over_hf": vllm_rate / hf_rate if hf_rate and vllm_rate else None,
        "identical_answers": identical / total if total else None,
        "hf_score": sum(h["value"] for h in hf["languages"].values()) / n,
        "vllm_score": sum(v["value"] for v in vllm["languages"].values()) / n,
        "score_difference": sum(differences) / n,
        "max_language_score_difference": max(differences, key=abs),
    }


def run(demo: Path, languages: list[str], limit: int, seed: int) -> dict:
    """The vLLM arm through the workflow's group job, then each variant compared with the demo's hf arm."""
    sys.path.insert(0, str(REPO / "workflow" / "scripts"))
    sys.path.insert(0, str(REPO / "bench"))
    import vllm
    from gpu_demo import demo_task
    from maple.evaluate.lora_group import evaluate_group
    from maple.evaluate.vllm_engine import max_lora_rank

    task = replace(
        demo_task(TASK, demo / "data" / "demo" / "eval", languages, limit), engine="vllm", lora_rank=max_lora_rank([4])
    )
    out = demo / "vllm"
    members = [
        {
            "variant": variant,
            "adapter_dir": str(demo / "adapters" / adapter) if adapter else None,
            "score_files": {lang: str(out / "scores" / variant / TASK / f"{lang}.json") for lang in languages},
            "samples_files": {lang: str(out / "samples" / variant / TASK / f"{lang}.jsonl") for lang in languages},
        }
        for variant, adapter in VARIANTS.items()
    ]
    evaluate_group(
        model_alias="tiny",
        base_source=str(demo / "models" / "tiny"),
        bits=16,
        task=task,
        members=members,
        batch_size=16,
        seed=seed,
        engine={"enforce_eager": True},  # no CUDA graph capture: the check's seconds go to the comparison
    )
    variants = {
        variant: compare(
            read_arm(demo / "scores", demo / "samples", variant, languages),
            read_arm(out / "scores", out / "samples", variant, languages),
        )
        for variant in VARIANTS
    }
    load = json.loads(Path(members[0]["score_files"][languages[0]]).read_text())["provenance"]["model_load_seconds"]
    return {
        "status": "ran",
        "task": TASK,
        "languages": languages,
        "limit": limit,
        "vllm": vllm.__version__,
        "vllm_load_seconds": load,
        "enforce_eager": True,
        "variants": variants,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, required=True, help="bench/gpu_demo.py's --out of the same check")
    parser.add_argument("--languages", default="en,sw")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        import vllm  # noqa: F401
    except ImportError as error:  # absent, or installed against another torch / CUDA
        result, status = {"status": "skipped", "reason": f"vLLM is not importable here: {error}"}, SKIPPED
    else:
        result, status = run(args.demo, args.languages.split(","), args.limit, args.seed), 0
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result))
    return status


if __name__ == "__main__":
    sys.exit(main())
