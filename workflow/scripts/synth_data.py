"""Snakemake rule synth_data: one dataset's train set, held-out evaluation sets and statistics."""

import json
from pathlib import Path

from maple.data.synthesis import statistics, synthesize
from maple.runtime.atomic import write_json
from maple.runtime.jobs import logged_to, use_threads
from maple.runtime.records import write_jsonl


def main(
    name: str, spec: dict, languages: dict, seed: int, lexicon_dir: str, train_file: str, eval_dir: str, stats_file: str
) -> dict:
    data = synthesize(name, spec, languages, seed, lexicon_dir)
    eval_dir = Path(eval_dir)
    for kind in ("eval_mc", "eval_gen"):
        for lang, records in data[kind].items():
            write_jsonl(records, eval_dir / kind / f"{lang}.jsonl")
    stats = statistics(data)
    write_json(stats_file, stats)
    write_jsonl(data["train"], train_file)  # last: the train file's presence marks the dataset complete
    return stats


if __name__ == "__main__":
    # a teacher or translator model's job claims a GPU like the finetunes (rule synth_data: resources gpu); the
    # other backends load no model and leave the devices alone
    gpus = int(snakemake.resources.get("gpu", 0)) or None  # noqa: F821
    offline = bool(snakemake.resources.get("hub_offline", 0))  # noqa: F821
    with logged_to(snakemake.log[0], gpus=gpus, hub_offline=offline):  # noqa: F821
        use_threads(snakemake.threads)  # noqa: F821
        stats = main(
            snakemake.wildcards.data,  # noqa: F821
            snakemake.params.spec,  # noqa: F821
            snakemake.params.languages,  # noqa: F821
            snakemake.params.seed,  # noqa: F821
            snakemake.params.lexicon_dir,  # noqa: F821
            snakemake.output.train,  # noqa: F821
            snakemake.output.eval_dir,  # noqa: F821
            snakemake.output.stats,  # noqa: F821
        )
        print(json.dumps(stats, ensure_ascii=False))
