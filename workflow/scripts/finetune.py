"""Snakemake rule finetune: one LoRA / QLoRA adapter (model x data x rank x bits).

By hand: python workflow/scripts/finetune.py --base results/models/tiny --train results/data/demo/train.jsonl \
    --out /tmp/adapter --rank 4 --bits 4
A rerun of the same command after a kill resumes from the last checkpoint in /tmp/adapter.work/; --attempt N runs
with the micro-batch of Snakemake's N-th attempt (halved N - 1 times).
"""

import argparse
import json

from maple.runtime.jobs import logged_to, use_threads
from maple.train.finetune import finetune
from maple.train.params import FinetuneParams, add_cli_arguments, micro_batch_for_attempt, params_from_cli


def run_from_snakemake(smk) -> dict:
    """The rule's resources carry Snakemake's attempt and the micro-batch the rule derived from it."""
    attempt = int(getattr(smk.resources, "attempt", 1))
    train = {**smk.params.train, "micro_batch_size": int(smk.resources.micro_batch_size)}
    params = FinetuneParams(rank=int(smk.wildcards.rank), bits=int(smk.wildcards.bits), **train)
    return finetune(smk.params.base_source, smk.input.train, smk.output.adapter, params, attempt=attempt)


def cli_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="hub id or local directory of the base model")
    parser.add_argument("--train", required=True, help="train.jsonl in the instruction-record format")
    parser.add_argument("--out", required=True, help="adapter directory to write")
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--bits", type=int, choices=(4, 8, 16), default=16)
    parser.add_argument(
        "--attempt", type=int, default=1, help="as Snakemake's attempt: halves the micro-batch N-1 times"
    )
    add_cli_arguments(parser)  # every other FinetuneParams field, with the config schema's default and help
    return parser


def params_from_args(args: argparse.Namespace) -> FinetuneParams:
    """The finetune's params, with the micro-batch of Snakemake's attempt `--attempt` (as the rule computes it)."""
    params = params_from_cli(args, args.rank, args.bits)
    params.micro_batch_size = micro_batch_for_attempt(
        params.effective_batch_size, params.micro_batch_size, args.attempt
    )
    return params


def cli() -> None:
    args = cli_parser().parse_args()
    metrics = finetune(args.base, args.train, args.out, params_from_args(args), attempt=args.attempt)
    summary = ("train_loss", "global_step", "resumed_from_step", "wall_seconds", "real_tokens_per_second")
    print(json.dumps({k: metrics[k] for k in (*summary, "useful_token_fraction")}))


if __name__ == "__main__":
    if "snakemake" in globals():
        with logged_to(
            snakemake.log[0],  # noqa: F821
            gpus=int(snakemake.resources.get("gpu", 0)),  # noqa: F821
            hub_offline=bool(snakemake.resources.get("hub_offline", 0)),  # noqa: F821
        ):
            use_threads(snakemake.threads)  # noqa: F821
            run_from_snakemake(snakemake)  # noqa: F821
    else:
        cli()
