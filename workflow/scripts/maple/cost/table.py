"""The cost estimate as files and one line: results/plan/estimate.csv (one row per GPU job), estimate.md (the
total, the figures by job class, the throughput table and where each figure came from) and the total the plan
prints (maple.cost.estimate makes the rows)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict

COLUMNS = [
    "stage",
    "kind",
    "model",
    "variant",
    "task",
    "job",
    "parts",
    "examples",
    "tokens",
    "gpu_seconds",
    "runtime_min",
]


def job_class(row: dict) -> str:
    if row["stage"] == "evaluate":
        return f"evaluate {row['task']} ({row['kind']})"
    return row["stage"]


def by_class(rows: list[dict]) -> list[dict]:
    """Per job class: jobs, examples, tokens, GPU-hours and the longest job's hours, in the rows' order."""
    classes: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "examples": 0, "tokens": 0, "gpu_s": 0.0, "max_s": 0.0})
    for row in rows:
        c = classes[job_class(row)]
        c["jobs"] += 1
        c["examples"] += row["examples"]
        c["tokens"] += row["tokens"]
        c["gpu_s"] += row["gpu_seconds"]
        c["max_s"] = max(c["max_s"], row["gpu_seconds"])
    return [{"class": name, **c} for name, c in classes.items()]


def total_line(rows: list[dict], max_job_hours: float) -> str:
    total = sum(r["gpu_seconds"] for r in rows) / 3600
    evaluation = [r for r in rows if r["stage"] == "evaluate"]
    longest = max((r["gpu_seconds"] for r in evaluation), default=0) / 3600
    return (
        f"Estimate: {total:,.1f} GPU-hours in {len(rows)} GPU jobs ({len(evaluation)} evaluation jobs, the longest "
        f"{longest:.2f} h of evaluation.max_job_hours {max_job_hours:g} h); results/plan/estimate.md"
    )


STAGE_KEYS = {"finetune": "finetune", "evaluate": "evaluation"}  # the config section of a stage's resources


def configured_minutes(value) -> float | None:
    """A configured runtime in minutes: a number, or a string as Snakemake reads one ("90", "90m", "2h")."""
    if value is None or isinstance(value, (int, float)):
        return value
    text = str(value).strip("'\" ")
    if text.isdecimal():
        return int(text)
    import humanfriendly

    return humanfriendly.parse_timespan(text) / 60


def runtime_warnings(rows: list[dict], configured: dict[str, int | str | None]) -> list[str]:
    """One line per stage whose configured SLURM runtime (<section>.resources.runtime, minutes; None: each job's
    own from its estimate) is shorter than some of its jobs' estimate x runtime_margin."""
    lines = []
    for stage, minutes in configured.items():
        minutes = configured_minutes(minutes)
        over = [r for r in rows if r["stage"] == stage and minutes and r["runtime_min"] > minutes]
        if not over:
            continue
        worst = max(over, key=lambda r: r["runtime_min"])
        resume = (
            " A finetune resumes from its last checkpoint (finetune.checkpoint_steps) when rerun or retried."
            if stage == "finetune"
            else ""
        )
        job = " ".join(filter(None, (worst["model"], worst["variant"], worst["job"])))
        lines.append(
            f"{len(over)} {stage} jobs are estimated over {STAGE_KEYS[stage]}.resources.runtime {minutes:g} min "
            f"(the longest {worst['runtime_min']} min: {job}): raise it, or remove it to give each job its "
            f"estimate.{resume}"
        )
    return lines


def estimate_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row[k] for k in COLUMNS} for row in rows)
    return out.getvalue()


def estimate_markdown(rows: list[dict], table: dict, evaluation: dict, notes: list[str] = ()) -> str:
    total = sum(r["gpu_seconds"] for r in rows) / 3600
    lines = [
        "# Cost estimate",
        "",
        f"**{total:,.1f} GPU-hours** in {len(rows)} GPU jobs, before any of them ran (rule estimate: from the config, "
        "the shipped split sizes in workflow/resources/task_sizes.csv and the throughput table below; no model "
        "loaded, no network). docs/cost-and-sharding.md states the model of cost and its assumptions.",
        "",
        f"Evaluation jobs are sharded, and model-written datasets written in parts (synth_part), to at most "
        f"evaluation.max_job_hours = {evaluation['max_job_hours']:g} h each; each job's SLURM runtime is its "
        f"estimate x {evaluation['runtime_margin']:g} (estimate.csv: runtime_min).",
        "",
        "| job class | jobs | examples | tokens | GPU-hours | longest job (h) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in by_class(rows):
        lines.append(
            f"| {c['class']} | {c['jobs']} | {c['examples']:,} | {c['tokens']:,} | {c['gpu_s'] / 3600:,.1f} | "
            f"{c['max_s'] / 3600:.2f} |"
        )
    lines += ["", "## Throughput", "", "| figure | value | from |", "| --- | --- | --- |"]
    for key, value in table.items():
        if key not in ("source", "warning"):
            lines.append(f"| {key} | {value} | {table['source'][key]} |")
    if table.get("warning"):
        notes = [table["warning"], *notes]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"
