"""Tokens counted with a model's tokenizer (rule count_tokens, maple.evaluate.token_counts) on the prompts lm-eval
builds, from a parquet mirror and from a local task's held-out data, and read by the estimate
(estimate.token_counts) in place of the stated averages: shards and GPU-seconds follow the counts."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from conftest import REPO
from maple.config.validation import checked_study
from maple.cost.estimate import estimate_notes, evaluation_fixed_seconds, plan_shards, study_estimate
from maple.cost.model_shape import model_shape
from maple.cost.requests import TokenCountsError, read_token_counts
from maple.cost.throughput import read_gpu_summary
from maple.evaluate.token_counts import SAMPLE_SIZE, count_study, sample_indices
from maple.runtime.tasks import Task
from test_task_sources import mlqa_rows, write_parquet, xcopa_rows
from tiny_models import train_tokenizer

N_ROWS = 40  # more than SAMPLE_SIZE: the sample is a part of the split


def test_sample_indices_spread_over_the_split():
    assert sample_indices(5) == [0, 1, 2, 3, 4]
    picked = sample_indices(1000)
    assert len(picked) == SAMPLE_SIZE and picked[0] == 0 and picked[-1] == 999
    assert picked == sorted(set(picked))


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer().save_pretrained(path)
    return path


def model_entry(source) -> dict:
    return {"source": str(source), "revision": "main", "prompt_format": "plain", "trust_remote_code": False}


def test_lm_eval_tasks_counted_from_their_mirrors(tokenizer_dir, tmp_path):
    """A generation task (its prompt and the reference answer) and a multiple-choice one (context and continuation
    per request), read from parquet mirrors, counted with the model's tokenizer."""
    from transformers import AutoTokenizer

    for split in ("validation", "test"):  # the splits the hub's parquet conversion has
        write_parquet(tmp_path / "mlqa", "mlqa.de.de", split, mlqa_rows(N_ROWS))
        write_parquet(tmp_path / "xcopa", "et", split, xcopa_rows(N_ROWS))
    mirrors = {"facebook/mlqa": str(tmp_path / "mlqa"), "cambridgeltl/xcopa": str(tmp_path / "xcopa")}
    tasks = [
        Task("mlqa", "lm_eval", None, "f1", {"de": "maple_mlqa_de_de"}, ("de",), mirrors=mirrors),
        Task("xcopa", "lm_eval", None, "acc", {"et": "xcopa_et"}, ("et",), mirrors=mirrors),
    ]
    rows = {r["task"]: r for r in count_study({"m": model_entry(tokenizer_dir)}, tasks)}
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)

    def length(text):
        return len(tok(text, add_special_tokens=False)["input_ids"])

    mlqa, xcopa = rows["mlqa"], rows["xcopa"]
    assert mlqa["sampled"] == xcopa["sampled"] == SAMPLE_SIZE
    assert mlqa["source"] == f"{tokenizer_dir}@main"
    assert mlqa["answer_tokens"] == length("Berlin")  # every fixture answer is "Berlin"
    first = mlqa_rows(1)[0]  # the prompt holds the paragraph and the question
    assert mlqa["prompt_tokens"] > length(first["context"]) + length(first["question"])
    premise, ending = xcopa_rows(1)[0]["premise"], "ta libastus."
    assert xcopa["answer_tokens"] == 0
    assert length(premise) < xcopa["prompt_tokens"] < length(premise) + length(ending) + 20


def test_local_task_counted_where_its_held_out_data_exist(tokenizer_dir, tmp_path):
    held_out = tmp_path / "en.jsonl"
    records = [{"instruction": f"Translate word {i} please", "input": "", "output": "ok"} for i in range(5)]
    held_out.write_text("".join(json.dumps(r) + "\n" for r in records))
    task = Task(
        "gen",
        "local",
        "generate",
        "exact_match",
        {"en": "maple_gen_en", "de": "maple_gen_de"},
        ("en", "de"),
        eval_files={"en": str(held_out), "de": str(tmp_path / "missing.jsonl")},
    )
    en, de = count_study({"m": model_entry(tokenizer_dir)}, [task])
    assert en["sampled"] == 5 and en["prompt_tokens"] > 0 and en["answer_tokens"] > 0
    assert de["sampled"] == 0 and de["source"] == "stated: no held-out data yet"


