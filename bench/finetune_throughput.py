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

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

import bench_report  # noqa: E402  (bench/bench_report.py, beside this script)

ARMS = ("maple", "trainer_defaults", "trainer_same_micro")
DEFAULT_ARMS = ("maple", "trainer_defaults")
TRAINER_DEFAULT_MICRO_BATCH = 8  # transformers.TrainingArguments.per_device_train_batch_size
ARCHS = {
    # Llama-2-7B's shape (meta-llama/Llama-2-7b-hf config.json); random init, no weights needed
    "llama-2-7b": dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
    ),
    # the same architecture at a size a CPU trains in seconds: the GPU check's rehearsal (bench/gpu_check.sh)
    "llama-smoke": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=32000,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
    ),
}


def finetune_params(
    config_path: str,
    rank: int | None,
    bits: int,
    seed: int | None,
    epochs: float | None,
    max_steps: int | None,
    batching: str | None = None,
    overrides: dict | None = None,
):
    """FinetuneParams from a workflow config's finetune section (schema defaults for keys it leaves out), with the
    command line's overrides (max_seq_length, gradient_checkpointing, micro/effective batch size) on top."""
    import yaml
    from maple.train.params import FinetuneParams, micro_batch_for_attempt

    with open(config_path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    section = dict(config["finetune"])
    fields = set(FinetuneParams.__dataclass_fields__) - {"rank", "bits", "seed"}
    kwargs = {k: v for k, v in section.items() if k in fields}
    if epochs is not None:
        kwargs["epochs"] = epochs
    if max_steps is not None:
        kwargs["max_steps"] = max_steps
    if batching is not None:
        kwargs["batching"] = batching
    kwargs.update({k: v for k, v in (overrides or {}).items() if v is not None})
    params = FinetuneParams(
        rank=rank or section["ranks"][0], bits=bits, seed=config.get("seed", 1234) if seed is None else seed, **kwargs
    )
    params.micro_batch_size = micro_batch_for_attempt(params.effective_batch_size, params.micro_batch_size, 1)
    return params


def random_init_model(arch: str, tokenizer, device: str):
    import torch
    from maple.train.models import compute_dtype
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        **ARCHS[arch],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=compute_dtype(), attn_implementation="sdpa")
    return model


def load_model(args, params):
    """(model, tokenizer): the base at args.base, or a random-init model of args.arch's shape with its tokenizer."""
    from maple.train.models import load_base
    from transformers import AutoTokenizer

    if args.arch == "tiny":
        return load_base(args.base, params.bits)
    if params.bits != 16:
        return load_base(str(Path(args.model_cache) / args.arch), params.bits)
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return random_init_model(args.arch, tokenizer, args.device), tokenizer


