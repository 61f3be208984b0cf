"""Evaluation shards and the cost estimate, without running a job: the shard plan (languages in order, a large
language in ranges, the cap per job), the merge of a split language's ranges, the throughput table read from a GPU
check's summary.json, and the plan of config/maple.yaml (no evaluation job over evaluation.max_job_hours; each job's
SLURM runtime from its estimate)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from maple.config.validation import checked_study
from maple.cost.estimate import plan_shards, runtime_minutes, study_estimate
from maple.cost.shards import Part, plan_task_shards, split_languages
from maple.cost.throughput import DEFAULT_THROUGHPUT, SUMMARY_KEYS, ThroughputError, read_gpu_summary
from maple.evaluate.scores import MergeError, merge_ranges


def plan(examples, per_example=1.0, **kwargs):
    return plan_task_shards("t", examples, dict.fromkeys(examples, per_example), **{"overhead_seconds": 0, **kwargs})


def test_a_task_that_fits_is_one_shard_named_as_the_task():
    (shard,) = plan({"en": 10, "de": 10}, max_seconds=100)
    assert shard.name == "t" and shard.index == 0 and shard.languages == ["en", "de"] and not shard.ranges


def test_languages_fill_shards_in_order_and_a_large_language_is_split_into_ranges():
    shards = plan({"en": 40, "de": 40, "sw": 250, "zh": 30}, max_seconds=100, min_examples=10)
    assert [s.name for s in shards] == ["t.s1", "t.s2", "t.s3", "t.s4", "t.s5"]
    assert [s.languages for s in shards] == [["en", "de"], [], [], [], ["zh"]]
    assert [p.label for s in shards for p in s.ranges] == ["sw.0-83", "sw.83-167", "sw.167-250"]
    assert [p.label for p in split_languages(shards)["sw"]] == ["sw.0-83", "sw.83-167", "sw.167-250"]


def test_no_shard_exceeds_the_budget_unless_ranges_are_not_allowed():
    examples = {"a": 500, "b": 30, "c": 70, "d": 99}
    for shards in (plan(examples, max_seconds=100, overhead_seconds=20, per_example=1.0),):
        for shard in shards:
            n = sum(examples[p.lang] if p.whole else p.stop - p.start for p in shard.parts)
            assert 20 + n <= 100
    kept = plan(examples, max_seconds=100, ranges_allowed=False)
    assert all(not s.ranges for s in kept) and ["a"] in [s.languages for s in kept]


def test_min_examples_and_languages_per_shard():
    (shard,) = plan({"en": 12}, max_seconds=1e-9, min_examples=12)
    assert shard.languages == ["en"]  # too few examples for two ranges of 12
    shards = plan({"en": 1, "de": 1, "sw": 1}, max_seconds=100, max_languages=1)
    assert [s.languages for s in shards] == [["en"], ["de"], ["sw"]]


def part_score(start, stop, values, metric="acc"):
    n = stop - start
    return {
        "model": "m",
        "variant": "base",
        "task": "t",
        "lang": "en",
        "metric": metric,
        "value": sum(values) / n,
        "n": n,
        "per_example": [{"doc_id": start + i, "value": v} for i, v in enumerate(values)],
        "provenance": {
            "examples_range": [start, stop],
            "languages_in_job": [f"en.{start}-{stop}"],
            "samples_file": None,
            "wall_seconds": 1.0,
            "model_load_seconds": 0.5,
            "eval_seconds": 0.5,
        },
        "lm_eval": {"results": {f"{metric},none": sum(values) / n, f"{metric}_stderr,none": 0.1, "alias": "t"}},
    }


def test_merged_ranges_are_lm_evals_mean_and_stderr_over_all_examples():
    from lm_eval.api.metrics import mean, mean_stderr

    values = [0.1, 0.7, 0.3333, 1.0, 0.0, 0.25, 0.9]
    merged = merge_ranges([part_score(4, 7, values[4:]), part_score(0, 4, values[:4])])
    assert merged["value"] == mean(values) and merged["stderr"] == mean_stderr(values)
    assert merged["n"] == 7 and [e["doc_id"] for e in merged["per_example"]] == list(range(7))
    assert merged["lm_eval"]["results"]["acc,none"] == mean(values)
    assert merged["provenance"]["merged_from"] == [[0, 4], [4, 7]] and merged["provenance"]["examples_range"] is None
    with pytest.raises(MergeError, match="do not join up"):
        merge_ranges([part_score(0, 3, values[:3]), part_score(4, 7, values[4:])])


def test_the_throughput_table_takes_a_gpu_checks_summary(tmp_path):
    assert read_gpu_summary(None)["source"] == dict.fromkeys(SUMMARY_KEYS, "default")
    summary = tmp_path / "summary.json"
    summary.write_text(
        json.dumps({"throughput": dict(MEASURED, finetune_tokens_per_s={"4": 7000, "8": 3100, 16: 9100})})
    )
    table = read_gpu_summary(summary)
    assert table["warning"] == ""
    assert table["decode_step_s"] == 0.05 and table["source"]["decode_step_s"] == str(summary)
    assert table["finetune_tokens_per_s"] == {"4": 7000.0, "8": 3100.0, "16": 9100.0}  # bits as strings or integers
    summary.write_text(json.dumps({"prefill_tokens_per_s": 20000}))  # top-level keys are read too
    assert read_gpu_summary(summary)["prefill_tokens_per_s"] == 20000
    summary.write_text("{not json")
    with pytest.raises(ThroughputError, match="estimate.gpu_summary: cannot read"):
        read_gpu_summary(summary)


# A summary as bench/gpu_check_summary.py writes it when every step ran.
MEASURED = {
    "model_params_b": 6.74,
    "kv_bytes_per_token": 524288,
    "small_model_params_b": 0.0006,
    "finetune_tokens_per_s": {"4": 5100, "8": 2900, "16": 8800},
    "small_finetune_tokens_per_s": {"4": 90000, "8": 80000, "16": 120000},
    "prefill_tokens_per_s": 16000,
    "small_prefill_tokens_per_s": 900000,
    "prefill_slowdown": {"4": 1.4, "8": 1.9, "16": 1.0},
    "decode_slowdown": {"4": 2.2, "8": 3.4, "16": 1.0},
    "decode_step_s": 0.05,
    "small_decode_step_s": 0.01,
    "decode_batch": 32,
    "decode_context": 528,
    "startup_s": 21.0,
    "load_s": 40.0,
    "small_load_s": 1.0,
    "task_index_s": 9.0,
    "task_setup_s": 2.0,
}


def test_a_summary_with_failed_or_missing_steps_plans_with_the_defaults_and_one_warning(tmp_path):
    """A failed step writes null (here inside a by-bits object: the 8-bit finetune failed), a step that did not run
    leaves its keys out: the plan goes on with the defaults for exactly those keys and says so in one line."""
    measured = dict(MEASURED, finetune_tokens_per_s={"4": 5100, "8": None, "16": 8800}, load_s=None)
    del measured["decode_step_s"], measured["prefill_slowdown"]
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"ok": False, "throughput": measured}))
    table = read_gpu_summary(summary)
    assert table["finetune_tokens_per_s"] == {"4": 5100.0, "8": DEFAULT_THROUGHPUT["finetune_tokens_per_s"]["8"],
                                              "16": 8800.0}  # fmt: skip
    assert table["load_s"] == DEFAULT_THROUGHPUT["load_s"] and table["source"]["load_s"] == "default"
    assert table["decode_step_s"] == DEFAULT_THROUGHPUT["decode_step_s"]
    assert table["startup_s"] == 21.0 and table["source"]["startup_s"] == str(summary)
    warning = table["warning"]
    assert "\n" not in warning and str(summary) in warning
    named = warning.split(" for ")[1].split(":")[0].split(", ")
    assert sorted(named) == sorted(
        ["finetune_tokens_per_s.8", "load_s", "decode_step_s", "prefill_slowdown.4", "prefill_slowdown.8",
         "prefill_slowdown.16"]
    )  # fmt: skip
    summary.write_text(json.dumps({"throughput": {"prefill_tokens_per_s": "fast", "startup_s": 0}}))
    table = read_gpu_summary(summary)  # not a number: the default, named; a fixed cost may be 0
    assert table["prefill_tokens_per_s"] == DEFAULT_THROUGHPUT["prefill_tokens_per_s"] and table["startup_s"] == 0
    assert "prefill_tokens_per_s" in table["warning"] and "startup_s" not in table["warning"]


def test_a_plan_with_a_failed_gpu_check_step_warns_once_and_goes_on(tmp_path):
    """The whole plan (Snakemake, the config check's own planning) with a summary whose steps failed."""
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"throughput": {"finetune_tokens_per_s": {"4": None}, "decode_step_s": None}}))
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["estimate"] = {"gpu_summary": str(summary)}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(tmp_path / "c.yaml"),
         "-n", "--cores", "1", "-d", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line for line in (run.stdout + run.stderr).splitlines() if "estimate.gpu_summary" in line]
    assert len(lines) == 1 and "decode_step_s" in lines[0] and "finetune_tokens_per_s.4" in lines[0], lines


