"""The shipped table of lm-eval split sizes (workflow/resources/task_sizes.csv: lm_eval_task, split, examples,
family, source) read as plain rows, and preflight's check of those rows against the split sizes a hub dataset's card
gives at the pinned commit (docs/cost-and-sharding.md, "Checked against the hub").

The card is the README's YAML front matter, which the hub returns in `dataset_info` as `card_data`: its
`dataset_info` (one mapping, or a list with one per `config_name`) lists each split's `num_examples`. The check reads
the info preflight already fetched to resolve the revision. A task that reads the hub's parquet conversion
(refs/convert/parquet, through data_files <config>/<split>/...) meets no card there (the converter keeps parquet
files only): its sizes are checked against the card of the dataset's main branch, the data the conversion is made
from (one more dataset_info per repository). Where the hub is offline, a task's data is not read from the hub, or
the card gives no size, the report says "not checked" and why; a figure that differs is a problem. The cost estimate
(maple.cost.requests) reads the same rows."""

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


def mismatch(need, repo_id: str, revision: str, commit: str, config: str, split: str, found: int) -> str:
    """The problem of a row whose figure differs from the card's: the table, the task and language, both figures,
    and the fix."""
    row_split = need.table["split"]
    other = f" (its row is for split {row_split!r})" if row_split != split else ""
    fix = f"correct the row to {found} examples" + (f" of split {split!r}" if other else "")
    return (
        f"{SIZES_TABLE}: {need.label}: the table gives {need.table['examples']} examples{other}, the card of dataset "
        f"{repo_id!r} at {revision!r} ({commit[:12]}) gives {found} for config {config!r} split {split!r}, the split "
        f"the task scores: {fix}"
    )


SOURCE_BRANCH = "main"  # what the hub's parquet conversion is made from, and where the card is


def converted_split(need) -> tuple[str, str] | None:
    """A task reading the parquet conversion through data_files: the (config, split) its scored split's files lie
    under (<config>/<split>/*.parquet); None otherwise."""
    wanted = (need.data_files or {}).get(need.scored) if need.scored else None
    pattern = wanted if isinstance(wanted, str) else (wanted[0] if wanted else "")
    parts = pattern.split("/")
    return (parts[0], parts[1]) if len(parts) >= 3 else None


def source_card(api, repo, refs, token, failures) -> tuple[str, object] | None:
    """(commit, info) of the dataset's main branch, whose card describes the data its parquet conversion holds;
    None where the branch is not listed or the hub does not answer (failures: the hub's error types)."""
    branches = {b.name: b.target_commit for b in getattr(refs, "branches", None) or []}
    commit = branches.get(SOURCE_BRANCH)
    if commit is None:
        return None
    try:
        return commit, api.dataset_info(repo.repo_id, revision=commit, token=token or False)
    except failures:
        return None


def check_sizes(repo, commit: str, info, needs, source=None) -> tuple[list[str], list[str]]:
    """Each task need's table row against the card of `repo` (a HubRepo) at `commit` (its info: `info`); a need that
    reads the parquet conversion through data_files against `source` ((commit, info) of the main branch: source_card)
    where given. Returns (report lines, problems); one problem per figure that differs."""
    sizes = card_sizes(info)
    where = f" (dataset {repo.repo_id}@{repo.revision})"
    agreed, from_source, problems = [], [], []
    unchecked = {NO_ROW: [n for n in needs if n.task and not n.table]}
    for need in [n for n in needs if n.task and n.table]:
        if need.data_files:
            at = converted_split(need)
            found = card_sizes(source[1]).get(at) if source and at else None
            if found == need.table["examples"]:
                from_source.append(need)
                continue
            if found is not None:
                problems.append(mismatch(need, repo.repo_id, SOURCE_BRANCH, source[0], at[0], at[1], found))
                continue
            why = (
                "read through data_files, and no size for its config and split in the card of the main branch"
                if source
                else "read through data_files, whose split sizes a dataset card does not describe"
            )
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
                problems.append(mismatch(need, repo.repo_id, repo.revision, commit, config, need.scored, found))
                continue
            why = f"the dataset card at {commit[:12]} gives no size for the config and split the task scores"
        unchecked.setdefault(why, []).append(need)
    lines = []
    if agreed:
        lines.append(
            f"size dataset {repo.repo_id}@{repo.revision} ({commit[:12]}): {SIZES_TABLE} agrees with its card for "
            f"{_names(agreed)}"
        )
    if from_source:
        lines.append(
            f"size dataset {repo.repo_id}@{repo.revision}: {SIZES_TABLE} agrees with the card of its "
            f"{SOURCE_BRANCH} branch ({source[0][:12]}) for {_names(from_source)}"
        )
    return lines + _unchecked(unchecked, where), problems
