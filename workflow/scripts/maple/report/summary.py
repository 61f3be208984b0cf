"""Tables derived from the tidy score table: the cost of each configuration (from Snakemake's benchmark files) with
its gain and Pareto front, a Markdown summary (base vs the best variant per task and resource class), and this
run beside published reference numbers.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from maple.report.aggregation import parse_variant
from maple.report.style import RESOURCE_ORDER

REFERENCE_KEYS = ["model", "variant", "task", "lang"]


# --- cost ---------------------------------------------------------------------------------------------------------


def benchmark_seconds(path: str) -> float:
    """Wall-clock seconds (column `s`) of a Snakemake benchmark file; the mean over its repeats."""
    table = pd.read_csv(path, sep="\t")
    if "s" not in table.columns or table.empty:
        raise ValueError(f"{path}: not a Snakemake benchmark file (no column 's')")
    return float(table["s"].mean())


def pareto_front(costs, gains) -> np.ndarray:
    """True where no other point is at most as costly and at least as good, and strictly better in one."""
    costs, gains = np.asarray(costs, dtype=float), np.asarray(gains, dtype=float)
    front = np.ones(len(costs), dtype=bool)
    for i in range(len(costs)):
        if np.isnan(costs[i]) or np.isnan(gains[i]):
            front[i] = False
            continue
        dominated = (costs <= costs[i]) & (gains >= gains[i]) & ((costs < costs[i]) | (gains > gains[i]))
        front[i] = not dominated.any()
    return front


def cost_table(table: pd.DataFrame, jobs: list[dict], devices: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per (model, variant): seconds of its finetune and evaluation jobs, hours and GPU-hours (seconds x
    the jobs' gpu resource, counted only where the finetunes ran on CUDA), the cost compared (cost_hours: GPU-hours
    on a GPU run, else hours), its mean delta vs base over every task and language, and whether it is on the Pareto
    front of its model.

    `jobs`: records {model, variant, stage (finetune|evaluate), benchmark (path), gpu (the job's resources gpu),
    share (optional: the part of a job shared by several variants that is this one's, e.g. 1/n of an engine vllm
    group's job)}; `devices`: "model/variant" -> where its finetune ran (train_metrics.json `device`)."""
    devices = devices or {}
    records: dict[tuple[str, str], dict] = {}
    for job in jobs:
        key = (job["model"], job["variant"])
        rec = records.setdefault(key, {"finetune_s": 0.0, "evaluate_s": 0.0, "gpu_s": 0.0, "n_jobs": 0})
        seconds = benchmark_seconds(job["benchmark"]) * float(job.get("share", 1))
        rec[f"{job['stage']}_s"] += seconds
        rec["gpu_s"] += seconds * float(job.get("gpu", 1))
        rec["n_jobs"] += 1
    deltas = table[table["variant"] != "base"].groupby(["model", "variant"])["delta_vs_base"].agg(["mean", "count"])
    model_devices: dict[str, set] = {}
    for key, device in devices.items():
        model_devices.setdefault(key.split("/", 1)[0], set()).add(device)
    rows = []
    for (model, variant), rec in sorted(records.items()):
        parsed = parse_variant(variant)
        if variant == "base":
            mean_delta, n = 0.0, 0
            known = model_devices.get(model, set())
            device = known.pop() if len(known) == 1 else ("mixed" if known else "unknown")
        else:
            mean_delta = deltas["mean"].get((model, variant), np.nan)
            n = int(deltas["count"].get((model, variant), 0))
            device = devices.get(f"{model}/{variant}", "unknown")
        hours = (rec["finetune_s"] + rec["evaluate_s"]) / 3600
        rows.append(
            {
                "model": model,
                "variant": variant,
                **parsed,
                "device": device,
                "n_jobs": rec["n_jobs"],
                "finetune_s": round(rec["finetune_s"], 3),
                "evaluate_s": round(rec["evaluate_s"], 3),
                "hours": hours,
                "gpu_hours": rec["gpu_s"] / 3600 if device == "cuda" else 0.0,
                "mean_delta": mean_delta,
                "n_scores": n,
            }
        )
    cost = pd.DataFrame(
        rows,
        columns=[
            "model",
            "variant",
            "data",
            "rank",
            "bits",
            "device",
            "n_jobs",
            "finetune_s",
            "evaluate_s",
            "hours",
            "gpu_hours",
            "mean_delta",
            "n_scores",
        ],
    )
    # The cost compared: GPU-hours where every job of the model ran on CUDA, else the wall-clock hours (a CPU run).
    cost["cost_hours"] = cost["hours"]
    cost["pareto"] = False
    for _model, idx in cost.groupby("model").groups.items():
        if set(cost.loc[idx, "device"]) == {"cuda"}:
            cost.loc[idx, "cost_hours"] = cost.loc[idx, "gpu_hours"]
        cost.loc[idx, "pareto"] = pareto_front(cost.loc[idx, "cost_hours"], cost.loc[idx, "mean_delta"])
    for col in ("rank", "bits"):
        cost[col] = cost[col].astype("Int64")
    return cost


def adapter_devices(metrics_files: dict[str, str]) -> dict[str, str]:
    """ "model/variant" -> the device its finetune ran on, from each adapter's train_metrics.json."""
    devices = {}
    for key, path in metrics_files.items():
        with open(path, encoding="utf-8") as f:
            devices[key] = json.load(f).get("device", "unknown")
    return devices


# --- summary ------------------------------------------------------------------------------------------------------


