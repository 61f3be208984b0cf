"""Figures from the tidy score table. Each function takes the table and returns the matplotlib Figure, so that
tests can check axes and series without reading pixels; saving is the caller's business.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on clusters and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
RESOURCE_COLOURS = {"high": "#0072B2", "low": "#D55E00"}


def score_vs_rank(table: pd.DataFrame, model: str):
    """Rows: tasks; columns: quantisation bits. One line per language, coloured by its resource level; the base
    model's score is the dotted line of the same colour."""
    rows = table[table["model"] == model]
    adapters = rows[rows["variant"] != "base"]
    tasks = sorted(rows["task"].unique())
    bits = sorted(adapters["bits"].dropna().unique())
    fig, axes = plt.subplots(len(tasks), len(bits), figsize=(4.2 * len(bits), 3.4 * len(tasks)), squeeze=False)
    for i, task in enumerate(tasks):
        for j, b in enumerate(bits):
            ax = axes[i][j]
            cell = adapters[(adapters["task"] == task) & (adapters["bits"] == b)]
            for lang, lines in cell.groupby("lang"):
                lines = lines.groupby("rank", as_index=False)["value"].mean().sort_values("rank")
                resource = rows.loc[rows["lang"] == lang, "resource"].iloc[0]
                colour = RESOURCE_COLOURS.get(resource, "grey")
                ax.plot(lines["rank"], lines["value"], marker="o", color=colour, label=f"{lang} ({resource})")
                base = rows[(rows["variant"] == "base") & (rows["task"] == task) & (rows["lang"] == lang)]
                if len(base):
                    ax.axhline(base["value"].iloc[0], color=colour, linestyle=":", linewidth=0.8)
            ax.set_xscale("log", base=2)
            ranks = sorted(cell["rank"].dropna().unique())
            ax.set_xticks(ranks, [str(r) for r in ranks])
            ax.set_title(f"{task}, {b}-bit")
            ax.set_xlabel("LoRA rank")
            ax.set_ylabel(cell["metric"].iloc[0] if len(cell) else "score")
            ax.legend(fontsize=6, ncol=2)
    fig.suptitle(f"{model}: score vs LoRA rank (dotted: base model)")
    fig.tight_layout()
    return fig


def delta_heatmap(table: pd.DataFrame, model: str):
    """Language x variant heatmap of the delta vs the base model, one panel per task, diverging around 0."""
    rows = table[(table["model"] == model) & (table["variant"] != "base")]
    tasks = sorted(rows["task"].unique())
    limit = float(np.nanmax(np.abs(rows["delta_vs_base"].astype(float)))) if len(rows) else 1.0
    limit = limit or 1.0
    fig, axes = plt.subplots(1, len(tasks), figsize=(1.2 + 1.1 * rows["variant"].nunique() * len(tasks), 4.5),
                             squeeze=False)
    for ax, task in zip(axes[0], tasks):
        grid = rows[rows["task"] == task].pivot_table(index="lang", columns="variant", values="delta_vs_base")
        image = ax.imshow(grid.to_numpy(dtype=float), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(grid.shape[0]), grid.index)
        for (y, x), value in np.ndenumerate(grid.to_numpy(dtype=float)):
            if not np.isnan(value):
                ax.text(x, y, f"{value:+.2f}", ha="center", va="center", fontsize=6)
        ax.set_title(task)
        fig.colorbar(image, ax=ax, label="delta vs base")
    fig.suptitle(f"{model}: change vs the base model")
    fig.tight_layout()
    return fig
