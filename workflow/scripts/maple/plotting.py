"""Figures from the tidy score table (and the tables derived from it). Each function takes plain data and returns the
matplotlib Figure, so that tests can check axes and series without reading pixels; saving is the caller's business
(`save_figure` writes PNG and PDF).

Colours: Okabe-Ito (distinguishable with the common colour-vision deficiencies) for categories; a diverging
ColorBrewer map (RdBu, colour-blind safe) centred on 0 for deltas. Line styles and markers repeat what colour says
so that a grey-scale print still reads.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # no display on clusters and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
RESOURCE_COLOURS = {"high": "#0072B2", "low": "#D55E00"}
RESOURCE_MARKERS = {"high": "o", "low": "s"}
RESOURCE_ORDER = ["high", "low"]
BITS_STYLES = {16: "-", 8: "--", 4: ":"}
BITS_MARKERS = {16: "o", 8: "^", 4: "v"}
BITS_NAMES = {4: "4-bit NF4 QLoRA", 8: "8-bit QLoRA", 16: "16-bit LoRA"}
DATA_STYLES = ["-", "--", "-.", ":"]
DIVERGING_CMAP = "RdBu"
Z95 = 1.959964
MAX_ANNOTATED = 16  # points named on a scatter plot; beyond, colour and marker only
MAX_ANNOTATED_CELLS = 300  # heatmap cells per panel that carry their value as text


def save_figure(fig, png: str, pdf: str | None = None, dpi: int = 130) -> None:
    """PNG (and PDF) via temporary names beside the targets, renamed at the end."""
    for path, fmt in ((png, "png"), (pdf, "pdf")):
        if path:
            tmp = f"{path}.tmp"
            fig.savefig(tmp, dpi=dpi, format=fmt, bbox_inches="tight")
            os.replace(tmp, path)
    plt.close(fig)


# --- helpers -------------------------------------------------------------------------------------------------------


def _rows(table: pd.DataFrame, model: str) -> pd.DataFrame:
    rows = table[table["model"] == model].copy()
    for col in ("rank", "bits"):
        rows[col] = pd.to_numeric(rows[col], errors="coerce")
    return rows


def _resources(rows: pd.DataFrame) -> list[str]:
    present = [r for r in rows["resource"].dropna().unique()]
    return [r for r in RESOURCE_ORDER if r in present] + sorted(set(present) - set(RESOURCE_ORDER))


def _metric(rows: pd.DataFrame) -> str:
    metrics = rows["metric"].dropna().unique()
    return ", ".join(sorted(metrics)) if len(metrics) else "score"


def class_mean(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean score of a resource class per group `by`, with the half-width of its 95 % CI from the per-score stderr.

    Languages are independent samples, so the class mean's variance is sum(se_l^2) / k^2. Where a language has
    several scores in one group (several ranks, say) on the same examples, its se is their mean (the conservative
    choice for correlated scores). The CI is NaN where a stderr is missing."""
    per_lang = rows.groupby(by + ["lang"], dropna=False).agg(value=("value", "mean"), se=("stderr", "mean"))
    per_lang = per_lang.reset_index()

    def combine(group):
        k = len(group)
        se = np.sqrt(np.sum(np.square(group["se"].astype(float)))) / k
        return pd.Series({"value": group["value"].mean(), "ci": Z95 * se, "n_langs": k})

    if per_lang.empty:
        return pd.DataFrame(columns=by + ["value", "ci", "n_langs"])
    return per_lang.groupby(by, dropna=False)[["value", "se"]].apply(combine).reset_index()


def _style_by(values: list, styles: list[str]) -> dict:
    return {v: styles[i % len(styles)] for i, v in enumerate(values)}


def _panel_grid(n_rows: int, n_cols: int, width: float = 4.2, height: float = 3.4):
    return plt.subplots(
        max(n_rows, 1),
        max(n_cols, 1),
        figsize=(width * max(n_cols, 1), height * max(n_rows, 1)),
        squeeze=False,
        layout="constrained",
    )


def _figure_legend(fig, axes) -> None:
    """One legend below the panels for the series of all of them (panels repeat the same classes)."""
    handles: dict = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(
            handles.values(),
            handles.keys(),
            loc="outside lower center",
            ncol=min(len(handles), 3),
            fontsize=8,
            frameon=False,
        )


