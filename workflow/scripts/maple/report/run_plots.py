"""Figures of the run itself: training loss curves, cost vs gain with its Pareto front, this run beside published
numbers. Plain data in, a matplotlib Figure out, as in maple.report.score_plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on clusters and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from maple.report.style import (  # noqa: E402
    BITS_MARKERS,
    BITS_NAMES,
    BITS_STYLES,
    OKABE_ITO,
    RESOURCE_COLOURS,
    RESOURCE_MARKERS,
    RESOURCE_ORDER,
    _figure_legend,
    _panels,
    _style_by,
)

# --- 6. training loss ---------------------------------------------------------------------------------------------


def loss_points(metrics: dict) -> tuple[list[float], list[float], bool]:
    """(steps, losses, per_step) from a train_metrics.json dict: the trainer log entries that have `loss`; without
    any, the final mean training loss at the last step (per_step False)."""
    entries = [e for e in metrics.get("log_history", []) if isinstance(e, dict) and "loss" in e and "step" in e]
    if entries:
        return [float(e["step"]) for e in entries], [float(e["loss"]) for e in entries], True
    if metrics.get("train_loss") is not None:
        return [float(metrics.get("global_step") or 0)], [float(metrics["train_loss"])], False
    return [], [], False


def loss_curves(histories: dict[str, dict], model: str):
    """Training loss against the optimiser step, one line per variant: colour by LoRA rank, line style by bits;
    one panel per dataset. `histories`: variant -> its adapter's train_metrics.json."""
    from maple.report.aggregation import parse_variant

    parsed = {v: parse_variant(v) for v in histories}
    datasets = sorted({p["data"] for p in parsed.values()})
    ranks = sorted({p["rank"] for p in parsed.values()})
    rank_colour = _style_by(ranks, OKABE_ITO)
    fig, axes = _panels(len(datasets), width=5.0, height=3.8, max_cols=2)
    for ax, data in zip(axes, datasets):
        variants = sorted(
            (v for v in histories if parsed[v]["data"] == data), key=lambda v: (parsed[v]["rank"], parsed[v]["bits"])
        )
        for variant in variants:
            steps, losses, per_step = loss_points(histories[variant])
            p = parsed[variant]
            style = dict(color=rank_colour[p["rank"]], label=f"r{p['rank']}, {BITS_NAMES.get(p['bits'], p['bits'])}")
            if per_step:
                ax.plot(
                    steps,
                    losses,
                    linestyle=BITS_STYLES.get(p["bits"], "-"),
                    marker=BITS_MARKERS.get(p["bits"], "."),
                    markersize=3,
                    **style,
                )
            elif steps:
                style["label"] += " (final mean loss only)"
                ax.plot(steps, losses, linestyle="none", marker=BITS_MARKERS.get(p["bits"], "D"), markersize=7, **style)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("training loss")
        ax.set_title(f"{data}")
    fig.suptitle(f"{model}: training loss per variant")
    _figure_legend(fig, axes)
    return fig


# --- 7. cost vs gain ----------------------------------------------------------------------------------------------


def cost_label(devices) -> str:
    """The cost axis, labelled by where the jobs ran: GPU-hours only when every finetune ran on CUDA."""
    devices = {d for d in devices if isinstance(d, str) and d}
    if devices and devices <= {"cuda"}:
        return "GPU-hours (wall clock of the gpu=1 finetune + evaluation jobs)"
    return "job-hours of the gpu=1 jobs (ran on CPU, no GPU: wall clock)"


