"""Snakemake rule count_tokens: results/plan/tokens.csv, each model's tokenizer on a sample of each task's examples
where both are on this machine (maple.evaluate.token_counts); the estimate reads it once estimate.token_counts names
it."""

import csv
import io

from maple.evaluate.token_counts import TokenCount, count_study
from maple.runtime.atomic import write_text
from maple.runtime.jobs import logged_to
from maple.runtime.tasks import Task

COLUMNS = list(TokenCount.__dataclass_fields__)


def main(models: dict, tasks: dict, out_csv: str, training: dict | None = None) -> str:
    resolved = [Task(**t["task"], languages=tuple(t["languages"])) for t in tasks.values()]
    rows = count_study(models, resolved, training=training)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out_csv, text.getvalue())
    counted = sum(1 for r in rows if r["sampled"])
    return f"{counted} of {len(rows)} (model, task or train:<dataset>, language) counted with the model's tokenizer: {out_csv}"


if __name__ == "__main__":
    with logged_to(snakemake.log[0], hub_offline=True):  # noqa: F821
        p = snakemake.params  # noqa: F821
        print(main(p.models, p.tasks, snakemake.output[0], p.training))  # noqa: F821
