"""The demo's stages through the workflow's own Python code, without Snakemake, in one process: the tiny model built
(workflow/scripts/build_tiny_model.py), the template data (workflow/scripts/synth_data.py), a LoRA finetune at each
bit-width (maple.train.finetune) and the base and each adapter evaluated on the demo's two local tasks
(maple.evaluate.job.evaluate_variant, adapters on their base quantised as in training; lm-eval's samples beside the
scores, for bench/vllm_vs_hf.py). bench/gpu_check.sh runs it on the GPU, where Snakemake is not installed; what it
writes under --out is what the rules write under results/.

  .venv/bin/python bench/gpu_demo.py --out /tmp/demo --smoke   # small sizes (the check's rehearsal on a CPU)

Prints one JSON line: per variant its device, dtype, bits, finetune seconds and tokens/s, mean score per task.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

LEXICONS = REPO / "workflow" / "resources" / "lexicons"
TASKS = {"demo_mc": ("multiple_choice", "eval_mc", "acc"), "demo_gen": ("generate", "eval_gen", "exact_match")}
SMOKE = {
    "tiny_model": {
        "pretrain_epochs": 1,
        "pretrain_sentences_per_language": 40,
        "pretrain_qa_per_language": 20,
        "vocab_size": 400,
        "hidden_size": 64,  # bitsandbytes' CPU 4-bit inference packs blocks of 64 weights
        "intermediate_size": 128,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
    },
    "data": {"n_train_per_language": 16, "n_eval_per_language": 4},
    "languages": ["en", "sw"],
    "epochs": 1,
}


def study(config_path: Path):
    import yaml
    from maple.config.study import resolve_study
    from maple.config.validation import with_defaults

    with open(config_path, encoding="utf-8") as f:
        return resolve_study(with_defaults(yaml.safe_load(f)), config_dir=str(config_path.parent))


def demo_task(alias: str, eval_dir: Path, languages: list[str], limit: int):
    """The demo's local task `alias` (demo_mc, demo_gen) over the held-out sets under eval_dir (a dataset's eval/),
    as a job runs it."""
    from maple.runtime.tasks import Task

    kind, subdir, metric = TASKS[alias]
    return Task(
        alias=alias,
        source="local",
        kind=kind,
        metric=metric,
        lm_eval_names={lang: f"maple_{alias}_{lang}" for lang in languages},
        eval_files={lang: str(Path(eval_dir) / subdir / f"{lang}.jsonl") for lang in languages},
        limit=limit,
    )


def run(
    out: Path, config_path: Path, bits_list: list[int], rank: int, smoke: bool, limit: int, epochs: float | None = None
) -> dict:
    import build_tiny_model
    import synth_data
    from maple.evaluate.job import evaluate_variant
    from maple.train.finetune import finetune
    from maple.train.params import FinetuneParams, rule_params

    s = study(config_path)
    dataset = dict(s.datasets["demo"])
    spec = dict(s.tiny_model)
    languages = list(dataset["languages"])
    params = rule_params(s.finetune_params, s.models["tiny"], s.seed)
    if smoke:
        spec.update(SMOKE["tiny_model"])
        dataset.update(SMOKE["data"], languages=SMOKE["languages"])
        languages = SMOKE["languages"]
        params["epochs"] = SMOKE["epochs"]
    if epochs is not None:  # the check's: every path once, not the demo's learning
        spec["pretrain_epochs"] = max(1, round(epochs))
        params["epochs"] = epochs
    figures = {"device": None, "variants": {}, "seconds": {}}
    started = time.perf_counter()
    base = out / "models" / "tiny"
    build_tiny_model.main(str(LEXICONS), languages, str(base), s.seed, spec)
    figures["seconds"]["build_tiny_model"] = time.perf_counter() - started
    data = out / "data" / "demo"
    started = time.perf_counter()
    synth_data.main(
        "demo",
        dataset,
        {lang: s.languages[lang] for lang in languages},
        s.seed,
        str(LEXICONS),
        str(data / "train.jsonl"),
        str(data / "eval"),
        str(data / "stats.json"),
    )
    figures["seconds"]["synth_data"] = time.perf_counter() - started
    variants = {"base": (None, 16)}
    for bits in bits_list:
        adapter = out / "adapters" / f"r{rank}-q{bits}"
        metrics = finetune(
            str(base), str(data / "train.jsonl"), adapter, FinetuneParams(rank=rank, bits=bits, **params)
        )
        variants[f"demo-r{rank}-q{bits}"] = (str(adapter), bits)
        figures["variants"][f"demo-r{rank}-q{bits}"] = {
            k: metrics.get(k)
            for k in ("device", "dtype", "train_seconds", "real_tokens_per_second", "peak_memory_bytes", "train_loss")
        }
    for variant, (adapter, bits) in variants.items():
        entry = figures["variants"].setdefault(variant, {})
        for alias in TASKS:
            task = demo_task(alias, data / "eval", languages, limit)
            scores = {lang: out / "scores" / variant / alias / f"{lang}.json" for lang in languages}
            samples = {lang: out / "samples" / variant / alias / f"{lang}.jsonl" for lang in languages}
            values = evaluate_variant(
                model_alias="tiny",
                variant=variant,
                base_source=str(base),
                adapter_dir=adapter,
                bits=bits,
                task=task,
                score_files=scores,
                samples_files=samples,
                batch_size=16,
                seed=s.seed,
            )
            provenance = json.loads(next(iter(scores.values())).read_text())["provenance"]
            entry[alias] = sum(values.values()) / len(values)
            entry[f"{alias}_eval_seconds"] = provenance["eval_seconds"]
            entry["eval_device"], entry["eval_dtype"] = provenance["device"], provenance["dtype"]
            figures["device"] = provenance["device"]
    figures["eval_dir"] = str(data / "eval")
    figures["languages"] = languages
    return figures


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="directory for the model, data, adapters and scores")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--bits", default="4,8,16", help="comma-separated bit-widths to finetune at")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--limit", type=int, default=20, help="examples per language and task")
    parser.add_argument("--epochs", type=float, help="pretraining and finetuning epochs (default: the config's)")
    parser.add_argument("--smoke", action="store_true", help="small sizes: a check that it runs")
    args = parser.parse_args(argv)
    bits = [int(b) for b in args.bits.split(",")]
    figures = run(args.out, args.config, bits, args.rank, args.smoke, args.limit, args.epochs)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