@pytest.fixture(scope="module")
def maple_plan():
    config = yaml.safe_load((REPO / "config" / "maple.yaml").read_text())
    _, study = checked_study(config, [], str(REPO))
    table = read_gpu_summary(None)
    shards = plan_shards(study, table)
    return study, shards, study_estimate(study, shards, table)


def test_no_evaluation_job_of_the_study_exceeds_max_job_hours(maple_plan):
    study, shards, rows = maple_plan
    evaluation = [r for r in rows if r["stage"] == "evaluate"]
    assert len(evaluation) == len(study.evaluations()) * 0 + sum(len(shards[t]) for _, _, t in study.evaluations())
    limit = study.evaluation_params["max_job_hours"] * 3600
    assert max(r["gpu_seconds"] for r in evaluation) <= limit
    for row in evaluation:
        assert row["runtime_min"] == max(math.ceil(row["gpu_seconds"] * 1.2 / 60), 10) <= 360


def test_the_study_sharded_at_a_lower_limit_still_fits_and_covers_every_example(maple_plan):
    study, _, _ = maple_plan
    study.evaluation_params["max_job_hours"] = 0.25
    try:
        table = read_gpu_summary(None)
        shards = plan_shards(study, table)
        rows = study_estimate(study, shards, table)
    finally:
        study.evaluation_params["max_job_hours"] = 5
    assert max(r["gpu_seconds"] for r in rows if r["stage"] == "evaluate") <= 0.25 * 3600
    mlqa = shards["mlqa"]
    assert len(mlqa) > 1 and "en" in split_languages(mlqa)
    ranges = split_languages(mlqa)["en"]
    assert ranges[0].start == 0 and all(a.stop == b.start for a, b in zip(ranges, ranges[1:]))
    assert ranges[-1].stop == 11590  # MLQA en test (workflow/resources/task_sizes.csv)
    assert {lang for s in mlqa for lang in s.languages} | set(split_languages(mlqa)) == set(
        study.tasks["mlqa"].languages
    )


