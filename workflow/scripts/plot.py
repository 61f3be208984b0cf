"""Snakemake rule plot: every figure of one model, PNG and PDF, from the tidy CSV and the tables derived from it
(cost.csv, reference_comparison.csv) and the adapters' train_metrics.json (loss curves)."""

import json

import pandas as pd
from maple.report import run_plots, score_plots
from maple.report.style import save_figure
from maple.runtime.jobs import logged_to


def make_figure(
    name: str,
    model: str,
    table: pd.DataFrame,
    cost: str | None = None,
    metrics_files: dict[str, str] | None = None,
    comparison: str | None = None,
    dataset_labels: dict | None = None,
    english: str = "en",
):
    """The Figure `name` of `model`; the inputs each figure reads are loaded here."""
    if name == "loss_curves":
        histories = {}
        for variant, path in (metrics_files or {}).items():
            with open(path, encoding="utf-8") as f:
                histories[variant] = json.load(f)
        return run_plots.loss_curves(histories, model)
    if name == "cost_vs_gain":
        return run_plots.cost_vs_gain(pd.read_csv(cost), model)
    if name == "reference_comparison":
        return run_plots.reference_comparison(pd.read_csv(comparison), model)
    if name == "english_retention":
        return score_plots.english_retention(table, model, english=english)
    if name == "data_comparison":
        return score_plots.data_comparison(table, model, dataset_labels=dataset_labels)
    return getattr(score_plots, name)(table, model)


def main(csv: str, model: str, figures: list[str], outputs: dict, **inputs) -> None:
    table = pd.read_csv(csv)
    for name in figures:
        fig = make_figure(name, model, table, **inputs)
        save_figure(fig, outputs[name], outputs.get(f"{name}_pdf"))
        print(f"{name}: {outputs[name]}")


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    with logged_to(sm.log[0]):
        main(
            sm.input.csv,
            sm.wildcards.model,
            sm.params.figures,
            dict(sm.output.items()),
            cost=sm.input.cost,
            metrics_files=sm.params.metrics_files,
            comparison=sm.input.get("reference_comparison"),
            dataset_labels=sm.params.dataset_labels,
            english=sm.params.english,
        )