def _panels(n: int, width: float, height: float, max_cols: int = 4):
    """n panels wrapped into rows of at most max_cols; the figure's axes are exactly the n panels, in order."""
    cols = max(1, min(n, max_cols))
    rows = max(1, -(-n // cols))
    fig, axes = _panel_grid(rows, cols, width=width, height=height)
    axes = list(np.ravel(axes))
    for ax in axes[max(n, 1) :]:
        fig.delaxes(ax)
    return fig, axes[: max(n, 1)]


def _class_counts(rows: pd.DataFrame, resources: list[str]) -> str:
    """'2 high, 1 low languages': how many languages each class mean is over."""
    counts = rows.groupby("resource")["lang"].nunique()
    return ", ".join(f"{int(counts.get(r, 0))} {r}" for r in resources if counts.get(r, 0)) + " languages"


def _class_lines(
    ax,
    rows: pd.DataFrame,
    base: pd.DataFrame,
    x: str,
    datasets: list[str],
    resources: list[str],
    label_counts: bool = True,
) -> None:
    """One line per resource class (and dataset when there are several) of `rows` over `x`, with 95 % CI error
    bars; the base model's class mean as a dotted horizontal line of the same colour."""
    data_style = _style_by(datasets, DATA_STYLES)
    for resource in resources:
        colour = RESOURCE_COLOURS.get(resource, "grey")
        for data in datasets:
            cell = rows[(rows["resource"] == resource) & (rows["data"] == data)]
            if cell.empty:
                continue
            means = class_mean(cell, [x]).sort_values(x)
            label = f"{resource}-resource"
            if len(datasets) > 1:
                label += f", {data}"
            ax.plot(
                means[x],
                means["value"],
                marker=RESOURCE_MARKERS.get(resource, "o"),
                color=colour,
                linestyle=data_style[data],
                label=label,
            )
            if means["ci"].notna().any():
                ax.errorbar(
                    means[x],
                    means["value"],
                    yerr=means["ci"].fillna(0),
                    fmt="none",
                    color=colour,
                    ecolor=colour,
                    capsize=3,
                    linewidth=0.9,
                )
        base_cell = base[base["resource"] == resource]
        if len(base_cell):
            ax.axhline(
                class_mean(base_cell, ["task"])["value"].iloc[0],
                color=colour,
                linestyle=(0, (1, 2)),
                linewidth=1.0,
                label=f"{resource}-resource, base model",
            )


# --- 1. score vs LoRA rank -----------------------------------------------------------------------------------------


def score_vs_rank(table: pd.DataFrame, model: str):
    """Rows: tasks; columns: quantisation bits. One line per resource class (the mean over its languages) against
    the LoRA rank, with 95 % CI error bars; the base model's class mean is the dotted line of the same colour."""
    rows = _rows(table, model)
    adapters, base = rows[rows["variant"] != "base"], rows[rows["variant"] == "base"]
    tasks = sorted(rows["task"].unique())
    bits = sorted(adapters["bits"].dropna().unique())
    datasets = sorted(adapters["data"].dropna().unique())
    resources = _resources(rows)
    fig, axes = _panel_grid(len(tasks), len(bits))
    for i, task in enumerate(tasks):
        for j, b in enumerate(bits):
            ax = axes[i][j]
            cell = adapters[(adapters["task"] == task) & (adapters["bits"] == b)]
            _class_lines(ax, cell, base[base["task"] == task], "rank", datasets, resources)
            ranks = sorted(int(r) for r in cell["rank"].dropna().unique())
            ax.set_xscale("log", base=2)
            ax.set_xticks(ranks, [str(r) for r in ranks])
            ax.minorticks_off()
            ax.set_title(
                f"{task}, {BITS_NAMES.get(int(b), f'{int(b)}-bit')}\n{_class_counts(cell, resources)}", fontsize=10
            )
            ax.set_xlabel("LoRA rank")
            ax.set_ylabel(f"{_metric(cell)} (mean over languages)")
    _figure_legend(fig, axes)
    fig.suptitle(f"{model}: score vs LoRA rank per resource class (bars: 95 % CI; dotted: base model)")
    return fig


# --- 2. quantisation ----------------------------------------------------------------------------------------------


def score_vs_bits(table: pd.DataFrame, model: str):
    """One panel per task: the mean score of each resource class against the bits of the base during finetuning
    (averaged over ranks), with 95 % CI error bars; dotted: the base model."""
    rows = _rows(table, model)
    adapters, base = rows[rows["variant"] != "base"], rows[rows["variant"] == "base"]
    tasks = sorted(rows["task"].unique())
    datasets = sorted(adapters["data"].dropna().unique())
    resources = _resources(rows)
    bits = sorted(int(b) for b in adapters["bits"].dropna().unique())
    fig, axes = _panels(len(tasks), width=5.0, height=3.6)
    for ax, task in zip(axes, tasks):
        cell = adapters[adapters["task"] == task]
        _class_lines(ax, cell, base[base["task"] == task], "bits", datasets, resources)
        ax.set_xscale("log", base=2)
        ax.set_xticks(bits, [BITS_NAMES.get(b, f"{b}-bit").replace(" ", "\n", 1) for b in bits], fontsize=7)
        ax.minorticks_off()
        ax.set_xlim(min(bits) / 1.4, max(bits) * 1.4)
        ax.set_title(f"{task}\n{_class_counts(cell, resources)}", fontsize=10)
        ax.set_xlabel("bits of the base model while finetuning")
        ax.set_ylabel(f"{_metric(cell)} (mean over languages and ranks)")
    _figure_legend(fig, axes)
    fig.suptitle(f"{model}: the effect of quantisation per resource class (bars: 95 % CI; dotted: base model)")
    return fig


# --- 3. delta heatmap ---------------------------------------------------------------------------------------------


def _variant_order(rows: pd.DataFrame) -> list[str]:
    keys = rows[["variant", "data", "rank", "bits"]].drop_duplicates("variant")
    return list(keys.sort_values(["data", "rank", "bits"])["variant"])


def _language_order(rows: pd.DataFrame) -> list[str]:
    langs = rows[["lang", "resource"]].drop_duplicates("lang")
    order = {r: i for i, r in enumerate(RESOURCE_ORDER)}
    langs = langs.assign(o=langs["resource"].map(order).fillna(len(order)))
    return list(langs.sort_values(["o", "lang"])["lang"])


def delta_heatmap(table: pd.DataFrame, model: str):
    """Language x variant heatmap of the delta vs the base model, one panel per task, on a diverging colour map
    centred on 0 (blue: better than the base, red: worse) shared by every panel. Languages grouped by resource
    class; each cell carries its value where the panels are small enough to read it."""
    rows = _rows(table, model)
    rows = rows[rows["variant"] != "base"]
    tasks = sorted(rows["task"].unique())
    deltas = pd.to_numeric(rows["delta_vs_base"], errors="coerce")
    limit = float(np.nanmax(np.abs(deltas))) if deltas.notna().any() else 1.0
    limit = limit or 1.0
    variants = _variant_order(rows)
    n_langs = rows["lang"].nunique()
    annotate = len(variants) * n_langs <= MAX_ANNOTATED_CELLS
    cell_w, cell_h = (0.55, 0.32) if annotate else (0.26, 0.2)
    panel_w, panel_h = 1.6 + cell_w * len(variants), 1.5 + cell_h * n_langs
    fig, axes = _panels(len(tasks), width=panel_w, height=panel_h, max_cols=max(1, int(26 // panel_w)))
    image = None
    for ax, task in zip(axes, tasks):
        cell = rows[rows["task"] == task]
        grid = cell.pivot_table(index="lang", columns="variant", values="delta_vs_base")
        grid = grid.reindex(index=_language_order(cell), columns=[v for v in variants if v in grid.columns])
        values = grid.to_numpy(dtype=float)
        image = ax.imshow(values, cmap=DIVERGING_CMAP, vmin=-limit, vmax=limit, aspect="auto")
        resource = cell.drop_duplicates("lang").set_index("lang")["resource"]
        ax.set_xticks(
            range(grid.shape[1]),
            grid.columns,
            rotation=60 if annotate else 90,
            ha="right",
            fontsize=7,
            rotation_mode="anchor",
        )
        ax.set_yticks(range(grid.shape[0]), [f"{lang} ({resource.get(lang)})" for lang in grid.index], fontsize=7)
        if annotate:
            for (y, x), value in np.ndenumerate(values):
                if not np.isnan(value):
                    ax.text(
                        x,
                        y,
                        f"{value:+.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if abs(value) > 0.6 * limit else "black",
                    )
        ax.set_title(f"{task} ({_metric(cell)})")
        ax.set_xlabel("variant")
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("language (resource class)")
    if image is not None:
        fig.colorbar(image, ax=axes, label="delta vs base (in the panel's metric)", shrink=0.9)
    fig.suptitle(f"{model}: change vs the base model")
    return fig


# --- 4. English retention -----------------------------------------------------------------------------------------


def english_retention(table: pd.DataFrame, model: str, english: str = "en"):
    """One panel per task with English and another language: per variant, the change of the English score (y)
    against the mean change over the other languages (x). Above the diagonal English gained more than the rest;
    below 0 English lost."""
    rows = _rows(table, model)
    rows = rows[(rows["variant"] != "base") & rows["delta_vs_base"].notna()]
    tasks = [
        t for t, langs in rows.groupby("task")["lang"] if english in set(langs) and len(set(langs) - {english}) > 0
    ]
    if not tasks:
        raise ValueError(f"no task of model {model!r} has {english!r} and another language with a delta vs base")
    variants = _variant_order(rows)
    bit_colours = _style_by(sorted(rows["bits"].dropna().unique()), OKABE_ITO)
    datasets = sorted(rows["data"].dropna().unique())
    data_marker = _style_by(datasets, ["o", "s", "^", "D"])
    fig, axes = _panels(len(tasks), width=4.6, height=4.2)
    for ax, task in zip(axes, sorted(tasks)):
        cell = rows[rows["task"] == task]
        eng = cell[cell["lang"] == english].groupby("variant")["delta_vs_base"].mean()
        rest = cell[cell["lang"] != english].groupby("variant")["delta_vs_base"].mean()
        points = pd.DataFrame({"others": rest, "english": eng}).reindex([v for v in variants if v in eng.index])
        facts = cell.drop_duplicates("variant").set_index("variant").reindex(points.index)
        for (data, b), sel in points.groupby([facts["data"], facts["bits"]]):
            label = BITS_NAMES.get(int(b), f"{int(b)}-bit") + (f", {data}" if len(datasets) > 1 else "")
            ax.scatter(
                sel["others"],
                sel["english"],
                color=bit_colours[b],
                marker=data_marker[data],
                s=28,
                zorder=3,
                label=label,
            )
        for variant, p in points.iterrows() if len(points) <= MAX_ANNOTATED else ():
            ax.annotate(variant, (p["others"], p["english"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        span = float(np.nanmax(np.abs(points.to_numpy(dtype=float)))) if len(points) else 1.0
        span = (span or 1.0) * 1.2
        ax.plot([-span, span], [-span, span], color="grey", linestyle="--", linewidth=0.8, label="equal change")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
        n_other = cell.loc[cell["lang"] != english, "lang"].nunique()
        ax.set_xlabel(f"mean change over the other {n_other} languages")
        ax.set_ylabel(f"change of the English ({english}) score")
        ax.set_title(f"{task} ({_metric(cell)})")
    fig.suptitle(f"{model}: English retention per variant (change vs the base model)")
    _figure_legend(fig, axes)
    return fig


# --- 5. generated vs translated data ------------------------------------------------------------------------------


def data_comparison(table: pd.DataFrame, model: str, dataset_labels: dict | None = None):
    """One panel per task: per language (rows), the mean delta vs base of each dataset's adapters over the
    (rank, bits) configurations all datasets share, one marker per dataset joined by a line: a paired comparison."""
    rows = _rows(table, model)
    rows = rows[(rows["variant"] != "base") & rows["delta_vs_base"].notna()]
    datasets = sorted(rows["data"].dropna().unique())
    if len(datasets) < 2:
        raise ValueError(f"model {model!r}: the data comparison needs two datasets, got {datasets}")
    labels = {d: (dataset_labels or {}).get(d, d) for d in datasets}
    colours = _style_by(datasets, OKABE_ITO)
    markers = _style_by(datasets, ["o", "s", "^", "D"])
    tasks = sorted(rows["task"].unique())
    n_langs = rows["lang"].nunique()
    fig, axes = _panels(len(tasks), width=4.6, height=1.4 + 0.3 * n_langs)
    for ax, task in zip(axes, tasks):
        cell = rows[rows["task"] == task]
        configs = cell.groupby(["rank", "bits"])["data"].nunique()
        shared = set(configs[configs == len(datasets)].index)
        cell = cell[[(r, b) in shared for r, b in zip(cell["rank"], cell["bits"])]]
        means = cell.pivot_table(index="lang", columns="data", values="delta_vs_base", aggfunc="mean")
        means = means.dropna(thresh=2).reindex(columns=datasets)  # a language counts if two datasets cover it
        order = [lang for lang in _language_order(cell) if lang in means.index]
        means = means.reindex(order)
        y = np.arange(len(order))
        for k, lang in enumerate(order):
            ax.plot(means.loc[lang].to_numpy(dtype=float), [k] * len(datasets), color="grey", linewidth=1.0, zorder=1)
        for d in datasets:
            ax.scatter(means[d], y, color=colours[d], marker=markers[d], zorder=3, label=labels[d])
        resource = cell.drop_duplicates("lang").set_index("lang")["resource"]
        ax.set_yticks(y, [f"{lang} ({resource.get(lang)})" for lang in order], fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_xlabel(f"mean delta vs base ({_metric(cell)}), {len(shared)} shared rank x bits")
        ax.set_ylabel("language (resource class)")
        ax.set_title(task)
    fig.suptitle(f"{model}: instruction data compared per language")
    _figure_legend(fig, axes)
    return fig


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
    from .aggregation import parse_variant

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
