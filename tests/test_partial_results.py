"""--keep-going and partial results (docs/reruns-and-faults.md, "Failed jobs and partial results"): one configuration
whose finetunes fail (a second model whose `target_modules` name no module of it) does not stop the other jobs; the
second step

    snakemake --cores all --config allow_missing=true

aggregates, summarises and plots what finished, and lists the missing cells in results/tables/missing.csv.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, copy_run, planned_jobs, run_snakemake, small_config

RUN_ARGS = ("--cores", "2", "--resources", "gpu=1")


@pytest.fixture(scope="module")
def partial(small_run, tmp_path_factory):
    src, config_path = small_run
    work = copy_run(src, tmp_path_factory.mktemp("partial") / "run")
    config = yaml.safe_load(Path(config_path).read_text())
    # The same tiny model under a second alias, with a LoRA target that does not exist in it.
    config["models"]["broken"] = {"path": "results/models/tiny", "target_modules": ["no_such_proj"]}
    # No out-of-memory retries of a finetune that cannot succeed (a rule setting: it reruns nothing of tiny's).
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    if "oom_retries" in schema["properties"]["finetune"]["properties"]:
        config["finetune"]["oom_retries"] = 0
    config_file = work / "config-broken.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    scores_csv = work / "results/tables/scores.csv"
    facts = {"work": work, "config": config_file, "config_dict": config, "csv_before": scores_csv.stat().st_mtime_ns}
    facts["first"] = run_snakemake(work, *RUN_ARGS, "--keep-going", config=config_file, check=False)
    facts["csv_after_first"] = scores_csv.stat().st_mtime_ns
    facts["second"] = run_snakemake(work, *RUN_ARGS, "--config", "allow_missing=true", config=config_file)
    return facts


def cells(config, model, variants):
    return {
        (model, v, task, lang)
        for v in variants
        for task, spec in config["evaluation"]["tasks"].items()
        for lang in spec["languages"]
    }


@pytest.mark.slow
def test_keep_going_runs_the_others_past_the_failed_finetunes(partial):
    work, first = partial["work"], partial["first"]
    assert first.returncode != 0
    # The broken model's finetunes failed, with the reason in Snakemake's output, and left no adapter ...
    output = first.stdout + first.stderr
    assert output.count("Error in rule finetune") >= 2 and "no_such_proj" in output, output[-3000:]
    for bits in (4, 16):
        assert not (work / f"results/adapters/broken/demo/r4-q{bits}").exists()
    # ... and every job not downstream of them ran: the broken model's base evaluations.
    for task, spec in partial["config_dict"]["evaluation"]["tasks"].items():
        for lang in spec["languages"]:
            assert (work / f"results/scores/broken/base/{task}/{lang}.json").exists()
    # Snakemake does not aggregate over a failed input: the table was not rewritten by the first step.
    assert partial["csv_after_first"] == partial["csv_before"]


@pytest.mark.slow
def test_allow_missing_aggregates_what_finished_and_lists_the_rest(partial):
    work, config = partial["work"], partial["config_dict"]
    table = pd.read_csv(work / "results/tables/scores.csv")
    adapters = ["demo-r4-q4", "demo-r4-q16"]
    expected = cells(config, "tiny", ["base"] + adapters) | cells(config, "broken", ["base"])
    assert set(zip(table["model"], table["variant"], table["task"], table["lang"])) == expected
    missing = pd.read_csv(work / "results/tables/missing.csv")
    assert set(zip(missing["model"], missing["variant"], missing["task"], missing["lang"])) == cells(
        config, "broken", adapters
    )
    assert missing["reason"].str.contains("no adapter").all()
    # Said where the user looks: Snakemake's output, and the aggregate log.
    output = partial["second"].stdout + partial["second"].stderr
    assert f"{len(missing)} cells of the grid have none and are listed in results/tables/missing.csv" in output
    assert f"{len(missing)} cells of the grid have no score" in (work / "logs/aggregate/aggregate.log").read_text()
    # Figures for the model with finished adapters; none for the one with base scores only (nothing to compare).
    assert list((work / "results/plots/tiny").glob("*.png"))
    assert not (work / "results/plots/broken").exists()


@pytest.mark.slow
def test_allow_missing_is_idempotent_and_a_normal_run_retries_the_failures(partial):
    work, config = partial["work"], partial["config"]
    assert planned_jobs(work, "--config", "allow_missing=true", config=config) == {}
    retry = planned_jobs(work, config=config)
    assert retry["finetune"] == 2
    assert retry["evaluate_demo_mc"] == 2 and retry["evaluate_demo_gen"] == 2
    assert "synth_data" not in retry and "build_tiny_model" not in retry


def test_the_grid_cut_down_to_what_finished():
    """Study.restricted_to_finished on its own: an adapter missing drops its evaluations (reason: no adapter), a
    task's scores missing drop that evaluation (reason: no score), a model with nothing finished drops out."""
    from maple.config.validation import checked_study

    config = small_config()
    config["models"]["other"] = {"hub_id": "org/other"}
    study = checked_study(config)[1]
    partial, missing = study.restricted_to_finished(
        adapter_done=lambda f: f.model == "tiny" and f.bits == 16,
        scores_done=lambda m, v, t: m == "tiny" and (v, t) != ("demo-r4-q16", "demo_gen"),
    )
    assert list(partial.models) == ["tiny"]
    assert [f.variant for f in partial.finetunes] == ["demo-r4-q16"]
    assert partial.evaluations() == [
        ("tiny", "base", "demo_mc"),
        ("tiny", "base", "demo_gen"),
        ("tiny", "demo-r4-q16", "demo_mc"),
    ]
    reasons = {(c["model"], c["variant"], c["task"]): c["reason"] for c in missing}
    assert reasons[("tiny", "demo-r4-q4", "demo_mc")].startswith("no adapter")
    assert reasons[("tiny", "demo-r4-q16", "demo_gen")].startswith("no score")
    assert reasons[("other", "base", "demo_mc")].startswith("no score")
    assert len(missing) + len(partial.cells()) == len(study.cells())
