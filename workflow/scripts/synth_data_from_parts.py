"""Snakemake rule synth_data_from_parts: a model-written dataset from the records its synth_part jobs wrote: held
out and written as rule synth_data writes a dataset (the same files), without a model."""

import json
from pathlib import Path

from maple.data.synthesis import statistics, synthesize
from maple.runtime.atomic import write_json
from maple.runtime.jobs import logged_to
from maple.runtime.records import read_jsonl, write_jsonl


def main(name: str, spec: dict, languages: dict, seed: int, parts: list[str], out) -> dict:
    records = [r for part in parts for r in read_jsonl(part)]
    data = synthesize(name, spec, languages, seed, "", records=records)
    for kind in ("eval_mc", "eval_gen"):
        for lang, held in data[kind].items():
            write_jsonl(held, Path(out.eval_dir) / kind / f"{lang}.jsonl")
    stats = statistics(data)
    write_json(out.stats, stats)
    write_jsonl(data["train"], out.train)  # last: the train file's presence marks the dataset complete
    return stats


if __name__ == "__main__":
    smk = snakemake  # noqa: F821
    with logged_to(smk.log[0]):
        p = smk.params
        stats = main(smk.wildcards.data, p.spec, p.languages, p.seed, list(smk.input.parts), smk.output)
        print(json.dumps(stats, ensure_ascii=False))
