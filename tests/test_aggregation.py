"""The tidy table and the paired bootstrap, on constructed score files with known answers."""

from __future__ import annotations

import pytest

from maple.aggregation import paired_bootstrap_ci, parse_variant, tidy_table

LANGUAGES = {"en": {"script": "Latn", "resource": "high"}, "sw": {"script": "Latn", "resource": "low"}}


def score(variant, task, lang, per_example, metric="acc"):
    values = [v for _, v in per_example]
    return {
        "model": "tiny", "variant": variant, "task": task, "lang": lang, "metric": metric,
        "value": sum(values) / len(values), "stderr": 0.1, "n": len(values),
        "per_example": [{"doc_id": d, "value": v} for d, v in per_example],
    }


def test_parse_variant():
    assert parse_variant("base") == {"data": None, "rank": None, "bits": None}
    assert parse_variant("demo-set-r16-q4") == {"data": "demo-set", "rank": 16, "bits": 4}


def test_bootstrap_of_a_constant_difference_is_that_difference():
    adapter = {i: 1.0 for i in range(50)}
    base = {i: 0.0 for i in range(50)}
    assert paired_bootstrap_ci(adapter, base) == (1.0, 1.0)


def test_bootstrap_interval_is_paired_and_covers_the_mean():
    # Base and adapter disagree on 10 of 100 examples, always in the adapter's favour: delta 0.1.
    base = {i: float(i % 2) for i in range(100)}
    adapter = {i: 1.0 if i < 20 else base[i] for i in range(100)}
    low, high = paired_bootstrap_ci(adapter, base, n_resamples=4000, seed=1)
    assert 0.0 < low < 0.1 < high < 0.2
    # The analytic standard error of a mean of 100 values that are 1 with p=0.1: 0.03; the interval ~ +-0.06.
    assert high - low == pytest.approx(2 * 1.96 * 0.03, rel=0.25)


def test_bootstrap_uses_only_shared_examples():
    assert paired_bootstrap_ci({1: 1.0}, {2: 0.0}) == (None, None)
    assert paired_bootstrap_ci({1: 1.0, 2: 0.0}, {1: 0.0}) == (1.0, 1.0)


def test_tidy_table_rows_and_deltas():
    scores = [
        score("base", "mc", "en", [(0, 0.0), (1, 1.0)]),
        score("base", "mc", "sw", [(0, 0.0), (1, 0.0)]),
        score("demo-r4-q16", "mc", "en", [(0, 1.0), (1, 1.0)]),
        score("demo-r4-q16", "mc", "sw", [(0, 1.0), (1, 0.0)]),
    ]
    table = tidy_table(scores, LANGUAGES)
    assert len(table) == 4
    row = table[(table["variant"] == "demo-r4-q16") & (table["lang"] == "en")].iloc[0]
    assert row["delta_vs_base"] == pytest.approx(0.5)
    assert row["rank"] == 4 and row["bits"] == 16 and row["data"] == "demo"
    assert row["resource"] == "high"
    sw = table[(table["variant"] == "demo-r4-q16") & (table["lang"] == "sw")].iloc[0]
    assert sw["resource"] == "low" and sw["delta_vs_base"] == pytest.approx(0.5)
    base_rows = table[table["variant"] == "base"]
    assert base_rows["delta_vs_base"].isna().all()
