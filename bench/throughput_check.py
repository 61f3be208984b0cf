"""The evaluation figures of the cost estimate's throughput table (maple.cost.throughput), measured in its units on
this machine: the GPU check's `throughput` step (bench/gpu_check.sh) and bench/estimate_vs_measured.py.

  python bench/throughput_check.py --small results/models/tiny --large DIR --eval-dir results/data/demo/eval \
      --device cuda --batch 32 --context 512 --json throughput.json

Measured, each once (fresh loads, the median of --repeats timed calls where a call is short):
  startup_s            a fresh Python process importing what a job imports (torch, transformers, peft, lm_eval; the
                       least of three), plus the model classes' first load
  load_s, small_load_s the large and the small model loaded at 16 bits (maple.train.models.load_base, the jobs' own)
  prefill_tokens_per_s, small_prefill_tokens_per_s   forwards over --batch prompts of --context tokens, 16 bits
  decode_step_s, small_decode_step_s                 one decode step of --batch sequences at --context tokens (the
                       KV cache filled by a prefill), 16 bits
  prefill_slowdown, decode_slowdown   the large model at 4 and 8 bits (bitsandbytes) over 16; null where it fails
  task_index_s, task_setup_s   maple.evaluate.job.evaluate_variant on the small model with the demo's multiple-choice
                       task at 1 and at up to 3 of --languages (--limit examples each): the per-language difference is a
                       language's task building, the rest of the one-language call less its examples is the job's
                       lm-eval set-up
  model_params_b, small_model_params_b, kv_bytes_per_token   the models measured on (their config)
A figure that fails is null, with the error under "errors"; the JSON is written whatever fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
sys.path.insert(0, str(REPO / "bench"))

IMPORTS = (
    "import torch, transformers, peft, lm_eval"  # an evaluation job's (a finetune's: trl for lm_eval, about the same)
)
# --clock wall: seconds on the clock (a GPU, a machine of one's own); cpu: CPU seconds of this process and its
# children (user + system), what a job's work costs whatever else the machine runs (its benchmark's cpu_time)
CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCK["wall"]


def children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def startup_seconds(python: str, repeats: int = 3) -> float:
    """The least of `repeats` fresh processes' imports: the start a job pays where the machine is not also starting
    others (the page cache warm, as on a node that has run a job)."""
    times = []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), children_cpu()
        subprocess.run([python, "-c", IMPORTS], check=True, capture_output=True)
        times.append(children_cpu() - c0 if clock is CLOCK["cpu"] else time.perf_counter() - t0)
    return min(times)


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int) -> float:
    """The median seconds of `repeats` calls after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = clock()
        fn()
        sync(device)
        times.append(clock() - t0)
    return statistics.median(times)


def load(directory: str, bits: int, device: str):
    """(model, seconds): the jobs' own loading code (maple.train.models.load_base)."""
    from maple.train.models import load_base

    t0 = clock()
    model, _ = load_base(directory, bits)
    if device == "cuda" and bits == 16:
        model.to("cuda")
    sync(device)
    return model.eval(), clock() - t0


def prefill_and_decode(model, batch: int, context: int, device: str, repeats: int) -> tuple[float, float]:
    """(prefill tokens per second, seconds of one decode step) at batch x context."""
    import torch

    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (batch, context), generator=generator).to(model.device)
    step_ids = ids[:, -1:]
    with torch.no_grad():
        prefill = timed(lambda: model(input_ids=ids, use_cache=False), device, repeats)
        cache = model(input_ids=ids, use_cache=True).past_key_values

        def step():
            model(input_ids=step_ids, past_key_values=cache, use_cache=True)
            cache.crop(-1)  # back to the context: every timed step reads the same cache

        decode = timed(step, device, repeats)
    return batch * context / prefill, decode


def model_facts(directory: str) -> dict:
    from maple.cost.model_shape import local_shape

    shape = local_shape(str(directory))
    return {"params_b": shape.params_b, "kv_bytes_per_token": shape.kv_bytes_per_token}


