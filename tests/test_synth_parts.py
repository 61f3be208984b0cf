"""A model-written dataset too large for one job is written in parts of its languages (rule synth_part): the
dataset is byte-identical to the one written by one synth_data job, and a lost part reruns alone. On the small
config with a generate dataset whose teacher is the tiny model built there; parts forced by a tiny
evaluation.max_job_hours."""

from __future__ import annotations

import shutil

import pytest
from conftest import copy_run, planned_jobs, run_snakemake, small_config, write_config

pytestmark = pytest.mark.slow

GENERATED = {
    "backend": "generate",
    "teacher": "tiny",
    "languages": ["en", "de", "sw"],
    "n_train_per_language": 3,
    "n_eval_per_language": 1,
    "batch_size": 4,
    "instruction_max_new_tokens": 8,
    "max_new_tokens": 8,
    "min_new_tokens": 6,
    "min_chars": 1,
    "script_filter": False,  # a tiny random-ish model writes no particular script
    "max_rounds": 4,
    "oversample": 2.0,
}
TARGET = "results/data/gen/train.jsonl"
# each job's fixed cost alone (start-up and the model load: startup_s + small_load_s, 42 s by default) is over
# 0.01 h: every language a part of its own
IN_PARTS_HOURS = 0.01


def dataset_files(workdir):
    root = workdir / "results" / "data" / "gen"
    return {
        p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and "parts" not in p.parts
    }


def test_a_dataset_written_in_parts_is_the_dataset_of_one_job(tmp_path):
    config = small_config()
    config["datasets"]["gen"] = GENERATED
    whole = tmp_path / "whole"
    config_file = write_config(whole, config)
    assert "synth_part" not in planned_jobs(whole, "--", TARGET, config=config_file)
    run_snakemake(whole, "--cores", "2", "--resources", "gpu=1", "--", TARGET, config=config_file)

    split = copy_run(whole, tmp_path / "split")  # the same built teacher
    shutil.rmtree(split / "results" / "data" / "gen")
    config["evaluation"]["max_job_hours"] = IN_PARTS_HOURS
    in_parts = write_config(tmp_path / "in-parts", config)
    assert planned_jobs(split, "--", TARGET, config=in_parts) == {"synth_part": 3, "synth_data_from_parts": 1}
    run_snakemake(split, "--cores", "2", "--resources", "gpu=1", "--", TARGET, config=in_parts)
    assert dataset_files(split) == dataset_files(whole) and dataset_files(whole)

    # part 2 killed before the dataset was written (Snakemake removes a failed job's output): it reruns alone
    gen = split / "results" / "data" / "gen"
    for done in ("parts/p2.jsonl", "train.jsonl", "stats.json"):
        (gen / done).unlink()
    shutil.rmtree(gen / "eval")
    assert planned_jobs(split, "--", TARGET, config=in_parts) == {"synth_part": 1, "synth_data_from_parts": 1}
