"""Snakemake rule summarize: the cost of every configuration (from the benchmark files), the Markdown summary and,
with published reference numbers in the config, this run beside them.

By hand:  python workflow/scripts/summarize.py results/tables/scores.csv --summary summary.md  (no cost table)
"""

import argparse
import os

import pandas as pd
from maple.report.summary import (
    adapter_devices,
    cost_table,
    load_reference,
    reference_comparison,
    summary_markdown,
)
from maple.runtime.atomic import write_text
from maple.runtime.jobs import logged_to


def main(
    csv: str,
    jobs: list[dict],
    metrics_files: dict[str, str],
    summary: str,
    cost: str | None = None,
    reference: str | None = None,
    comparison: str | None = None,
) -> None:
    table = pd.read_csv(csv)
    costs = cost_table(table, jobs, adapter_devices(metrics_files)) if jobs else None
    if cost:
        write_text(cost, costs.to_csv(index=False))
    compared = None
    if reference:
        compared = reference_comparison(table, load_reference(reference))
        if comparison:
            write_text(comparison, compared.to_csv(index=False))
    write_text(summary, summary_markdown(table, costs, compared))


if __name__ == "__main__":
    if "snakemake" in globals():
        sm = snakemake  # noqa: F821
        with logged_to(sm.log[0]):
            main(
                sm.input.csv,
                sm.params.jobs,
                sm.params.metrics_files,
                sm.output.summary,
                sm.output.cost,
                sm.input.get("reference"),
                sm.output.get("reference_comparison"),
            )
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("csv")
        parser.add_argument("--summary", required=True)
        parser.add_argument("--reference")
        parser.add_argument("--comparison")
        args = parser.parse_args()
        main(args.csv, [], {}, args.summary, None, args.reference, args.comparison)
        print(os.path.abspath(args.summary))
