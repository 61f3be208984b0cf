"""The cost estimate against measured runs: the throughput table measured on this machine with the GPU check's own
steps (bench/throughput_check.py, bench/finetune_throughput.py), the demo (config/config.yaml) and
config/smollm2.yaml planned with it (estimate.gpu_summary) and with their tokens counted (rule count_tokens,
estimate.token_counts), run, and each job's estimate (results/plan/estimate.csv) joined with its benchmark
(benchmarks/<rule>/...tsv). Per job class (data, finetune, each evaluation task):
measured / estimated, the median and the spread over its jobs. Fixed costs (start-up, imports, loads, lm-eval's
task building per language) are part of the estimate and of the measured time alike.

  python bench/estimate_vs_measured.py --work /tmp/evm --cores 1 --clock cpu \
      --json bench/reference/estimate_vs_measured.json --md bench/reference/estimate_vs_measured.md

--clock cpu measures the table in CPU seconds and compares them with each job's benchmark cpu_time (the work done,
which a shared machine's other load hardly changes); the wall-clock ratio (benchmark `s`) is given beside it.
--clock wall compares wall seconds only (a machine of one's own). A run directory that has finished is not run
again (Snakemake finds nothing to do), so a second call only measures, plans and joins; --no-run joins runs made
before (their benchmarks) with the estimate of this checkout, --summary plans with a table measured before.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from gpu_check_summary import cost_table  # noqa: E402  (bench/gpu_check_summary.py, beside this script)

CONFIGS = {"demo": REPO / "config" / "config.yaml", "smollm2": REPO / "config" / "smollm2.yaml"}
MODELS = {"demo": "results/models/tiny", "smollm2": "results/models/smollm2"}
TARGET_RANGE = (0.67, 1.5)
FINETUNE = re.compile(r"^(?P<data>.+)-r(?P<rank>\d+)-q(?P<bits>\d+)$")


def job_class(row: dict) -> str:
    if row["stage"] == "evaluate":
        return f"evaluate {row['task']}"
    return "data" if row["stage"] == "synth_data" else row["stage"]


def benchmark_path(row: dict) -> str:
    """The benchmark file of an estimate row (the rules' `benchmark:` paths, workflow/rules/common.smk)."""
    if row["stage"] == "evaluate":
        return f"benchmarks/evaluate/{row['model']}/{row['variant']}/{row['job']}.tsv"
    if row["stage"] == "finetune":
        m = FINETUNE.match(row["variant"])
        return f"benchmarks/finetune/{row['model']}/{m['data']}/r{m['rank']}-q{m['bits']}.tsv"
    part = re.fullmatch(rf"{re.escape(row['variant'])}_p(\d+)", row["job"])
    return (
        f"benchmarks/synth_part/{row['variant']}/p{part[1]}.tsv" if part else f"benchmarks/synth_data/{row['job']}.tsv"
    )


def last_sample(wall: float) -> float:
    """When Snakemake's benchmark last read a job's CPU time: each second for 30 s, then every 30 s
    (snakemake.benchmark.ScheduledPeriodicTimer)."""
    return float(int(wall)) if wall < 31 else 30.0 + 30 * int((wall - 30) // 30)


def read_benchmark(path: Path) -> dict | None:
    """{wall, cpu, cpu_sampled} seconds of a Snakemake benchmark file (its first repeat), None where the job did not
    run. Its cpu_time is the job's at the last sample; cpu extrapolates it to the job's end at the job's own rate."""
    try:
        with open(path, encoding="utf-8") as f:
            row = next(csv.DictReader(f, delimiter="\t"))
    except (OSError, StopIteration):
        return None
    wall, cpu = float(row["s"]), float(row["cpu_time"])
    return {"wall": wall, "cpu": cpu * wall / max(last_sample(wall), 1.0), "cpu_sampled": cpu}


def join(rows: list[dict], measured: dict[str, dict | None]) -> list[dict]:
    """Each estimate row with its measured seconds (rows whose job did not run are left out)."""
    joined = []
    for row in rows:
        got = measured.get(benchmark_path(row))
        if got:
            joined.append(
                {"class": job_class(row), "job": benchmark_path(row), "estimated": float(row["gpu_seconds"]), **got}
            )
    return joined


def by_class(joined: list[dict], clock: str) -> list[dict]:
    """Per class: jobs, the median and spread (min, max) of measured / estimated on `clock`, and of wall seconds."""
    classes: dict[str, list[dict]] = {}
    for job in joined:
        classes.setdefault(job["class"], []).append(job)
    out = []
    for name, jobs in classes.items():
        ratios = [j[clock] / j["estimated"] for j in jobs if j["estimated"] > 0]
        walls = [j["wall"] / j["estimated"] for j in jobs if j["estimated"] > 0]
        out.append(
            {
                "class": name,
                "jobs": len(jobs),
                "estimated_s": statistics.median(j["estimated"] for j in jobs),
                "measured_s": statistics.median(j[clock] for j in jobs),
                "ratio_median": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "wall_ratio_median": statistics.median(walls),
                "within_target": TARGET_RANGE[0] <= statistics.median(ratios) <= TARGET_RANGE[1],
            }
        )
    return out


def snakemake(work: Path, config: Path, cores: int, *targets: str, log: Path) -> None:
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work)]
    command += [*targets, "--configfile", str(config), "--cores", str(cores), "--resources", "gpu=1"]
    with open(log, "a", encoding="utf-8") as f:
        subprocess.run(
            command, check=True, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )


def write_config(work: Path, name: str, summary: Path | None, tokens: bool = False) -> Path:
    """The config as shipped, with estimate.gpu_summary (and estimate.token_counts: the run's counted tokens)."""
    config = yaml.safe_load(CONFIGS[name].read_text(encoding="utf-8"))
    if summary:
        config["estimate"] = {"gpu_summary": str(summary)}
    if tokens:
        config["estimate"]["token_counts"] = "results/plan/tokens.csv"
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def measure(work: Path, args, loads: list) -> Path:
    """The throughput table on this machine: throughput_check.py on the demo's tiny model (small) and SmolLM2
    (large), finetune_throughput.py on both at 16 and 4 bits (the demo's and smollm2's bit-widths); summary.json."""
    demo, smol = work / "demo", work / "smollm2"
    out = work / "measured"
    out.mkdir(exist_ok=True)
    python = sys.executable
    loads.append({"phase": "measure start", "load": os.getloadavg(), "t": time.time()})
    subprocess.run(
        [python, str(REPO / "bench" / "throughput_check.py"), "--small", str(demo / MODELS["demo"]),
         "--large", str(smol / MODELS["smollm2"]), "--eval-dir", str(demo / "results/data/demo/eval"),
         "--batch", "16", "--context", "96", "--clock", args.clock, "--json", str(out / "throughput.json")],
        check=False,
    )  # fmt: skip
    runs: dict = {"large": {}, "small": {}}
    for role, name in (("large", "smollm2"), ("small", "demo")):
        for bits in ("16", "4"):
            result = out / f"finetune_{role}_q{bits}.json"
            subprocess.run(
                [python, str(REPO / "bench" / "finetune_throughput.py"), "--device", "cpu", "--arch", "tiny",
                 "--arms", "maple", "--repeats", "1", "--max-steps", "6", "--warmup-steps", "1", "--bits", bits,
                 "--base", str((demo if name == "demo" else smol) / MODELS[name]),
                 "--train", str(demo / "results/data/demo/train.jsonl"), "--max-seq-length", "96",
                 "--micro-batch-size", "16", "--effective-batch-size", "16", "--json", str(result)],
                check=False,
            )  # fmt: skip
            runs[role][bits] = json.loads(result.read_text()) if result.exists() else None
    loads.append({"phase": "measure end", "load": os.getloadavg(), "t": time.time()})
    measured = json.loads((out / "throughput.json").read_text())
    table = cost_table(measured, runs["large"], runs["small"], clock=args.clock)
    summary = out / "summary.json"
    summary.write_text(json.dumps({"throughput": table}, indent=1) + "\n", encoding="utf-8")
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="run directories (kept: a rerun reuses them)")
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--summary", type=Path, help="a measured summary.json to plan with (skips measuring)")
    parser.add_argument(
        "--no-run", action="store_true", help="join the runs already in --work (their benchmarks) without running them"
    )
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--md", type=Path, required=True)
    parser.add_argument("--loads", type=Path, help="load averages recorded by an earlier measuring or run (JSON list)")
    args = parser.parse_args(argv)
    args.load_record = json.loads(args.loads.read_text()) if args.loads else []
    work = args.work.resolve()
    loads: list = []
    for name in CONFIGS if not args.no_run else ():  # the models and the demo's data the measurement needs
        (work / name).mkdir(parents=True, exist_ok=True)
        targets = [MODELS[name]] + (["results/data/demo/train.jsonl"] if name == "demo" else [])
        snakemake(work / name, write_config(work, name, None), args.cores, *targets, log=work / f"{name}.log")
    summary = args.summary.resolve() if args.summary else measure(work, args, loads)
    result = {"clock": args.clock, "summary": json.loads(summary.read_text()), "configs": {}}
    for name in CONFIGS:
        config = write_config(work, name, summary)
        if not args.no_run:
            loads.append({"phase": f"{name} run start", "load": os.getloadavg(), "t": time.time()})
            snakemake(work / name, config, args.cores, log=work / f"{name}.log")
            loads.append({"phase": f"{name} run end", "load": os.getloadavg(), "t": time.time()})
        # the prompts and training records as lm-eval and the finetune build them, counted with the model's tokenizer
        # (rule count_tokens: the demo's tasks are local, their data written by the run), then the estimate
        only_mtime = ("-f", "--rerun-triggers", "mtime")
        snakemake(work / name, config, 1, "count_tokens", *only_mtime, log=work / f"{name}.log")
        config = write_config(work, name, summary, tokens=True)
        snakemake(work / name, config, 1, "estimate", *only_mtime, log=work / f"{name}.log")
        with open(work / name / "results/plan/estimate.csv", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        measured = {benchmark_path(r): read_benchmark(work / name / benchmark_path(r)) for r in rows}
        joined = join(rows, measured)
        result["configs"][name] = {"jobs": joined, "classes": by_class(joined, args.clock)}
    result["loadavg"] = loads + [entry for entry in args.load_record or []]
    result["target"] = TARGET_RANGE
    args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    args.md.write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0 if all(c["within_target"] for r in result["configs"].values() for c in r["classes"]) else 1


def markdown(result: dict) -> str:
    clock = "CPU" if result["clock"] == "cpu" else "wall"
    lines = [
        f"| config | job class | jobs | estimated s (median) | measured {clock} s (median) | measured / estimated: "
        f"median (min-max) | wall / estimated (median) |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for name, config in result["configs"].items():
        for c in config["classes"]:
            lines.append(
                f"| {name} | {c['class']} | {c['jobs']} | {c['estimated_s']:.1f} | {c['measured_s']:.1f} | "
                f"**{c['ratio_median']:.2f}** ({c['ratio_min']:.2f}-{c['ratio_max']:.2f}) | {c['wall_ratio_median']:.2f} |"
            )
    loads = ", ".join(f"{entry['phase']} {entry['load'][0]:.1f}" for entry in result["loadavg"])
    return "\n".join(lines) + f"\n\nLoad average (1 min) on this machine: {loads}.\n"


if __name__ == "__main__":
    sys.exit(main())