def save_random_init(args, directory: Path) -> Path:
    """The random-init model of args.arch saved (bf16, with the tokenizer of args.base) for the arms to load quantised."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out = directory / args.arch
    model = random_init_model(args.arch, tokenizer, args.device)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def baseline_trainer(params, model, tokenizer, train_file: str, output_dir: str, micro_batch: int):
    """A plain transformers Trainer: prompt + response + EOS tokenised and truncated at max_seq_length, the default
    causal-LM padding collator, default TrainingArguments except what defines the training problem."""
    import torch
    from datasets import Dataset
    from maple.runtime.records import read_jsonl
    from maple.train.finetune import to_prompt_completion
    from maple.train.models import compute_dtype, device_kind
    from maple.train.params import micro_batch_for_attempt
    from maple.train.trainer import measured
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments, set_seed

    set_seed(params.seed)
    pc = to_prompt_completion(read_jsonl(train_file), params.prompt_format, tokenizer)
    texts = [p + c + tokenizer.eos_token for p, c in zip(pc["prompt"], pc["completion"])]
    dataset = Dataset.from_dict({"text": texts}).map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=params.max_seq_length),
        batched=True,
        remove_columns=["text"],
    )
    if params.bits != 16:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = get_peft_model(
        model,
        LoraConfig(
            r=params.rank,
            lora_alpha=params.rank * params.lora_alpha_per_rank,
            lora_dropout=params.lora_dropout,
            target_modules=list(params.target_modules),
            task_type="CAUSAL_LM",
        ),
    )
    micro = micro_batch_for_attempt(params.effective_batch_size, micro_batch, 1)
    args = TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=params.epochs,
        max_steps=params.max_steps,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=params.effective_batch_size // micro,
        learning_rate=params.learning_rate,
        seed=params.seed,
        bf16=compute_dtype() == torch.bfloat16,
        use_cpu=device_kind() != "cuda",
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
    )
    return measured(Trainer)(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
    )


def model_flops(model, meter) -> dict:
    """Model FLOPs of the LoRA training the meter saw (see the module docstring for the count)."""
    import torch

    frozen = head = lora = 0
    for name, module in model.named_modules():
        # bitsandbytes Linear4bit / Linear8bitLt are nn.Linear subclasses: they count as frozen linear weights
        if isinstance(module, torch.nn.Linear):
            n = module.in_features * module.out_features
            if "lora_" in name:
                lora += n
            elif name.endswith("lm_head"):
                head += n
            else:
                frozen += n
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    d_attn = config.num_attention_heads * head_dim
    flops = (
        4 * frozen * meter.real
        + 6 * lora * meter.real
        + 4 * head * meter.loss_tokens
        + 12 * d_attn * config.num_hidden_layers * meter.causal_pairs
    )
    return {
        "model_flops": flops,
        "frozen_linear_params": frozen,
        "lm_head_params": head,
        "lora_params": lora,
        "d_attn": d_attn,
        "layers": config.num_hidden_layers,
        "causal_pairs": meter.causal_pairs,
        "loss_tokens": meter.loss_tokens,
    }


def measure_bf16_peak(device: str = "cuda") -> dict:
    """The best bf16 matmul FLOP/s of this GPU over square sizes (CUDA events, after warm-up)."""
    import torch

    best = {"flops_per_second": 0.0}
    for n in (4096, 8192, 16384):
        a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
        b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
        for _ in range(3):
            a @ b
        torch.cuda.synchronize()
        reps = max(3, int(2e13 // (2 * n**3)))
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            a @ b
        end.record()
        torch.cuda.synchronize()
        rate = 2 * n**3 * reps / (start.elapsed_time(end) / 1000)
        if rate > best["flops_per_second"]:
            best = {"flops_per_second": rate, "n": n, "reps": reps}
        del a, b
    torch.cuda.empty_cache()
    return best


def cpu_clock():
    """A trainer callback that takes the CPU seconds of this process (every thread) over the training loop: the work
    done, which, unlike the wall clock, other processes on a shared machine hardly change."""
    from transformers import TrainerCallback

    class CpuClock(TrainerCallback):
        seconds = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.process_time()

        def on_train_end(self, args, state, control, **kwargs):
            self.seconds = time.process_time() - self.started

    return CpuClock()


def steady_clock(meter, warmup_steps: int):
    """A trainer callback that marks the end of the first warmup_steps optimiser steps (clock and the meter's
    counts, after a CUDA sync), so that throughput and MFU can leave out the warm-up (allocator growth, kernel
    selection, the first optimiser step's state allocation)."""
    from transformers import TrainerCallback

    class SteadyClock(TrainerCallback):
        mark = None

        def on_step_end(self, args, state, control, **kwargs):
            if warmup_steps > 0 and state.global_step == warmup_steps:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                self.mark = {
                    "seconds": meter.seconds(),
                    "real": meter.real,
                    "loss_tokens": meter.loss_tokens,
                    "causal_pairs": meter.causal_pairs,
                }

    return SteadyClock()


def steady_figures(model, meter, mark) -> dict:
    """Tokens per second and model FLOPs after the warm-up steps (None without a mark: too few steps)."""
    if not mark:
        return {"steady_seconds": None, "steady_real_tokens_per_second": None, "steady_model_flops": None}
    seconds = meter.seconds() - mark["seconds"]

    class Delta:
        real = meter.real - mark["real"]
        loss_tokens = meter.loss_tokens - mark["loss_tokens"]
        causal_pairs = meter.causal_pairs - mark["causal_pairs"]

    return {
        "steady_seconds": seconds,
        "steady_real_tokens_per_second": Delta.real / seconds if seconds > 0 else None,
        "steady_model_flops": model_flops(model, Delta)["model_flops"],
    }


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


def overrides(args) -> dict:
    return {
        "max_seq_length": args.max_seq_length,
        "gradient_checkpointing": args.gradient_checkpointing,
        "micro_batch_size": args.micro_batch_size,
        "effective_batch_size": args.effective_batch_size,
    }


FIGURES = (
    "real_tokens_per_second",
    "real_tokens_per_cpu_second",
    "processed_tokens_per_second",
    "useful_token_fraction",
    "peak_memory_bytes",
    "loop_seconds",
    "loop_cpu_seconds",
    "process_seconds",
    "steps",
    "mfu",
    "steady_real_tokens_per_second",
    "steady_mfu",
    "peak_reserved_bytes",
)
RATIO_FIGURES = (
    "real_tokens_per_second",
    "real_tokens_per_cpu_second",
    "useful_token_fraction",
    "peak_memory_bytes",
    "loop_seconds",
    "mfu",
)
DEMO_EPOCHS = 10  # the demo's 840 examples x 10 epochs: 21-25 s of the maple arm's loop on one CPU thread
SMOKE_STEPS = 2


def fmt_bytes(n) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f} MiB"


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


def summarize(runs: dict[str, list[dict]]) -> tuple[dict, dict]:
    """(per arm the spread of every figure, per baseline arm the paired ratios maple / baseline)."""
    summary = {arm: bench_report.figures(rs, FIGURES) for arm, rs in runs.items()}
    ratios = {}
    for arm, rs in runs.items():
        if arm == "maple":
            continue
        mine = runs["maple"]
        ratios[f"maple/{arm}"] = {
            key: bench_report.paired_ratio([r.get(key) for r in mine], [r.get(key) for r in rs])
            for key in RATIO_FIGURES
        }
    return summary, ratios


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
