"""Snakemake rule plot: the figures of one model from the tidy CSV."""

import pandas as pd

from maple.jobs import logged_to
from maple.plotting import delta_heatmap, score_vs_rank

FIGURES = {"score_vs_rank": score_vs_rank, "delta_heatmap": delta_heatmap}


def main(csv: str, model: str, outputs: dict) -> None:
    table = pd.read_csv(csv)
    for name, make in FIGURES.items():
        fig = make(table, model)
        fig.savefig(outputs[name], dpi=130)


if __name__ == "__main__":
    with logged_to(snakemake.log[0]):  # noqa: F821
        main(snakemake.input.csv, snakemake.wildcards.model, dict(snakemake.output.items()))  # noqa: F821
