"""The shipped table of lm-eval split sizes (workflow/resources/task_sizes.csv: lm_eval_task, split, examples,
family, source) read as plain rows, and preflight's check of those rows against the split sizes a hub dataset's card
gives at the pinned commit (docs/cost-and-sharding.md, "Checked against the hub").

The card is the README's YAML front matter, which the hub returns in `dataset_info` as `card_data`: its
`dataset_info` (one mapping, or a list with one per `config_name`) lists each split's `num_examples`. The check reads
the info preflight already fetched to resolve the revision, so it asks the hub nothing more. Where the hub is
offline, a task's data is not read from the hub, or the card gives no size, the report says "not checked" and why;
a figure that differs is a problem. The cost estimate (maple.config.task_sizes) reads the same rows."""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

from maple.hub.task_sources import DEFAULT_CONFIG

SIZES_FILE = Path(__file__).resolve().parents[3] / "resources" / "task_sizes.csv"
SIZES_TABLE = "workflow/resources/task_sizes.csv"  # as problems name it
SHOWN = 6  # task names listed per report line
NO_ROW = f"no row in {SIZES_TABLE}"


@lru_cache(maxsize=4)
def table_rows(path: str = str(SIZES_FILE)) -> dict[str, dict]:
    """lm-eval task name -> {"examples", "split", "family"} of its row."""
    with open(path, encoding="utf-8") as f:
        return {
            row["lm_eval_task"]: {"examples": int(row["examples"]), "split": row["split"], "family": row["family"]}
            for row in csv.DictReader(f)
        }


def plan_row(name: str) -> dict | None:
    """What preflight's plan keeps of a task's row (a changed figure changes the plan, and so reruns preflight)."""
    row = table_rows().get(name)
    return {"examples": row["examples"], "split": row["split"]} if row else None


def card_sizes(info) -> dict[tuple[str, str], int]:
    """(config, split) -> num_examples, from a huggingface_hub DatasetInfo's card data ({} where it gives none)."""
    card = getattr(info, "card_data", None)
    data = card.to_dict() if hasattr(card, "to_dict") else (card if isinstance(card, dict) else {})
    entries = data.get("dataset_info")
    sizes: dict[tuple[str, str], int] = {}
    for entry in [entries] if isinstance(entries, dict) else entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("splits"), list):
            continue
        config = str(entry.get("config_name") or DEFAULT_CONFIG)
        for split in entry["splits"]:
            if isinstance(split, dict) and split.get("name") and isinstance(split.get("num_examples"), int):
                sizes[(config, str(split["name"]))] = split["num_examples"]
    return sizes


def card_size(sizes: dict[tuple[str, str], int], config: str | None, split: str) -> tuple[str, int | None]:
    """The config looked up (a task without dataset_name reads a card's only config, else 'default') and its split's
    size, or None."""
    if config is None:
        configs = {c for c, _ in sizes}
        config = configs.pop() if len(configs) == 1 else DEFAULT_CONFIG
    return config, sizes.get((config, split))


def _names(needs) -> str:
    names = [n.task for n in needs]
    return ", ".join(names[:SHOWN]) + (f", ... ({len(names)} task languages)" if len(names) > SHOWN else "")


def _unchecked(groups: dict, where: str = "") -> list[str]:
    return [f"size not checked: {_names(group)}{where}: {why}" for why, group in groups.items() if group]


def not_checked(needs, why: str) -> list[str]:
    """Report lines for task needs (data backends' reads left out) whose sizes were not checked, for `why`; a task
    without a row in the table has a line of its own."""
    needs = [n for n in needs if n.task]
    return _unchecked({NO_ROW: [n for n in needs if not n.table], why: [n for n in needs if n.table]})


def mismatch(need, repo, commit: str, config: str, found: int) -> str:
    """The problem of a row whose figure differs from the card's: the table, the task and language, both figures,
    and the fix."""
    row_split = need.table["split"]
    other = f" (its row is for split {row_split!r})" if row_split != need.scored else ""
    fix = f"correct the row to {found} examples" + (f" of split {need.scored!r}" if other else "")
    return (
        f"{SIZES_TABLE}: {need.label}: the table gives {need.table['examples']} examples{other}, the card of dataset "
        f"{repo.repo_id!r} at {repo.revision!r} ({commit[:12]}) gives {found} for config {config!r} split "
        f"{need.scored!r}, the split the task scores: {fix}"
    )


def check_sizes(repo, commit: str, info, needs) -> tuple[list[str], list[str]]:
    """Each task need's table row against the card of `repo` (a HubRepo) at `commit` (its info: `info`). Returns
    (report lines, problems); one problem per figure that differs."""
    sizes = card_sizes(info)
    where = f" (dataset {repo.repo_id}@{repo.revision})"
    agreed, problems = [], []
    unchecked = {NO_ROW: [n for n in needs if n.task and not n.table]}
    for need in [n for n in needs if n.task and n.table]:
        if need.data_files:
            why = "read through data_files, whose split sizes a dataset card does not describe"
        elif not need.scored:
            why = "its task YAML names no test or validation split"
        elif not sizes:
            why = f"no split sizes (dataset_info) in the dataset card at {commit[:12]}"
        else:
            config, found = card_size(sizes, need.config, need.scored)
            if found == need.table["examples"]:
                agreed.append(need)
                continue
            if found is not None:
                problems.append(mismatch(need, repo, commit, config, found))
                continue
            why = f"the dataset card at {commit[:12]} gives no size for the config and split the task scores"
        unchecked.setdefault(why, []).append(need)
    lines = []
    if agreed:
        lines.append(
            f"size dataset {repo.repo_id}@{repo.revision} ({commit[:12]}): {SIZES_TABLE} agrees with its card for "
            f"{_names(agreed)}"
        )
    return lines + _unchecked(unchecked, where), problems
