"""bench/finetune_throughput.py's command line and the workflow-config overrides it makes of it."""

from __future__ import annotations

import argparse
import os

from finetune_models import ARCHS, ARMS, DEFAULT_ARMS, REPO


def overrides(args) -> dict:
    return {
        "max_seq_length": args.max_seq_length,
        "gradient_checkpointing": args.gradient_checkpointing,
        "micro_batch_size": args.micro_batch_size,
        "effective_batch_size": args.effective_batch_size,
    }


DEMO_EPOCHS = 10  # the demo's 840 examples x 10 epochs: 21-25 s of the maple arm's loop on one CPU thread
SMOKE_STEPS = 2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        default=str(REPO / "config" / "config.yaml"),
        help="workflow config whose finetune section sets the params (default: the demo)",
    )
    parser.add_argument("--base", default="results/models/tiny", help="base model directory (and tokenizer)")
    parser.add_argument("--train", default="results/data/demo/train.jsonl")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--arch",
        choices=("tiny", *ARCHS),
        default="tiny",
        help="tiny: the model at --base; otherwise a random-init model of that shape",
    )
    parser.add_argument("--rank", type=int, help="LoRA rank (default: the config's first)")
    parser.add_argument("--bits", type=int, choices=(4, 8, 16), default=16)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--epochs",
        type=float,
        help=f"epochs per arm, the same for every arm (default {DEMO_EPOCHS} with --arch tiny: over 20 s of the "
        "measured loop per arm on the demo; 1 for the random-init shapes)",
    )
    parser.add_argument("--max-steps", type=int, help="optimiser steps per arm instead of epochs")
    parser.add_argument(
        "--batching",
        choices=("length_grouped", "packed", "padded"),
        help="the maple arm's batching (default: the config's)",
    )
    parser.add_argument("--max-seq-length", type=int, help="tokens per example / packed row (default: the config's)")
    parser.add_argument(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="recompute activations in the backward pass (default: the config's)",
    )
    parser.add_argument("--micro-batch-size", type=int, help="default: the config's")
    parser.add_argument("--effective-batch-size", type=int, help="default: the config's")
    parser.add_argument(
        "--model-cache",
        help="--arch at --bits 4/8: the directory the random-init model is saved in, reused where it is already there",
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=0,
        help="optimiser steps left out of the steady_* figures and steady MFU (the first steps' warm-up)",
    )
    parser.add_argument("--repeats", type=int, help="repeats, the arms alternating in each (default 5)")
    parser.add_argument("--arms", default=",".join(DEFAULT_ARMS), help=f"a comma-separated subset of {ARMS}")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads per arm (default 1 on CPU: steadier on a shared machine; torch's default on CUDA)",
    )
    parser.add_argument("--json", help="write the figures (per arm, per repeat, ratios, machine, versions) here")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"a check that the benchmark runs, not a measurement: {SMOKE_STEPS} steps, 1 repeat (unless given)",
    )
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # Defaults that depend on other options, resolved alike in the parent and in each arm's process.
    if args.smoke and args.max_steps is None:
        args.max_steps = SMOKE_STEPS
    if args.epochs is None:
        args.epochs = float(DEMO_EPOCHS if args.arch == "tiny" else 1)
    if args.repeats is None:
        args.repeats = 1 if args.smoke else 5
    if args.threads is None:
        args.threads = 1 if args.device == "cpu" else (os.cpu_count() or 1)
    return args
