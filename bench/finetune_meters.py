"""bench/finetune_throughput.py's meters: model FLOPs of LoRA training, the GPU's bf16 peak, CPU seconds and the
steady clock after warm-up, and the figures each arm reports and their summary over repeats."""

from __future__ import annotations

import time

import bench_report

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


def fmt_bytes(n) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f} MiB"


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