def task_seconds(small: str, eval_dir: Path, limit: int, languages: list[str], batch_size: int) -> float:
    """Seconds of one evaluation job's lm-eval work on the small model (its load left out): the demo's
    multiple-choice task at `languages`, limit examples each, the jobs' own code."""
    from gpu_demo import demo_task
    from maple.evaluate.job import evaluate_variant

    task = replace(demo_task("demo_mc", eval_dir, languages, limit), batch_size=batch_size)
    with tempfile.TemporaryDirectory(prefix="maple-throughput-") as out:
        t0 = clock()
        evaluate_variant(
            model_alias="small",
            variant="base",
            base_source=small,
            adapter_dir=None,
            bits=16,
            task=task,
            score_files={lang: Path(out) / f"{lang}.json" for lang in languages},
            samples_files={lang: Path(out) / f"{lang}.jsonl" for lang in languages},
        )
        seconds = clock() - t0
    _, load_seconds = load(small, 16, "cpu")  # what the job's own load took (its provenance has wall seconds)
    return seconds - load_seconds


def measure(args) -> dict:
    global clock
    import torch

    clock = CLOCK[args.clock]
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    out: dict = {"settings": {k: str(v) for k, v in vars(args).items()}, "errors": {}}

    def attempt(name, fn):
        try:
            return fn()
        except Exception:  # noqa: BLE001 (a figure that fails is null; the others are still measured)
            out["errors"][name] = traceback.format_exc(limit=3).strip().splitlines()[-1]
            return None

    out["startup_s"] = attempt("startup_s", lambda: startup_seconds(sys.executable))
    # a job's first load also imports the model's classes: that is start-up, the same for every model
    first = attempt("first_load", lambda: load(args.small, 16, args.device)[1])
    rates: dict = {}
    for role, directory in (("small", args.small), ("large", args.large)):
        facts = attempt(f"{role}_facts", lambda d=directory: model_facts(d)) or {}
        out["small_model_params_b" if role == "small" else "model_params_b"] = facts.get("params_b")
        if role == "large":
            out["kv_bytes_per_token"] = facts.get("kv_bytes_per_token")
        for bits in (16, 8, 4) if role == "large" else (16,):
            loaded = attempt(f"{role}_load_q{bits}", lambda d=directory, b=bits: load(d, b, args.device))
            if loaded is None:
                continue
            model, seconds = loaded
            if bits == 16:
                out["small_load_s" if role == "small" else "load_s"] = seconds
            if (role, bits) == ("small", 16) and first is not None and out["startup_s"] is not None:
                out["startup_s"] += max(first - seconds, 0.0)
            rates[role, bits] = attempt(
                f"{role}_q{bits}",
                lambda m=model: prefill_and_decode(m, args.batch, args.context, args.device, args.repeats),
            )
            del model
    prefix = {"small": "small_", "large": ""}
    for role in ("small", "large"):
        prefill, step = rates.get((role, 16)) or (None, None)
        out[f"{prefix[role]}prefill_tokens_per_s"], out[f"{prefix[role]}decode_step_s"] = prefill, step
    base = rates.get(("large", 16))
    for kind, index, invert in (("prefill_slowdown", 0, True), ("decode_slowdown", 1, False)):
        out[kind] = {"16": 1.0 if base else None}
        for bits in ("8", "4"):
            got = rates.get(("large", int(bits)))
            ok = base and got
            out[kind][bits] = (base[index] / got[index] if invert else got[index] / base[index]) if ok else None
    out["decode_batch"], out["decode_context"] = args.batch, args.context
    k = min(len(args.languages), 3)  # one language, then up to three
    one, more = (
        attempt(
            f"task_{n}", lambda n=n: task_seconds(args.small, args.eval_dir, args.limit, args.languages[:n], args.batch)
        )
        for n in (1, k)
    )
    setup = (more - one) / (k - 1) if k > 1 and one is not None and more is not None else None
    out["task_setup_s"] = max(setup, 0.0) if setup is not None else None
    out["task_index_s"] = max(one - setup, 0.0) if setup is not None else None
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", required=True, help="the small model's directory (the demo's tiny model)")
    parser.add_argument("--large", required=True, help="the large model's directory (the study's size)")
    parser.add_argument("--eval-dir", type=Path, required=True, help="the demo dataset's eval/ (held-out sets)")
    parser.add_argument("--languages", default="en,de,sw", type=lambda s: s.split(","))
    parser.add_argument("--limit", type=int, default=4, help="examples per language of the task timing")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on a CPU (a job's own)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clock", choices=tuple(CLOCK), default="wall", help="wall seconds, or CPU seconds")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    result = measure(args)
    args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "settings"}, indent=1))
    return 0 if not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
