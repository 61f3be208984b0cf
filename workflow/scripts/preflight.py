"""Snakemake checkpoint preflight (a localrule: on the submit host, before any job): every check at once, the
hub revisions pinned to commits in pins.json, a report; a non-zero exit listing every problem stops the run.

By hand (the checks only, nothing written): snakemake preflight --forcerun preflight"""

import json
import sys
from pathlib import Path

from maple.hub.preflight import run_preflight
from maple.hub.task_files import SHIPPED_TASKS_DIR, lm_eval_tasks_dir
from maple.runtime.atomic import write_json
from maple.runtime.jobs import logged_to


def main(plan: dict, pins_file: str, report_file: str) -> list[str]:
    """The problems found (none: pins and report written)."""
    outcome = run_preflight(plan, shipped_dir=SHIPPED_TASKS_DIR, lm_eval_dir=lm_eval_tasks_dir())
    lines = [*outcome.report, *(f"FAIL {p}" for p in outcome.problems)]
    print("\n".join(lines))
    if outcome.problems:
        return outcome.problems
    Path(report_file).parent.mkdir(parents=True, exist_ok=True)
    Path(report_file).write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_json(pins_file, outcome.pins)  # last: pins.json marks the preflight complete
    return []


if __name__ == "__main__":
    with logged_to(snakemake.log[0]):  # noqa: F821
        problems = main(snakemake.params.plan, snakemake.output.pins, snakemake.output.report)  # noqa: F821
    if problems:
        # On the console too (the log holds them as well): every problem, one line each, then a non-zero exit so
        # that no job after preflight starts.
        head = f"preflight: {len(problems)} problem{'s' if len(problems) > 1 else ''} (log: {snakemake.log[0]}):"  # noqa: F821
        print("\n  ".join([head, *problems]), file=sys.stderr, flush=True)
        sys.exit(1)
    # warnings (access not verifiable on this endpoint ...) on the console too: they stop nothing
    report = Path(snakemake.output.report).read_text(encoding="utf-8").splitlines()  # noqa: F821
    for line in report:
        if line.startswith("warn "):
            print(f"preflight: {line}", file=sys.stderr, flush=True)
    print(json.dumps({"preflight": "ok", "pins": snakemake.output.pins}))  # noqa: F821
