"""Sharded evaluation on the small DAG: the same study with its tasks split into shards (demo_mc's languages into
two jobs, each demo_gen language into two ranges of its examples, merged by merge_demo_gen) gives a scores.csv
byte-identical to the unsharded run's; Snakemake killed during one shard, the rerun runs that shard and the shards
never started, and nothing that had finished.

The shards are forced through the throughput table (a GPU check's summary.json, estimate.gpu_summary): one second
per generated example, loglikelihood free, no load time, and evaluation.max_job_hours of 12 seconds. One copy of
the small run (bits 16 only, to keep it short) runs the scenario once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from conftest import DECODE_ONLY_SUMMARY, copy_run, planned_jobs, run_snakemake
from test_faults import RUN_ARGS, kill_group, start_snakemake, state, wait_for

pytestmark = pytest.mark.slow

SHARDED = {"max_job_hours": 12 / 3600, "min_shard_examples": 8, "languages_per_shard": 2}
# Each shard's own score files under results/scores/tiny/<variant>/ (demo_gen's languages are then merged).
SHARD_OUTPUTS = {
    "demo_mc.s1": ["demo_mc/en.json", "demo_mc/de.json"],
    "demo_mc.s2": ["demo_mc/sw.json"],
    "demo_gen.s1": ["demo_gen/ranges/en.0-8.json"],
    "demo_gen.s2": ["demo_gen/ranges/en.8-16.json"],
    "demo_gen.s3": ["demo_gen/ranges/de.0-8.json"],
    "demo_gen.s4": ["demo_gen/ranges/de.8-16.json"],
}
EXPECTED_RULES = {
    "evaluate_demo_mc_s1": 2,  # en, de
    "evaluate_demo_mc_s2": 2,  # sw
    "evaluate_demo_gen_s1": 2,  # en 0-8
    "evaluate_demo_gen_s2": 2,  # en 8-16
    "evaluate_demo_gen_s3": 2,  # de 0-8
    "evaluate_demo_gen_s4": 2,  # de 8-16
    "merge_demo_gen": 4,
}


def evaluate_outputs(work: Path) -> dict:
    return {k: v for k, v in state(work).items() if k.startswith("results/scores/")}


@pytest.fixture(scope="module")
def scenario(small_run, tmp_path_factory):
    src, config_path = small_run
    work = copy_run(src, tmp_path_factory.mktemp("sharded") / "run")
    config = yaml.safe_load(Path(config_path).read_text())
    config["finetune"]["bits"] = [16]
    config["evaluation"].update(SHARDED)
    config["estimate"] = {"gpu_summary": "summary.json"}
    (work / "summary.json").write_text(json.dumps(DECODE_ONLY_SUMMARY))
    config_file = work / "config-sharded.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    facts = {"work": work, "src": src, "plan": planned_jobs(work, config=config_file), "copied": state(work)}

    # Run the sharded study; kill Snakemake and its job once two shards have finished and a third is running.
    done = lambda: sorted(work.glob("benchmarks/evaluate/tiny/*/demo_*.s*.tsv"))  # noqa: E731
    running = lambda: [  # noqa: E731
        log
        for log in work.glob("logs/evaluate/tiny/*/demo_*.s*.log")
        if log.with_suffix(".tsv").name not in {b.name for b in done() if b.parent.name == log.parent.name}
    ]
    process = start_snakemake(work, config_file, log=work / "run1.out")
    wait_for(lambda: len(done()) >= 2 and running(), process)
    time.sleep(1)
    (killed,) = running()
    facts["killed"] = (killed.parent.name, killed.stem)
    facts["finished_before_kill"] = {(b.parent.name, b.stem) for b in done()}
    kill_group(process)
    facts["scores_at_kill"] = evaluate_outputs(work)
    facts["plan_after_kill"] = planned_jobs(work, "--rerun-incomplete", config=config_file)

    run_snakemake(work, "--unlock", config=config_file)
    run_snakemake(work, *RUN_ARGS, "--rerun-incomplete", config=config_file)
    facts["scores_after"] = evaluate_outputs(work)
    facts["plan_after"] = planned_jobs(work, config=config_file)
    return facts


def test_the_tasks_are_planned_as_shards(scenario):
    plan = scenario["plan"]
    assert {k: v for k, v in plan.items() if k.startswith(("evaluate_", "merge_"))} == EXPECTED_RULES


def test_the_sharded_scores_csv_is_byte_identical_to_the_unsharded(scenario):
    unsharded = (scenario["src"] / "results/tables/scores.csv").read_text().splitlines()
    sharded = (scenario["work"] / "results/tables/scores.csv").read_text().splitlines()
    # the unsharded run has the 4-bit adapter too; every other row is the same to the byte
    assert sharded == [line for line in unsharded if ",demo-r4-q4," not in line]
    assert len(sharded) == 1 + 2 * (3 + 2)


def test_a_merged_language_keeps_its_ranges_and_per_example_values(scenario):
    work = scenario["work"]
    score = json.loads((work / "results/scores/tiny/base/demo_gen/en.json").read_text())
    assert score["n"] == 16 and [e["doc_id"] for e in score["per_example"]] == list(range(16))
    assert score["provenance"]["merged_from"] == [[0, 8], [8, 16]]
    unsharded = json.loads((scenario["src"] / "results/scores/tiny/base/demo_gen/en.json").read_text())
    assert score["per_example"] == unsharded["per_example"] and score["stderr"] == unsharded["stderr"]


def test_after_a_kill_only_the_killed_and_the_unstarted_shards_are_planned(scenario):
    evaluate_jobs = sum(v for k, v in scenario["plan_after_kill"].items() if k.startswith("evaluate_"))
    total = sum(v for k, v in EXPECTED_RULES.items() if k.startswith("evaluate_"))
    assert evaluate_jobs == total - len(scenario["finished_before_kill"])
    assert scenario["killed"] not in scenario["finished_before_kill"]


def test_the_rerun_keeps_every_finished_shards_files(scenario):
    """The score files the shards that finished before the kill wrote are the same files after the rerun."""
    at_kill, after = scenario["scores_at_kill"], scenario["scores_after"]
    finished = [
        f"results/scores/tiny/{variant}/{path}"
        for variant, shard in scenario["finished_before_kill"]
        for path in SHARD_OUTPUTS[shard]
    ]
    assert len(finished) >= 2
    for path in finished:
        assert at_kill[path] != scenario["copied"].get(path), f"{path}: not written by the sharded run"
        assert after[path] == at_kill[path], f"{path} was rewritten by the rerun"
    variant, shard = scenario["killed"]
    for path in SHARD_OUTPUTS[shard]:  # the killed shard's files: written by the rerun
        assert after[f"results/scores/tiny/{variant}/{path}"] != at_kill.get(f"results/scores/tiny/{variant}/{path}")
    assert scenario["plan_after"] == {}, "the rerun left work to do"
