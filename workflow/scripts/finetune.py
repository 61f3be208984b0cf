"""Snakemake rule finetune: one LoRA / QLoRA adapter (model x data x rank x bits).

By hand: python workflow/scripts/finetune.py --base results/models/tiny --train results/data/demo/train.jsonl \
    --out /tmp/adapter --rank 4 --bits 4
"""

import argparse
import json

from maple.jobs import logged_to, use_threads
from maple.training import FinetuneParams, finetune


def run_from_snakemake(smk) -> dict:
    params = FinetuneParams(rank=int(smk.wildcards.rank), bits=int(smk.wildcards.bits), **smk.params.train)
    return finetune(smk.params.base_source, smk.input.train, smk.output.adapter, params)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="hub id or local directory of the base model")
    parser.add_argument("--train", required=True, help="train.jsonl in the instruction-record format")
    parser.add_argument("--out", required=True, help="adapter directory to write")
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--bits", type=int, choices=(4, 8, 16), default=16)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--params", default="{}", help="JSON of further FinetuneParams fields")
    args = parser.parse_args()
    params = FinetuneParams(rank=args.rank, bits=args.bits, seed=args.seed, **json.loads(args.params))
    metrics = finetune(args.base, args.train, args.out, params)
    print(json.dumps({k: metrics[k] for k in ("train_loss", "global_step", "wall_seconds")}))


if __name__ == "__main__":
    if "snakemake" in globals():
        with logged_to(snakemake.log[0]):  # noqa: F821
            use_threads(snakemake.threads)  # noqa: F821
            run_from_snakemake(snakemake)  # noqa: F821
    else:
        cli()
