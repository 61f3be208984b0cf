"""The tidy table and the paired bootstrap, on constructed score files with known answers."""

from __future__ import annotations

import pytest
from maple.report.aggregation import paired_bootstrap_ci, parse_variant, tidy_table

LANGUAGES = {"en": {"script": "Latn", "resource": "high"}, "sw": {"script": "Latn", "resource": "low"}}


def score(variant, task, lang, per_example, metric="acc"):
    values = [v for _, v in per_example]
    return {
        "model": "tiny",
        "variant": variant,
        "task": task,
        "lang": lang,
        "metric": metric,
        "value": sum(values) / len(values),
        "stderr": 0.1,
        "n": len(values),
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


def write_score_files(tmp_path, scores) -> list[str]:
    import json

    paths = []
    for s in scores:
        path = tmp_path / f"{s['variant']}-{s['task']}-{s['lang']}.json"
        path.write_text(json.dumps(s))
        paths.append(str(path))
    return paths


def test_csv_carries_the_bootstrap_interval_of_a_known_case(tmp_path):
    """Through the aggregate script to the CSV: 400 paired examples, the adapter right on 40 the base gets wrong and
    the same elsewhere. The per-example differences are 1 on 40 and 0 on 360: delta 0.1 with standard error
    sqrt(0.1 * 0.9 / 400) = 0.015, so the 95 % interval is 0.1 +- 1.96 * 0.015 = [0.0706, 0.1294]. An unpaired
    interval would be about three times wider (each score alone has standard error ~0.025)."""
    import pandas as pd
    from aggregate import main

    base = [(i, float(i % 2)) for i in range(400)]  # right on the odd examples
    adapter = [(i, 1.0 if i < 80 else v) for i, v in base]  # also right on the 40 even ones among the first 80
    scores = [
        score("base", "mc", "sw", base),
        score("demo-r8-q4", "mc", "sw", adapter),
        score("base", "mc", "en", [(0, 0.0), (1, 1.0)]),
        score("demo-r8-q4", "mc", "en", [(0, 0.0), (1, 0.0)]),
        score("base", "gen", "en", [(0, 0.0)]),
        score("demo-r8-q4", "gen", "en", [(1, 1.0)]),
    ]
    out = tmp_path / "scores.csv"
    assert main(write_score_files(tmp_path, scores), LANGUAGES, str(out), seed=0) == 6
    table = pd.read_csv(out)
    assert list(table.columns) == [
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
    row = table[(table["variant"] == "demo-r8-q4") & (table["lang"] == "sw")].iloc[0]
    assert (row["n"], row["stderr"], row["rank"], row["bits"]) == (400, 0.1, 8, 4)
    assert row["delta_vs_base"] == pytest.approx(0.1)
    assert row["delta_ci_low"] == pytest.approx(0.1 - 1.96 * 0.015, abs=0.006)
    assert row["delta_ci_high"] == pytest.approx(0.1 + 1.96 * 0.015, abs=0.006)
    # Two examples whose differences are 0 and -1: the resampled means are 0, -0.5, -1 with probabilities
    # 1/4, 1/2, 1/4, so the 2.5 % and 97.5 % quantiles are -1 and 0 exactly.
    en = table[(table["variant"] == "demo-r8-q4") & (table["task"] == "mc") & (table["lang"] == "en")].iloc[0]
    assert (en["delta_vs_base"], en["delta_ci_low"], en["delta_ci_high"]) == (-0.5, -1.0, 0.0)
    # No example scored by both: a delta, but no interval.
    gen = table[(table["variant"] == "demo-r8-q4") & (table["task"] == "gen")].iloc[0]
    assert gen["delta_vs_base"] == 1.0 and pd.isna(gen["delta_ci_low"]) and pd.isna(gen["delta_ci_high"])
    assert table[table["variant"] == "base"][["delta_vs_base", "delta_ci_low", "delta_ci_high"]].isna().all().all()
    # Seeded: the same table again.
    again = tmp_path / "again.csv"
    main(write_score_files(tmp_path, scores), LANGUAGES, str(again), seed=0)
    assert again.read_text() == out.read_text()
