"""What every figure shares: colours (Okabe-Ito for categories, distinguishable with the common colour-vision
deficiencies; RdBu centred on 0 for deltas), line styles and markers that repeat what colour says (a grey-scale print
still reads), panel grids and legends, and `save_figure` (PNG and PDF, atomically)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on clusters and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from maple.runtime.atomic import replacing  # noqa: E402

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
            with replacing(path) as tmp:
                fig.savefig(tmp, dpi=dpi, format=fmt, bbox_inches="tight")
    plt.close(fig)


# --- table look-ups ---------------------------------------------------------------------------------------------------


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