def test_a_model_without_local_tokenizer_keeps_the_stated_averages(tmp_path):
    task = Task("gen", "local", "generate", "exact_match", {"en": "maple_gen_en"}, ("en",))
    (row,) = count_study({"m": model_entry(tmp_path / "no-model")}, [task])
    assert row["sampled"] == 0 and row["source"].startswith("stated: tokenizer not on this machine")


def test_training_records_counted_as_the_finetune_feeds_them(tokenizer_dir, tmp_path):
    from maple.runtime.prompts import format_prompt
    from transformers import AutoTokenizer

    records = [
        {"instruction": f"Say {i}", "input": "", "output": "word " * (1 + i % 3), "lang": lang}
        for lang in ("en", "de")
        for i in range(6)
    ]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in records))
    training = {"m": {"demo": {"train_file": str(train), "languages": ["en", "de", "sw"]}}}
    rows = {r["lang"]: r for r in count_study({"m": model_entry(tokenizer_dir)}, [], training=training)}
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    lengths = [
        len(tok(format_prompt(r["instruction"], "", "plain", tok) + r["output"], add_special_tokens=False)["input_ids"])
        + 1
        for r in records
        if r["lang"] == "en"
    ]
    assert rows["en"]["task"] == "train:demo" and rows["en"]["sampled"] == 6
    assert rows["en"]["prompt_tokens"] == pytest.approx(sum(lengths) / len(lengths), abs=0.05)
    assert rows["sw"]["sampled"] == 0 and rows["sw"]["source"] == "stated: no record of this language"
    missing = {"m": {"demo": {"train_file": str(tmp_path / "none.jsonl"), "languages": ["en"]}}}
    (row,) = count_study({"m": model_entry(tokenizer_dir)}, [], training=missing)
    assert row["sampled"] == 0 and row["source"] == "stated: training data not written yet"


def write_counts(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[*rows[0]])
        writer.writeheader()
        writer.writerows(rows)


def test_counted_tokens_drive_the_estimate_and_the_shards(tmp_path):
    """config/maple.yaml with xnli's prompts counted at about 60x the stated average for one model: its jobs cost more
    and it needs more shards; a row not counted (sampled 0) and the other model keep the stated figures."""
    config = yaml.safe_load((REPO / "config" / "maple.yaml").read_text())
    _, study = checked_study(config, [], str(REPO))
    table = read_gpu_summary(None)
    model = next(iter(study.models))
    langs = study.tasks["xnli"].languages
    counts = tmp_path / "tokens.csv"
    rows = [
        {"model": model, "task": "xnli", "lang": lang, "sampled": 32, "prompt_tokens": 4000.0, "answer_tokens": 0.0}
        for lang in langs
    ]
    rows.append({"model": model, "task": "xcopa", "lang": "et", "sampled": 0, "prompt_tokens": 0, "answer_tokens": 0})
    write_counts(counts, rows)
    tokens = read_token_counts(counts)
    assert len(tokens) == len(langs)

    before_shards = plan_shards(study, table)
    before = study_estimate(study, before_shards, table)
    after_shards = plan_shards(study, table, tokens)
    after = study_estimate(study, after_shards, table, tokens)

    def seconds(estimate, task, m):  # examples' seconds, without each job's fixed cost (more shards, more loads)
        fixed = evaluation_fixed_seconds(table, model_shape(study.models[m], study.tiny_model))
        return sum(r["gpu_seconds"] - fixed for r in estimate if r["task"] == task and r["model"] == m)

    other = next(m for m in study.models if m != model)
    assert seconds(after, "xnli", model) > 2 * seconds(before, "xnli", model)
    assert seconds(after, "xnli", other) == pytest.approx(seconds(before, "xnli", other), rel=1e-4)
    assert seconds(after, "xcopa", model) == pytest.approx(seconds(before, "xcopa", model), rel=1e-4)
    assert len(after_shards["xnli"]) > len(before_shards["xnli"])
    limit = study.evaluation_params["max_job_hours"] * 3600
    assert max(r["gpu_seconds"] for r in after if r["stage"] == "evaluate") <= limit
    assert any(f"counted with the model's tokenizer for {len(langs)} of" in n for n in estimate_notes(study, tokens))