def cost_vs_gain(cost: pd.DataFrame, model: str):
    """Per configuration (the base model and every adapter): the hours of its gpu=1 jobs (finetune + evaluations,
    from the benchmark files) against its mean delta vs base over every task and language; the Pareto front (no
    other configuration is both cheaper and better) is marked and joined."""
    rows = cost[cost["model"] == model].copy()
    rows["hours"] = pd.to_numeric(rows["cost_hours"], errors="coerce")
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    bit_colours = _style_by(sorted(pd.to_numeric(rows["bits"], errors="coerce").dropna().unique()), OKABE_ITO[1:])
    base = rows[rows["variant"] == "base"]
    adapters = rows[rows["variant"] != "base"]
    if len(base):
        ax.scatter(
            base["hours"],
            base["mean_delta"],
            color=OKABE_ITO[0],
            marker="*",
            s=110,
            zorder=3,
            label="base model (evaluation only)",
        )
    for b, group in adapters.groupby(pd.to_numeric(adapters["bits"], errors="coerce")):
        ax.scatter(
            group["hours"],
            group["mean_delta"],
            color=bit_colours[b],
            marker="o",
            s=32,
            zorder=3,
            label=BITS_NAMES.get(int(b), f"{int(b)}-bit"),
        )
    front = rows[rows["pareto"].astype(bool)].sort_values("hours")
    ax.plot(
        front["hours"],
        front["mean_delta"],
        color="black",
        linestyle="--",
        linewidth=1.0,
        marker="o",
        markerfacecolor="none",
        markersize=11,
        label="Pareto front",
        zorder=2,
    )
    for _, r in rows.iterrows():
        ax.annotate(r["variant"], (r["hours"], r["mean_delta"]), fontsize=6, xytext=(4, -8), textcoords="offset points")
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_xlabel(cost_label(rows.get("device", pd.Series(dtype=str))))
    ax.set_ylabel("mean delta vs base (all tasks and languages)")
    ax.set_title(f"{model}: cost vs gain")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# --- 8. this run beside published numbers ---------------------------------------------------------------------------


def reference_comparison(comparison: pd.DataFrame, model: str):
    """One panel per task: the published reference value (x) against this run's (y), one point per reference row,
    coloured by resource class where known; the diagonal is agreement."""
    rows = comparison[comparison["model"] == model] if "model" in comparison.columns else comparison
    rows = rows[rows["value_run"].notna() & rows["value_reference"].notna()]
    tasks = sorted(rows["task"].unique())
    if not tasks:
        raise ValueError(f"model {model!r}: no reference row matches a score of this run")
    fig, axes = _panels(len(tasks), width=4.4, height=4.2)
    for ax, task in zip(axes, tasks):
        cell = rows[rows["task"] == task]
        # a row without a language (or resource) compares the run's mean over the task's languages
        resources = cell["resource"].fillna("") if "resource" in cell.columns else pd.Series("", index=cell.index)
        for resource in sorted(resources.unique(), key=lambda r: (r not in RESOURCE_ORDER, r)):
            sel = cell[resources == resource]
            ax.scatter(
                sel["value_reference"],
                sel["value_run"],
                color=RESOURCE_COLOURS.get(resource, "grey"),
                marker=RESOURCE_MARKERS.get(resource, "^"),
                zorder=3,
                label=f"{resource}-resource language" if resource else "mean over languages",
            )
        for _, r in cell.iterrows():
            name = " ".join(str(r[k]) for k in ("variant", "lang") if k in r.index and pd.notna(r[k]))
            ax.annotate(
                name, (r["value_reference"], r["value_run"]), fontsize=6, xytext=(3, 3), textcoords="offset points"
            )
        lo = float(np.nanmin(cell[["value_reference", "value_run"]].to_numpy(dtype=float)))
        hi = float(np.nanmax(cell[["value_reference", "value_run"]].to_numpy(dtype=float)))
        pad = (hi - lo) * 0.1 or 0.05
        ax.plot(
            [lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", linestyle="--", linewidth=0.8, label="agreement"
        )
        ax.set_xlabel("published reference")
        ax.set_ylabel("this run")
        ax.set_title(task)
    fig.suptitle(f"{model}: this run beside the published numbers")
    _figure_legend(fig, axes)
    return fig
