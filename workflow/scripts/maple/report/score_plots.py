"""Figures of the score table: score vs LoRA rank, score vs bits, the delta heatmap, English retention, generated vs
translated data. Each function takes plain data and returns the matplotlib Figure, so that tests can check axes and
series without reading pixels; maple.report.style.save_figure writes it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on clusters and CI
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from maple.report.labels import label_points  # noqa: E402
from maple.report.style import (  # noqa: E402
    BITS_NAMES,
    DIVERGING_CMAP,
    MAX_ANNOTATED,
    MAX_ANNOTATED_CELLS,
    OKABE_ITO,
    RESOURCE_ORDER,
    _class_counts,
    _class_lines,
    _figure_legend,
    _metric,
    _panel_grid,
    _panels,
    _resources,
    _rows,
    _style_by,
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
    labelled = []  # (panel, points, variants) named once the layout is final (maple.report.labels)
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
        if len(points) <= MAX_ANNOTATED:
            named = points.dropna()
            labelled.append((ax, list(zip(named["others"], named["english"])), list(named.index)))
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
    label_points(fig, labelled)
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