def test_counted_training_tokens_drive_the_finetune_estimate(tmp_path):
    """A training set's records counted at the sequence cap for one model: its finetunes on that set cost more,
    the others are unchanged."""
    config = yaml.safe_load((REPO / "config" / "maple.yaml").read_text())
    _, study = checked_study(config, [], str(REPO))
    table = read_gpu_summary(None)
    model, data = "llama2-7b", "multialpaca"
    langs = study.datasets[data]["languages"]
    counts = tmp_path / "tokens.csv"
    rows = [
        {
            "model": model,
            "task": f"train:{data}",
            "lang": lang,
            "sampled": 32,
            "prompt_tokens": 4000.0,
            "answer_tokens": 0,
        }
        for lang in langs
    ]
    write_counts(counts, rows)
    tokens = read_token_counts(counts)
    shards = plan_shards(study, table)
    before = {(r["model"], r["variant"]): r for r in study_estimate(study, shards, table) if r["stage"] == "finetune"}
    after = {
        (r["model"], r["variant"]): r for r in study_estimate(study, shards, table, tokens) if r["stage"] == "finetune"
    }
    for key, row in after.items():
        if key[0] == model and key[1].startswith(f"{data}-"):
            cap = study.finetune_params["max_seq_length"]  # a record counted over the cap is trained at the cap
            assert row["tokens"] == pytest.approx(row["examples"] * cap, rel=1e-6)
            assert row["tokens"] > before[key]["tokens"] and row["gpu_seconds"] > before[key]["gpu_seconds"]
        else:
            assert row == before[key]
    assert any(f"training records: counted for {len(langs)} of" in n for n in estimate_notes(study, tokens))


def test_a_bad_token_table_is_named(tmp_path):
    with pytest.raises(TokenCountsError, match="estimate.token_counts: cannot read .*count_tokens"):
        read_token_counts(tmp_path / "tokens.csv")
    write_counts(tmp_path / "t.csv", [{"model": "m", "task": "t", "lang": "en"}])
    with pytest.raises(TokenCountsError, match=r"no column \['sampled'"):
        read_token_counts(tmp_path / "t.csv")
    assert read_token_counts(None) == {}


@pytest.mark.slow
def test_rule_count_tokens_and_the_estimate_that_reads_it(small_run, tmp_path):
    """On a finished small run (its model built, its held-out data written): every (model, task, language) counted
    with the model's tokenizer, the estimate names the count, and nothing else is planned to rerun."""
    from conftest import copy_run, planned_jobs, run_snakemake

    workdir, config = small_run
    work = copy_run(workdir, tmp_path / "run")
    run_snakemake(work, "--cores", "1", "count_tokens", config=config)
    with open(work / "results" / "plan" / "tokens.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(int(r["sampled"]) > 0 and float(r["prompt_tokens"]) > 0 for r in rows), rows
    assert {r["task"] for r in rows} >= {"train:demo"}  # the training set, written by the small run
    assert {r["source"] for r in rows} == {"results/models/tiny@main"}
    counted = ["--config", 'estimate={"token_counts": "results/plan/tokens.csv"}']
    run_snakemake(work, "--cores", "1", "estimate", *counted, config=config)
    notes = (work / "results" / "plan" / "estimate.md").read_text(encoding="utf-8")
    evaluated = [r for r in rows if not r["task"].startswith("train:")]
    assert f"counted with the model's tokenizer for {len(evaluated)} of {len(evaluated)}" in notes
    assert f"training records: counted for {len(rows) - len(evaluated)} of {len(rows) - len(evaluated)}" in notes
    assert planned_jobs(work, *counted, config=config) == {}
