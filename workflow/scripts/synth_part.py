"""Snakemake rule synth_part: the records of some languages of a model-written dataset (maple.data.synthesis.build_part),
which rule synth_data holds out and writes with the other parts."""

from maple.data.synthesis import build_part
from maple.runtime.jobs import logged_to, use_threads
from maple.runtime.records import write_jsonl


def main(spec: dict, languages: dict, seed: int, produce: list[str], out_file: str) -> int:
    records = build_part(spec, languages, seed, produce)
    write_jsonl(records, out_file)
    return len(records)


if __name__ == "__main__":
    gpus = int(snakemake.resources.get("gpu", 0)) or None  # noqa: F821
    offline = bool(snakemake.resources.get("hub_offline", 0))  # noqa: F821
    with logged_to(snakemake.log[0], gpus=gpus, hub_offline=offline):  # noqa: F821
        use_threads(snakemake.threads)  # noqa: F821
        p = snakemake.params  # noqa: F821
        n = main(p.spec, p.languages, p.seed, p.produce, snakemake.output[0])  # noqa: F821
        print(f"{n} records of {', '.join(p.produce)}")
