"""Snakemake rule aggregate: every score file into the tidy CSV."""

import pandas as pd
from maple.report.aggregation import load_scores, tidy_table
from maple.runtime.atomic import write_text
from maple.runtime.jobs import logged_to

MISSING_COLUMNS = ["model", "variant", "task", "lang", "reason"]


def main(
    score_files: list[str],
    languages: dict,
    out_csv: str,
    seed: int,
    missing: list[dict] | None = None,
    missing_csv: str | None = None,
) -> int:
    table = tidy_table(load_scores(score_files), languages, seed=seed)
    outputs = [(table, out_csv)]
    if missing_csv:
        # The grid cells with no score (config allow_missing): header only when the grid is complete.
        outputs.append((pd.DataFrame(missing or [], columns=MISSING_COLUMNS), missing_csv))
        if missing:
            print(f"{len(missing)} cells of the grid have no score: see {missing_csv}")
    for frame, path in outputs:
        write_text(path, frame.to_csv(index=False))
    return len(table)


if __name__ == "__main__":
    with logged_to(snakemake.log[0]):  # noqa: F821
        rows = main(
            list(snakemake.input.scores),
            snakemake.params.languages,
            snakemake.output.csv,  # noqa: F821
            snakemake.params.seed,
            snakemake.params.get("missing"),  # noqa: F821
            snakemake.output.get("missing"),
        )  # noqa: F821
        print(f"{rows} rows")
