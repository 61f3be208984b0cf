"""The whole demo DAG, run for real on CPU: tiny model, data, 4 adapters, lm-eval scores, the CSV, the plots."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import load_default_config, planned_jobs

pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def grid(config):
    ranks, bits = config["finetune"]["ranks"], config["finetune"]["bits"]
    variants = ["base"] + [f"{d}-r{r}-q{b}" for d in config["datasets"] for r in ranks for b in bits]
    return [
        (m, v, t, lang)
        for m in config["models"]
        for v in variants
        for t, spec in config["evaluation"]["tasks"].items()
        for lang in spec["languages"]
    ]


# Not the demo's speed (about 4 minutes on 2 quiet cores: a figure for docs, measured by hand), only that it ends:
# on a shared machine, beside the other test worker's DAG runs, it has taken up to twice that, and this guard is
# another 3x above, so that only a run that hangs or loops fails it.
HANG_GUARD_SECONDS = 30 * 60


def test_demo_runs_to_the_end(demo_run):
    workdir, seconds, _ = demo_run
    print(f"demo wall time: {seconds:.0f} s")
    assert seconds < HANG_GUARD_SECONDS, f"the demo took {seconds:.0f} s"


def test_second_dry_run_has_nothing_to_do(demo_run):
    workdir, _, config = demo_run
    assert planned_jobs(workdir, config=config) == {}


def test_adapters_load_with_peft(demo_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    workdir, _, _ = demo_run
    adapters = sorted((workdir / "results" / "adapters").glob("*/*/r*-q*"))
    assert [a.name for a in adapters] == ["r16-q16", "r16-q4", "r4-q16", "r4-q4"]
    base = AutoModelForCausalLM.from_pretrained(workdir / "results" / "models" / "tiny")
    for adapter in adapters:
        model = PeftModel.from_pretrained(base, adapter)
        rank = int(adapter.name.split("-")[0][1:])
        assert model.peft_config["default"].r == rank
        lora_weights = [n for n, _ in model.named_parameters() if "lora_A" in n]
        assert lora_weights, f"{adapter} has no LoRA weights"
        base = model.unload()


def test_every_score_file_holds_its_metric(demo_run):
    workdir, _, _ = demo_run
    config = load_default_config()
    for model, variant, task, lang in grid(config):
        path = workdir / "results" / "scores" / model / variant / task / f"{lang}.json"
        score = json.loads(path.read_text())
        assert score["metric"] in ("acc", "exact_match")
        assert 0.0 <= score["value"] <= 1.0
        assert score["lm_eval"]["results"][f"{score['metric']},none"] == score["value"]
        assert score["n"] == config["datasets"]["demo"]["n_eval_per_language"]
        assert len(score["per_example"]) == score["n"]


def test_csv_has_one_row_per_grid_cell(demo_run):
    workdir, _, _ = demo_run
    table = pd.read_csv(workdir / "results" / "tables" / "scores.csv")
    expected = grid(load_default_config())
    assert len(table) == len(expected)
    assert set(zip(table["model"], table["variant"], table["task"], table["lang"])) == set(expected)
    adapters = table[table["variant"] != "base"]
    assert adapters["delta_vs_base"].notna().all()
    assert (adapters["delta_ci_low"] <= adapters["delta_ci_high"]).all()


def test_plots_are_png_files(demo_run):
    workdir, _, _ = demo_run
    plots = sorted((workdir / "results" / "plots").rglob("*.png"))
    assert {p.name for p in plots} >= {"score_vs_rank.png", "delta_heatmap.png"}
    for plot in plots:
        data = plot.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, plot


def test_finetuning_beats_the_base_in_most_languages(demo_run):
    """The best adapter beats the base on the in-distribution multiple-choice task in most demo languages."""
    workdir, _, _ = demo_run
    table = pd.read_csv(workdir / "results" / "tables" / "scores.csv")
    mc = table[table["task"] == "demo_mc"]
    base = mc[mc["variant"] == "base"].set_index("lang")["value"]
    adapters = mc[mc["variant"] != "base"]
    best_variant = adapters.groupby("variant")["value"].mean().idxmax()
    best = adapters[adapters["variant"] == best_variant].set_index("lang")["value"]
    wins = [lang for lang in base.index if best[lang] > base[lang]]
    print(f"best variant {best_variant}: wins in {wins}; base {base.to_dict()}, best {best.to_dict()}")
    assert len(wins) > len(base) / 2, f"best adapter {best_variant} beats the base only in {wins}"
