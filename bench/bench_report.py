"""What every benchmark in bench/ shares: the statistics of repeated measurements and the JSON results file.

A figure measured over repeats is kept as its spread, `{"median", "min", "max", "n", "values"}` (spread()); a ratio
of two arms measured in alternation is the ratio of each repeat's pair (arm A's repeat i / arm B's repeat i), kept
as the spread of those per-repeat ratios plus the ratio of the medians (paired_ratio()). write() puts them in one
JSON file with what produced them (command, machine, library versions, git commit), so that a script can compare
two runs:

  {"benchmark": ..., "schema": 1, "created": ISO time, "command": [...], "settings": {...},
   "machine": {...}, "versions": {...}, "git": {"commit", "dirty"}, ...the benchmark's own figures}

  .venv/bin/python bench/bench_report.py OLD.json NEW.json   # the medians of two runs of one benchmark, side by side
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from importlib import metadata
from pathlib import Path

SCHEMA = 1
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))  # the maple package
LIBRARIES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "bitsandbytes", "lm_eval", "numpy")


def spread(values) -> dict | None:
    """Median, min, max and the values of repeated measurements (None values dropped; None if none is left)."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


def paired_ratio(numerators, denominators) -> dict | None:
    """The spread of the per-repeat ratios numerators[i] / denominators[i] (pairs with a None or zero dropped),
    and the ratio of the medians for reference."""
    pairs = [(a, b) for a, b in zip(numerators, denominators) if a is not None and b]
    result = spread(a / b for a, b in pairs)
    if result is None:
        return None
    result["ratio_of_medians"] = statistics.median(a for a, _ in pairs) / statistics.median(b for _, b in pairs)
    return result


def figures(runs: list[dict], keys) -> dict:
    """Per key, the spread over the runs of that numeric figure (keys whose values are all None or absent: None)."""
    return {key: spread(run.get(key) for run in runs) for key in keys}


def fmt(s: dict | None, pattern: str = "{:.2f}", scale: float = 1.0) -> str:
    """'median (min-max)' of a spread, each value formatted with pattern after multiplying by scale."""
    if s is None:
        return "-"
    median, low, high = (pattern.format(s[k] * scale) for k in ("median", "min", "max"))
    return f"{median} ({low}-{high})"


def git_state(repo: Path = REPO) -> dict:
    """The commit checked out and whether the work tree differs from it (None where git cannot tell)."""

    def git(*args):
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def machine(device: str = "cpu") -> dict:
    """Cores, the threads torch uses, and the device the benchmark ran on."""
    info = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _cpu_model(),
        "device": device,
        "device_name": "CPU",
    }
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    if "torch" in sys.modules or device == "cuda":
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if device == "cuda" and torch.cuda.is_available():
            info["device_name"] = torch.cuda.get_device_name(0)
            info["device_count"] = torch.cuda.device_count()
            info["cuda"] = torch.version.cuda
    return info


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def versions(names=LIBRARIES) -> dict:
    """Installed version of each library (None where it is not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def repo_relative(path) -> str:
    """A path inside the repository relative to it, so that results files name no machine's directories."""
    path = Path(path)
    try:
        return str(Path(os.path.abspath(path)).relative_to(REPO))
    except ValueError:
        return str(path)


def header(benchmark: str, settings: dict, device: str = "cpu") -> dict:
    """The part of every results file that says what ran, where and on which code."""
    return {
        "benchmark": benchmark,
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": [repo_relative(sys.executable), *sys.argv],
        "settings": settings,
        "machine": machine(device),
        "versions": versions(),
        "git": git_state(),
    }


def write(path, report: dict) -> None:
    """Write the report as JSON, atomically (maple.runtime.atomic: a temporary file beside the target, then a rename)."""
    from maple.runtime.atomic import write_text

    write_text(path, json.dumps(report, indent=1, default=str) + "\n")


def medians_by_path(report, path: str = "") -> dict:
    """Every spread in a results file by its path (`arms.maple.report.figures.loop_seconds`), as its median."""
    if isinstance(report, dict):
        if "median" in report and "values" in report:
            return {path: report["median"]}
        out = {}
        for key, value in report.items():
            out.update(medians_by_path(value, f"{path}.{key}" if path else str(key)))
        return out
    return {}


def compare(old: dict, new: dict) -> list[tuple[str, float, float]]:
    """(path, old median, new median) of every spread that both results files hold, runs and settings aside."""
    a, b = medians_by_path(old), medians_by_path(new)
    return [(path, a[path], b[path]) for path in a if path in b]


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Compare the medians of two results files of one benchmark.")
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    old, new = (json.loads(p.read_text(encoding="utf-8")) for p in (args.old, args.new))
    if old.get("benchmark") != new.get("benchmark"):
        raise SystemExit(f"different benchmarks: {old.get('benchmark')} vs {new.get('benchmark')}")
    for label, report in (("old", old), ("new", new)):
        print(f"{label}: {report['created']} commit {report['git']['commit']} on {report['machine']['device_name']}")
    for path, a, b in compare(old, new):
        change = f"x{b / a:.3f}" if a else "-"
        print(f"{path:<70} {a:>14.6g} {b:>14.6g} {change:>8}")


if __name__ == "__main__":
    main()
