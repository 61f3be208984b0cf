"""The project's finetune against a plain transformers Trainer with its default padding collator, side by side.

  .venv/bin/python bench/finetune_throughput.py --json bench-finetune.json   # CPU, the demo's tiny model and data
  .venv/bin/python bench/finetune_throughput.py --device cuda --arch llama-2-7b   # GPU, a random-init 7B shape
  .venv/bin/python bench/finetune_throughput.py --device cuda --arch llama-2-7b --bits 4 --arms maple \
      --max-seq-length 2048 --batching packed --gradient-checkpointing   # 4-bit QLoRA of the 7B alone (gpu_check.sh)
  .venv/bin/python bench/finetune_throughput.py --smoke --base DIR --train FILE  # does it run (2 steps, 1 repeat)

Needs the demo's model and data (`snakemake results/models/tiny results/data/demo/train.jsonl`), or --base/--train.

Arms (each run in a fresh Python process, so that peak memory is its own; 5 repeats, the arms' order reversed in
every other repeat, so that each arm's repeat i runs next to the others' repeat i):
  maple             maple.train.finetune.build_trainer, the workflow's finetune: trl SFTTrainer with the config's batching
                    (length_grouped: micro-batches of about equal length; --batching to change it), response-only
                    loss through trl's fused LM head on the response tokens only, the config's optimiser
                    (finetune.optimizer: fused AdamW by default), checkpoints every checkpoint_steps as configured
  trainer_defaults  transformers.Trainer, the default causal-LM padding collator (DataCollatorForLanguageModeling,
                    mlm=False: random micro-batches padded to their longest, loss on every token) and the Trainer's
                    default micro-batch (8), with accumulation up to the same effective batch
  trainer_same_micro  the same, at the maple arm's micro-batch (tells the padding gain from the micro-batch gain);
                    not run by default (it adds half again to the run time): --arms maple,trainer_defaults,trainer_same_micro
Common to all: the same model and LoRA (rank, alpha, dropout, target modules), learning rate, epochs / steps,
effective batch size, seed, precision (fp32 on CPU, bf16 on a GPU with bf16), SDPA attention, threads. The default
work per arm is 10 epochs of the demo data (--arch tiny): over 20 s of the measured loop per arm on a 2-core CPU, long
enough to hold still on a shared machine; on a CPU each arm runs 1 torch thread by default (--threads).

Measured per arm, over the training loop only (model loading and tokenisation excluded): real (non-padding) tokens
per second, and per CPU second of the arm's process (the work done, which other load on the machine hardly changes),
the useful-token fraction (real tokens / processed tokens, processed = every position of every micro-batch), peak
memory (CUDA: max allocated; CPU: peak RSS of the arm's process) and loop seconds. Printed: each run, per arm the
median (min-max) over the repeats, and each ratio maple / baseline as the median (min-max) of the per-repeat ratios
(maple's repeat i / the baseline's repeat i) beside the ratio of the medians. --json PATH writes all of it, every
run, the machine, the library versions and the git commit (bench/bench_report.py).

With --device cuda: model FLOPs utilisation against the measured bf16 matmul peak of the GPU (the best of square
bf16 matmuls of 4096..16384, timed with CUDA events). Model FLOPs of LoRA training, counted on real tokens only:
  4 * N_frozen per token   frozen linear weights of the blocks: forward 2N, input gradients 2N, no weight gradients
  6 * N_lora per token     LoRA A and B: forward, input gradients and weight gradients
  4 * N_lm_head per token with a label (every token for the baseline's full-sequence loss; the response tokens for
                           maple's response-only loss, the only ones its fused LM head computes)
  12 * d_attn * layers per causal (query, key) pair of an example (QK^T and AV, forward 4, backward 8)
(embedding lookups, norms, activations and optimiser steps not counted; gradient-checkpointing recomputation not
counted, as model FLOPs utilisation does not). A random-init model at --bits 4 or 8 is saved once (bf16, in a temporary
directory) and each arm loads it as the workflow loads a base, quantised by bitsandbytes while loading.
--arms maple alone measures the workflow's finetune without a baseline (no ratios).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from finetune_args import overrides, parse_args  # noqa: E402
from finetune_meters import (  # noqa: E402  (the meters and the summary of the arms' figures)
    cpu_clock,
    fmt_bytes,
    measure_bf16_peak,
    model_flops,
    steady_clock,
    steady_figures,
    summarize,
)
from finetune_models import (  # noqa: E402  (the shapes, the model loading and the baseline trainer)
    ARMS,
    TRAINER_DEFAULT_MICRO_BATCH,
    baseline_trainer,
    finetune_params,
    load_model,
    save_random_init,
)

import bench_report  # noqa: E402  (bench/bench_report.py, beside this script)


def run_arm(args) -> dict:
    """One arm in this process; returns its measurements."""
    import torch
    from maple.train.finetune import build_trainer
    from maple.train.trainer import peak_memory

    torch.set_num_threads(args.threads)
    params = finetune_params(
        args.config, args.rank, args.bits, args.seed, args.epochs, args.max_steps, args.batching, overrides(args)
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    model, tokenizer = load_model(args, params)
    with tempfile.TemporaryDirectory(prefix=f"bench-{args.arm}-") as out:
        if args.arm == "maple":
            trainer = build_trainer(args.base, args.train, params, out, model=model, tokenizer=tokenizer)
            micro = params.micro_batch_size
        else:
            micro = TRAINER_DEFAULT_MICRO_BATCH if args.arm == "trainer_defaults" else params.micro_batch_size
            trainer = baseline_trainer(params, model, tokenizer, args.train, out, micro)
            micro = trainer.args.per_device_train_batch_size
        clock = cpu_clock()
        trainer.add_callback(clock)
        steady = steady_clock(trainer.meter, args.warmup_steps)
        trainer.add_callback(steady)
        trainer.train()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    meter = trainer.meter
    result = {
        "arm": args.arm,
        "micro_batch": micro,
        "accumulation": trainer.args.gradient_accumulation_steps,
        "steps": trainer.state.global_step,
        "loop_seconds": meter.seconds(),
        **meter.summary(),
        "loop_cpu_seconds": clock.seconds,
        "real_tokens_per_cpu_second": meter.real / clock.seconds if clock.seconds else None,
        **peak_memory(),
        "batching": params.batching if args.arm == "maple" else "padded (random order)",
        **model_flops(trainer.model, meter),
        **steady_figures(trainer.model, meter, steady.mark),
        "warmup_steps": args.warmup_steps,
        "peak_reserved_bytes": int(torch.cuda.max_memory_reserved()) if torch.cuda.is_available() else None,
    }
    return result


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    if args.arm:  # a child process: one arm
        if args.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise SystemExit("--device cuda: no CUDA device")
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        Path(args.result).write_text(json.dumps(run_arm(args)))
        return

    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the children inherit it
    arms = [a for a in args.arms.split(",") if a]
    unknown = set(arms) - set(ARMS)
    if unknown or "maple" not in arms:
        raise SystemExit(f"--arms: maple, alone or with any of {ARMS[1:]}; unknown: {sorted(unknown)}")
    peak = None
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device")
        peak = measure_bf16_peak()
        print(
            f"bf16 matmul peak of {torch.cuda.get_device_name()}: {peak['flops_per_second'] / 1e12:.1f} TFLOP/s "
            f"({peak['n']}^3 matmuls)"
        )
    forward = list(argv if argv is not None else sys.argv[1:])
    for option in ("--json",):  # the parent's business only
        while option in forward:
            i = forward.index(option)
            del forward[i : i + 2]
    forward = [a for a in forward if not a.startswith("--json=")]
    # The resolved settings, so that every arm's process gets the same ones.
    forward += ["--epochs", str(args.epochs), "--repeats", str(args.repeats), "--threads", str(args.threads)]
    if args.max_steps is not None:
        forward += ["--max-steps", str(args.max_steps)]
    runs: dict[str, list[dict]] = {a: [] for a in arms}
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        if args.arch != "tiny" and args.bits != 16:
            cache = Path(args.model_cache or tmp)
            if not (cache / args.arch / "config.json").is_file():
                print(
                    f"saving a random-init {args.arch} in {cache} for the arms to load at bits {args.bits}", flush=True
                )
                save_random_init(args, cache)
            if not args.model_cache:
                forward += ["--model-cache", tmp]
        for repeat in range(args.repeats):
            order = arms if repeat % 2 == 0 else arms[::-1]
            for arm in order:
                result_file = os.path.join(tmp, f"{arm}-{repeat}.json")
                cmd = [sys.executable, __file__, *forward, "--arm", arm, "--result", result_file]
                started = time.time()
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(
                        f"arm {arm} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
                    )
                result = json.loads(Path(result_file).read_text())
                result["repeat"] = repeat
                result["process_seconds"] = time.time() - started
                result["mfu"] = (
                    result["model_flops"] / result["loop_seconds"] / peak["flops_per_second"] if peak else None
                )
                result["steady_mfu"] = (
                    result["steady_model_flops"] / result["steady_seconds"] / peak["flops_per_second"]
                    if peak and result["steady_seconds"]
                    else None
                )
                runs[arm].append(result)
                print(
                    f"repeat {repeat + 1} {arm:>18}: {result['real_tokens_per_second']:8.0f} real tok/s "
                    f"({result['real_tokens_per_cpu_second'] or 0:.0f} per CPU s), useful "
                    f"{result['useful_token_fraction']:.3f}, micro {result['micro_batch']} x {result['accumulation']}"
                    f", {result['steps']} steps in {result['loop_seconds']:.1f} s, peak {fmt_bytes(result['peak_memory_bytes'])}"
                    + (f", MFU {result['mfu']:.1%}" if peak else ""),
                    flush=True,
                )

    summary, ratios = summarize(runs)
    params = finetune_params(
        args.config, args.rank, args.bits, args.seed, args.epochs, args.max_steps, args.batching, overrides(args)
    )
    work = f"max_steps {params.max_steps}" if params.max_steps > 0 else f"{params.epochs:g} epoch(s)"
    print(
        f"\nmedian (min-max) of {args.repeats} repeat(s) per arm, arms alternating, each in its own process; "
        f"{args.device}, model {args.arch} ({args.base}), data {args.train}, rank {params.rank}, bits {params.bits}, "
        f"effective batch {params.effective_batch_size}, {work} per arm, {args.threads} thread(s)"
    )
    for arm, s in summary.items():
        print(
            f"{arm:>18}: real tok/s {bench_report.fmt(s['real_tokens_per_second'], '{:.0f}')}, per CPU s "
            f"{bench_report.fmt(s['real_tokens_per_cpu_second'], '{:.0f}')}, useful "
            f"{bench_report.fmt(s['useful_token_fraction'], '{:.3f}')}, "
            f"loop s {bench_report.fmt(s['loop_seconds'], '{:.1f}')}"
            f", peak MiB {bench_report.fmt(s['peak_memory_bytes'], '{:,.0f}', 2**-20)}"
            + (f", MFU {bench_report.fmt(s['mfu'], '{:.1%}')}" if peak else "")
        )
    print("ratios: median (min-max) of the per-repeat ratios (maple's repeat i / the baseline's repeat i)")
    for name, r in ratios.items():
        tps = r["real_tokens_per_second"]
        print(
            f"{name}: real tokens per second x{bench_report.fmt(tps, '{:.2f}')} (ratio of medians "
            f"x{tps['ratio_of_medians']:.2f}), per CPU second x{bench_report.fmt(r['real_tokens_per_cpu_second'])}, "
            f"useful-token fraction x{bench_report.fmt(r['useful_token_fraction'])}, "
            f"peak memory x{bench_report.fmt(r['peak_memory_bytes'])}"
            + (f", MFU x{bench_report.fmt(r['mfu'])}" if peak else "")
        )
    if peak:
        flops = runs["maple"][0]
        print(
            f"model FLOPs per arm (real tokens only, LoRA: frozen weights get no weight gradients): 4 x "
            f"{flops['frozen_linear_params']:,} frozen block linear params x real tokens + 6 x "
            f"{flops['lora_params']:,} LoRA params x real tokens + 4 x {flops['lm_head_params']:,} lm_head params x "
            f"tokens with a label + 12 x d_attn {flops['d_attn']} x {flops['layers']} layers x causal (query, key) "
            f"pairs; against the measured bf16 matmul peak {peak['flops_per_second'] / 1e12:.1f} TFLOP/s"
        )
    if args.json:
        settings = {
            "device": args.device,
            "arch": args.arch,
            "base": args.base,
            "train": args.train,
            "config": bench_report.repo_relative(args.config),
            "arms": arms,
            "repeats": args.repeats,
            "threads": args.threads,
            "smoke": args.smoke,
            "epochs": params.epochs,
            "max_steps": params.max_steps,
            "rank": params.rank,
            "bits": params.bits,
            "seed": params.seed,
            "effective_batch_size": params.effective_batch_size,
            "micro_batch_size": params.micro_batch_size,
            "batching": params.batching,
        }
        report = bench_report.header("finetune_throughput", settings, args.device)
        report["machine"]["torch_threads"] = args.threads  # per arm's process
        report.update(
            arms={arm: {"figures": summary[arm], "runs": runs[arm]} for arm in arms},
            ratios=ratios,
            bf16_peak=peak,
        )
        bench_report.write(args.json, report)
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