@contextmanager
def planned_workflow(config_path: Path, workdir: Path):
    """The workflow Snakemake plans from a config, through its API: its rules (resources, conda envs) and
    common.smk's globals."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[Path(config_path)]),
            snakefile=REPO / "Snakefile",
            workdir=workdir,
        )._workflow
        if not list(workflow.rules):  # the Snakefile is read on first use
            workflow.include(workflow.main_snakefile, overwrite_default_target=True)
        yield workflow


@pytest.mark.slow
def test_each_evaluation_jobs_slurm_runtime_is_its_estimate(tmp_path):
    from types import SimpleNamespace

    with planned_workflow(REPO / "config" / "maple.yaml", tmp_path) as workflow:
        estimate = {(r["model"], r["variant"], r["job"]): r for r in workflow.globals["ESTIMATE"]}
        checked = 0
        for rule in workflow.rules:
            if not rule.name.startswith("evaluate_"):
                continue
            job = rule.name.removeprefix("evaluate_")
            for (model, variant, name), row in estimate.items():
                if name == job:
                    runtime = rule.resources["runtime"]
                    wildcards = SimpleNamespace(model=model, variant=variant)
                    first = runtime.evaluate(wildcards, attempt=1).value
                    assert first == row["runtime_min"] == runtime_minutes(row["gpu_seconds"], 1.2) <= 360
                    assert runtime.evaluate(wildcards, attempt=2).value == 2 * first  # a retry: more time
                    checked += 1
        assert checked == 7 * 74  # seven tasks, one shard each, 74 model variants


def test_runtime_minutes():
    assert runtime_minutes(0, 1.2) == 10 and runtime_minutes(5 * 3600, 1.2) == 360
    assert Part("en").label == "en" and Part("en", 0, 5).label == "en.0-5"


def test_the_split_size_table_names_its_sources():
    import csv

    with open(REPO / "workflow" / "resources" / "task_sizes.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert all(r["source"] and int(r["examples"]) > 0 for r in rows)
    config = yaml.safe_load((REPO / "config" / "maple.yaml").read_text())
    _, study = checked_study(config, [], str(REPO))
    names = {r["lm_eval_task"] for r in rows}
    assert {n for t in study.tasks.values() for n in t.lm_eval_names.values()} <= names
    assert Path(REPO / "docs" / "cost-and-sharding.md").is_file()


def test_model_written_datasets_are_written_in_parts_that_fit(maple_plan):
    """config/maple.yaml's generated and translated datasets: parts of their languages, every language in one part,
    each synth_part job within evaluation.max_job_hours and its runtime from its estimate."""
    from maple.cost.data_jobs import plan_synth_parts, synth_language_seconds, synth_rows

    study, _, _ = maple_plan
    table = read_gpu_summary(None)
    study.evaluation_params["max_job_hours"] = 2
    try:
        parts = plan_synth_parts(study, table)
        rows = synth_rows(study, table, parts)
    finally:
        study.evaluation_params["max_job_hours"] = 5
    for name in ("multialpaca", "bactrianx"):
        assert len(parts[name]) > 1
        assert sorted(lang for part in parts[name] for lang in part) == sorted(study.datasets[name]["languages"])
    assert [r["job"] for r in rows if r["variant"] == "multialpaca"] == [
        f"multialpaca_p{i}" for i in range(1, len(parts["multialpaca"]) + 1)
    ]
    assert max(r["gpu_seconds"] for r in rows) <= 2 * 3600
    whole = synth_rows(study, table)  # one job per dataset: the same work, the fixed costs once
    fixed = {
        r["variant"]: synth_language_seconds(study, r["variant"], study.datasets[r["variant"]], table)[3] for r in whole
    }
    extra = sum(fixed[r["variant"]] for r in rows) - sum(fixed.values())
    assert sum(r["gpu_seconds"] for r in rows) == pytest.approx(sum(r["gpu_seconds"] for r in whole) + extra, rel=1e-4)
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    _, demo_study = checked_study(demo, [], str(REPO))
    assert plan_synth_parts(demo_study, table) == {}  # template data: no model writes it


def test_each_row_is_for_the_split_its_task_scores():
    """The table's split is the one lm-eval scores the task on (its test split, else its validation split), read from
    the installed lm-eval's task YAMLs and the shipped ones: lm-eval's xnli tasks name no test split and score the
    validation split (2,490 per language, not the test split's 5,010). The figures themselves are checked against
    the hub by preflight (maple.hub.split_sizes)."""
    from maple.config.validation import lm_eval_tasks_dir
    from maple.hub.split_sizes import table_rows
    from maple.hub.task_files import SHIPPED_TASKS_DIR, builtin_task_files, plain_config, shipped_task_files
    from maple.hub.task_sources import scored_split

    rows = table_rows()
    shipped = shipped_task_files(SHIPPED_TASKS_DIR)
    files = {**builtin_task_files([n for n in rows if n not in shipped], lm_eval_tasks_dir()), **shipped}
    assert set(rows) <= set(files)
    wrong = {n: (r["split"], scored_split(plain_config(files[n]))) for n, r in rows.items()}
    assert {n: pair for n, pair in wrong.items() if pair[0] != pair[1]} == {}
    assert rows["xnli_sw"] == {"examples": 2490, "split": "validation", "family": "xnli"}


def test_a_range_past_the_end_of_its_split_fails_before_lm_eval_runs(tmp_path):
    """A split smaller than the table says: its last ranges would start past the end, and lm-eval reads an empty
    sample list as every example; the job fails at once, naming the table."""
    from maple.evaluate.job import run_lm_eval
    from maple.runtime.tasks import Task

    held_out = tmp_path / "en.jsonl"
    held_out.write_text(
        "".join(json.dumps({"instruction": f"q{i}", "input": "", "output": "a"}) + "\n" for i in range(3))
    )
    task = Task(
        "gen", "local", "generate", "exact_match", {"en": "maple_gen_en"}, ("en",), eval_files={"en": str(held_out)}
    )
    with pytest.raises(
        ValueError, match=r"maple_gen_en: the range 5-end starts past the split's 3 examples.*task_sizes"
    ):
        run_lm_eval(None, None, task, ["en"], "plain", 0, examples=(5, None))


def test_a_configured_runtime_shorter_than_the_estimate_is_named(maple_plan):
    """config/maple.yaml asks 720 minutes per finetune, more than any finetune's estimate x 1.2; at 300 minutes the
    plan warns, naming the longest job; without a configured runtime each job gets its own (no warning)."""
    from maple.cost.table import runtime_warnings

    _, _, rows = maple_plan
    finetunes = [r for r in rows if r["stage"] == "finetune"]
    assert runtime_warnings(rows, {"finetune": 720, "evaluate": None}) == []
    (line,) = runtime_warnings(rows, {"finetune": 300, "evaluate": None})
    over = [r for r in finetunes if r["runtime_min"] > 300]
    longest = max(r["runtime_min"] for r in finetunes)
    assert line.startswith(f"{len(over)} finetune jobs are estimated over finetune.resources.runtime 300 min")
    assert f"the longest {longest} min" in line and "resumes from its last checkpoint" in line
    assert runtime_warnings(rows, {"finetune": None, "evaluate": None}) == []
    # a runtime written as Snakemake reads one: "300", "300m", "5h" are the same 300 minutes
    for written in ("300", "300m", "5h"):
        assert runtime_warnings(rows, {"finetune": written, "evaluate": None}) == [line]
    assert runtime_warnings(rows, {"finetune": "12h", "evaluate": None}) == []
