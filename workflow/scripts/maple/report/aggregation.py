"""All score files into one tidy table: one row per (model, variant, task, language, metric).

Beside value, stderr and n each adapter row carries its delta vs the base model on the same task and language and
a paired-bootstrap 95 % interval of that delta, resampling the examples both were scored on.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

COLUMNS = [
    "model",
    "variant",
    "data",
    "rank",
    "bits",
    "task",
    "lang",
    "script",
    "resource",
    "metric",
    "value",
    "stderr",
    "n",
    "delta_vs_base",
    "delta_ci_low",
    "delta_ci_high",
]
VARIANT_PATTERN = re.compile(r"^(?P<data>.+)-r(?P<rank>\d+)-q(?P<bits>\d+)$")


def parse_variant(variant: str) -> dict:
    """'base' or '{data}-r{rank}-q{bits}' -> data, rank, bits (None for the base)."""
    match = VARIANT_PATTERN.match(variant)
    if variant == "base" or not match:
        return {"data": None, "rank": None, "bits": None}
    return {"data": match["data"], "rank": int(match["rank"]), "bits": int(match["bits"])}


def paired_bootstrap_ci(
    adapter: dict, base: dict, n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | tuple[None, None]:
    """Percentile interval of mean(adapter - base) over the examples both were scored on (keys: doc ids)."""
    shared = sorted(set(adapter) & set(base))
    if not shared:
        return None, None
    diffs = np.array([adapter[k] - base[k] for k in shared], dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diffs), size=(n_resamples, len(diffs)))
    means = diffs[idx].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def load_scores(paths: list[str]) -> list[dict]:
    scores = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            scores.append(json.load(f))
    return scores


def tidy_table(scores: list[dict], languages: dict, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The tidy CSV's rows from score-file dicts; `languages` is the config's languages table."""
    base = {(s["model"], s["task"], s["lang"]): s for s in scores if s["variant"] == "base"}
    rows = []
    for s in scores:
        lang_info = languages.get(s["lang"], {})
        row = {
            "model": s["model"],
            "variant": s["variant"],
            **parse_variant(s["variant"]),
            "task": s["task"],
            "lang": s["lang"],
            "script": lang_info.get("script"),
            "resource": lang_info.get("resource"),
            "metric": s["metric"],
            "value": s["value"],
            "stderr": s.get("stderr"),
            "n": s.get("n"),
            "delta_vs_base": None,
            "delta_ci_low": None,
            "delta_ci_high": None,
        }
        b = base.get((s["model"], s["task"], s["lang"]))
        if b is not None and s["variant"] != "base":
            row["delta_vs_base"] = s["value"] - b["value"]
            per_adapter = {e["doc_id"]: e["value"] for e in s.get("per_example", [])}
            per_base = {e["doc_id"]: e["value"] for e in b.get("per_example", [])}
            row["delta_ci_low"], row["delta_ci_high"] = paired_bootstrap_ci(per_adapter, per_base, n_resamples, seed)
        rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("rank", "bits", "n"):
        table[col] = table[col].astype("Int64")
    return table.sort_values(["model", "task", "lang", "variant"], kind="stable").reset_index(drop=True)