def best_variants(table: pd.DataFrame) -> pd.DataFrame:
    """Per model, task and resource class: the base model's mean score, the variant with the best mean score over
    the class's languages, its mean, the difference and in how many of the class's languages it beats the base."""
    rows = []
    for (model, task), cell in table.groupby(["model", "task"]):
        present = set(cell["resource"].dropna())
        for resource in [r for r in RESOURCE_ORDER if r in present] + sorted(present - set(RESOURCE_ORDER)):
            cls = cell[cell["resource"] == resource]
            base = cls[cls["variant"] == "base"]
            adapters = cls[cls["variant"] != "base"]
            if adapters.empty:
                continue
            means = adapters.groupby("variant")["value"].mean()
            best = means.idxmax()
            best_rows = adapters[adapters["variant"] == best].set_index("lang")["value"]
            base_by_lang = base.set_index("lang")["value"]
            shared = best_rows.index.intersection(base_by_lang.index)
            rows.append(
                {
                    "model": model,
                    "task": task,
                    "resource": resource,
                    "metric": ", ".join(sorted(cls["metric"].unique())),
                    "languages": cls["lang"].nunique(),
                    "base": base["value"].mean() if len(base) else np.nan,
                    "best_variant": best,
                    "best": means[best],
                    "gain": means[best] - base["value"].mean() if len(base) else np.nan,
                    "languages_improved": int((best_rows[shared] > base_by_lang[shared]).sum()),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "model",
            "task",
            "resource",
            "metric",
            "languages",
            "base",
            "best_variant",
            "best",
            "gain",
            "languages_improved",
        ],
    )


def _markdown_table(frame: pd.DataFrame) -> str:
    def fmt(value):
        if isinstance(value, (float, np.floating)):
            return "" if np.isnan(value) else f"{value:.4f}"
        return str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "| " + " | ".join("---" for _ in frame.columns) + " |"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def summary_markdown(
    table: pd.DataFrame, cost: pd.DataFrame | None = None, comparison: pd.DataFrame | None = None
) -> str:
    """The Markdown summary: per model, per task and resource class the base vs the best variant; the cheapest
    configurations on the Pareto front of cost vs gain; and, with reference numbers, how far this run is from them."""
    best = best_variants(table)
    parts = [
        "# Results summary",
        "",
        "Per task and resource class: the base model's mean score over the class's languages, the variant with "
        "the best mean, the gain, and in how many of the class's languages that variant beats the base.",
        "",
    ]
    for model, rows in best.groupby("model"):
        parts += [
            f"## {model}",
            "",
            _markdown_table(
                rows.drop(columns="model").rename(
                    columns={"best_variant": "best variant", "languages_improved": "languages improved"}
                )
            ),
            "",
        ]
        if cost is not None and len(cost):
            front = cost[(cost["model"] == model) & cost["pareto"].astype(bool)].sort_values("cost_hours")
            label = "GPU-hours" if set(front["device"]) == {"cuda"} else "job-hours (not on a GPU)"
            parts += [
                f"Pareto front of cost ({label}, finetune + evaluation, from the benchmark files) vs mean "
                "delta over every task and language:",
                "",
                _markdown_table(
                    front[["variant", "cost_hours", "mean_delta"]].rename(
                        columns={"cost_hours": label, "mean_delta": "mean delta"}
                    )
                ),
                "",
            ]
    if comparison is not None and len(comparison):
        matched = comparison[comparison["value_run"].notna()]
        parts += [
            "## This run beside the published reference numbers",
            "",
            f"{len(matched)} of {len(comparison)} reference rows match a score of this run; "
            f"mean difference (run - reference): {matched['difference'].mean():+.4f}.",
            "",
        ]
    return "\n".join(parts).rstrip() + "\n"


# --- reference numbers --------------------------------------------------------------------------------------------


def load_reference(path: str) -> pd.DataFrame:
    """A reference CSV: columns `task` and `value` (on the scale of scores.csv: accuracy as a fraction), and any of
    `model`, `variant`, `lang` to match on (a missing one means the run's mean over it); `metric`, `source` are
    kept for display."""
    reference = pd.read_csv(path)
    missing = [c for c in ("task", "value") if c not in reference.columns]
    if missing:
        raise ValueError(f"{path}: the reference scores need the columns {missing}")
    if not pd.api.types.is_numeric_dtype(reference["value"]):
        raise ValueError(f"{path}: column value must be numeric")
    return reference


def reference_comparison(table: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Each reference row beside this run's value, in the reference's order: matched on the key columns (model,
    variant, task, lang) the row gives, averaging the run over those it leaves out or blank (a paper's mean over
    languages, say). value_run is NaN where the run has no such score."""
    ref = reference.rename(columns={"value": "value_reference"}).reset_index(drop=True)
    columns = [k for k in REFERENCE_KEYS if k in ref.columns]
    resource = table.drop_duplicates("lang").set_index("lang")["resource"]
    values = []
    for _, row in ref.iterrows():
        keys = [k for k in columns if pd.notna(row[k]) and str(row[k]) != ""]
        match = np.ones(len(table), dtype=bool)
        for k in keys:
            match &= (table[k].astype(str) == str(row[k])).to_numpy()
        values.append(table.loc[match, "value"].mean() if match.any() else np.nan)
    merged = ref.copy()
    merged["value_run"] = values
    merged["difference"] = merged["value_run"] - merged["value_reference"]
    if "resource" not in merged.columns and "lang" in merged.columns:
        merged["resource"] = merged["lang"].map(resource)
    return merged
