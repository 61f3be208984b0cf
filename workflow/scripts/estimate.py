"""Snakemake rule estimate: the study's cost estimate as results/plan/estimate.csv and estimate.md (the rows are
worked out at planning: maple.cost.estimate)."""

from maple.cost.table import estimate_csv, estimate_markdown, total_line
from maple.runtime.atomic import write_text
from maple.runtime.jobs import logged_to


def main(rows: list[dict], throughput: dict, evaluation: dict, notes: list[str], out_csv: str, out_md: str) -> str:
    write_text(out_csv, estimate_csv(rows))
    write_text(out_md, estimate_markdown(rows, throughput, evaluation, notes))
    return total_line(rows, evaluation["max_job_hours"])


if __name__ == "__main__":
    with logged_to(snakemake.log[0]):  # noqa: F821
        p = snakemake.params  # noqa: F821
        print(main(p.rows, p.throughput, p.evaluation, p.notes, snakemake.output.csv, snakemake.output.md))  # noqa: F821
