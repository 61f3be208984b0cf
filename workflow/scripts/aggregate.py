"""Snakemake rule aggregate: every score file into the tidy CSV."""

import os

from maple.aggregation import load_scores, tidy_table
from maple.jobs import logged_to


def main(score_files: list[str], languages: dict, out_csv: str, seed: int) -> int:
    table = tidy_table(load_scores(score_files), languages, seed=seed)
    tmp = f"{out_csv}.tmp"
    table.to_csv(tmp, index=False)
    os.replace(tmp, out_csv)
    return len(table)


if __name__ == "__main__":
    with logged_to(snakemake.log[0]):  # noqa: F821
        rows = main(list(snakemake.input.scores), snakemake.params.languages, snakemake.output.csv,  # noqa: F821
                    snakemake.params.seed)  # noqa: F821
        print(f"{rows} rows")
