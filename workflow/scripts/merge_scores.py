"""Snakemake rules merge_<task>: the score file (and samples file) of a language whose examples were split into
ranges over several evaluation jobs, from the ranges' files (maple.evaluate.scores.merge_ranges)."""

import json

from maple.evaluate.scores import merge_ranges
from maple.runtime.atomic import write_json
from maple.runtime.jobs import logged_to
from maple.runtime.records import read_jsonl, write_jsonl


def main(part_files: list[str], score_file: str, samples_parts: list[str] = (), samples_file: str | None = None):
    parts = []
    for path in part_files:
        with open(path, encoding="utf-8") as f:
            parts.append(json.load(f))
    merged = merge_ranges(parts)
    if samples_file:
        samples = sorted((s for path in samples_parts for s in read_jsonl(path)), key=lambda s: s["doc_id"])
        write_jsonl(samples, samples_file)
        merged["provenance"]["samples_file"] = samples_file
    write_json(score_file, merged)
    return {"lang": merged["lang"], "value": merged["value"], "n": merged["n"], "ranges": len(parts)}


if __name__ == "__main__":
    with logged_to(snakemake.log[0]):  # noqa: F821
        print(
            json.dumps(
                main(
                    list(snakemake.input.parts),  # noqa: F821
                    snakemake.output.score,  # noqa: F821
                    list(snakemake.input.get("samples", [])),  # noqa: F821
                    snakemake.output.get("samples"),  # noqa: F821
                )
            )
        )
