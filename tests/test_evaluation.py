"""Evaluation at study scale: what reruns when a language is added, the provenance of every score file, adapter
hashes, the optional samples side files, and the projection of bench/eval_overhead.py.

The tests on `small_run` read a real run of the reduced demo (tests/conftest.py) and change only copies of it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_run, run_snakemake, write_config
from maple.evaluate.job import PROVENANCE_FIELDS, evaluate_variant
from maple.runtime.provenance import adapter_hash, directory_hash
from maple.runtime.tasks import Task

JOB_HEADER = re.compile(r"^(?:local)?rule (\S+):$")


def planned_job_list(workdir: Path, config: Path, *args: str) -> list[dict]:
    """Every job of a dry run with its wildcards and reason: [{rule, wildcards: {..}, reason}]."""
    out = run_snakemake(workdir, "-n", *args, config=config)
    jobs = []
    for line in (out.stdout + out.stderr).splitlines():
        header = JOB_HEADER.match(line.strip())
        if header and not line.startswith(" "):
            jobs.append({"rule": header[1], "wildcards": {}, "reason": ""})
        elif jobs and line.startswith("    wildcards:"):
            jobs[-1]["wildcards"] = dict(kv.split("=", 1) for kv in line.split(":", 1)[1].strip().split(", "))
        elif jobs and line.startswith("    reason:"):
            jobs[-1]["reason"] = line.split(":", 1)[1].strip()
    return jobs


def job_keys(jobs: list[dict]) -> set[tuple]:
    return {(j["rule"], tuple(sorted(j["wildcards"].items()))) for j in jobs}


def variants(config: dict) -> list[str]:
    ranks, bits = config["finetune"]["ranks"], config["finetune"]["bits"]
    return ["base"] + [f"{d}-r{r}-q{b}" for d in config["datasets"] for r in ranks for b in bits]


# ---------------------------------------------------------------------------------------------------------------
# What reruns


def report_rules() -> set[str]:
    """The rules downstream of the scores (workflow/rules/report.smk: aggregate, plot, ...) and `all`."""
    text = (REPO / "workflow" / "rules" / "report.smk").read_text()
    return set(re.findall(r"^rule (\w+):", text, flags=re.M)) | {"all"}


@pytest.mark.slow
def test_adding_a_language_reruns_exactly_that_tasks_evaluations(small_run, tmp_path):
    """The design's promise (docs/evaluation.md, "What reruns"): adding a language to task T reruns T's
    evaluation of every variant (the base once, each adapter), then the report rules; no data, model, finetune or
    other task's evaluation."""
    workdir, config_path = small_run
    assert planned_job_list(workdir, config_path) == [], "the finished small run should have nothing to do"

    run = copy_run(workdir, tmp_path / "run")
    config = yaml.safe_load(config_path.read_text())
    assert "sw" not in config["evaluation"]["tasks"]["demo_gen"]["languages"]
    config["evaluation"]["tasks"]["demo_gen"]["languages"].append("sw")
    jobs = planned_job_list(run, write_config(run, config))

    evaluations = {("evaluate_demo_gen", (("model", "tiny"), ("variant", v))) for v in variants(config)}
    assert len(evaluations) == 3  # the base once, rank 4 x bits {4, 16}
    downstream = {j for j in job_keys(jobs) if j not in evaluations}
    assert job_keys(jobs) - downstream == evaluations
    assert {rule for rule, _ in downstream} <= report_rules(), downstream
    assert {("aggregate", ()), ("plot", (("model", "tiny"),)), ("all", ())} <= downstream
    assert len(jobs) == len(job_keys(jobs))  # each once
    for job in jobs:
        if job["rule"] == "evaluate_demo_gen":
            # The trigger: the new language's score file is missing (Snakemake looks no further then).
            variant = job["wildcards"]["variant"]
            assert job["reason"] == f"Missing output files: results/scores/tiny/{variant}/demo_gen/sw.json", job


@pytest.mark.slow
def test_log_samples_declares_a_side_file_per_score(small_run, tmp_path):
    """With evaluation.log_samples each evaluation job also writes results/samples/...jsonl. Switching it on for a
    finished run reruns nothing by itself (the samples files are not targets of `all`); asking for one plans its
    job, and only that."""
    workdir, config_path = small_run
    run = copy_run(workdir, tmp_path / "run")
    config = yaml.safe_load(config_path.read_text())
    config["evaluation"]["log_samples"] = True
    config_path = write_config(run, config)
    assert [j for j in planned_job_list(run, config_path) if j["rule"].startswith("evaluate_")] == []
    jobs = planned_job_list(run, config_path, "results/samples/tiny/demo-r4-q4/demo_mc/sw.jsonl")
    assert job_keys(jobs) == {("evaluate_demo_mc", (("model", "tiny"), ("variant", "demo-r4-q4")))}
    assert jobs[0]["reason"] == "Missing output files: results/samples/tiny/demo-r4-q4/demo_mc/sw.jsonl"


# ---------------------------------------------------------------------------------------------------------------
# Provenance


def git_has_commit(sha: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=REPO, capture_output=True).returncode == 0


@pytest.mark.slow
def test_every_score_file_has_right_provenance(small_run):
    workdir, config_path = small_run
    config = yaml.safe_load(config_path.read_text())
    results = workdir / "results"
    model_hash = directory_hash(results / "models" / "tiny")
    software = {p: version(p) for p in ("lm_eval", "transformers", "peft", "torch")}
    checked = 0
    for variant in variants(config):
        adapter = None
        if variant != "base":
            data, rank, bits = re.match(r"(.+)-r(\d+)-q(\d+)$", variant).groups()
            adapter = f"results/adapters/tiny/{data}/r{rank}-q{bits}"
        for task, spec in config["evaluation"]["tasks"].items():
            for lang in spec["languages"]:
                score = json.loads((results / "scores" / "tiny" / variant / task / f"{lang}.json").read_text())
                p = score["provenance"]
                assert set(PROVENANCE_FIELDS) <= set(p), set(PROVENANCE_FIELDS) - set(p)
                assert (p["model_alias"], p["model_source"], p["model_revision"]) == (
                    "tiny",
                    "results/models/tiny",
                    "main",
                )
                assert p["model_fingerprint"] == {"kind": "sha256", "value": model_hash}
                assert p["variant"] == variant and p["adapter_dir"] == adapter
                if adapter is None:
                    assert p["adapter_sha256"] is None and p["bits"] == 16 and p["adapter_merged"] is None
                else:
                    assert p["adapter_sha256"] == adapter_hash(workdir / adapter)
                    assert p["bits"] == int(bits)
                    # merged into the base at 16 bits; unmerged on the base quantised as trained (QLoRA)
                    assert p["adapter_merged"] is (bits == "16")
                assert (p["task"], p["lm_eval_task"], p["task_version"]) == (task, f"maple_{task}_{lang}", 1.0)
                assert (p["num_fewshot"], p["limit"]) == (0, None)
                n_eval = config["datasets"]["demo"]["n_eval_per_language"]
                assert p["n_examples"] == score["n"] == len(score["per_example"]) == n_eval
                assert p["seed"] == config["seed"]
                assert p["batch_size"] == config["evaluation"]["batch_size"]
                assert {k: p["software"][k] for k in software} == software
                sha = p["workflow_commit"].removesuffix("-dirty")
                assert re.fullmatch(r"[0-9a-f]{40}", sha) and git_has_commit(sha), p["workflow_commit"]
                assert 0 < p["model_load_seconds"] < p["wall_seconds"]
                assert p["wall_seconds"] == pytest.approx(p["model_load_seconds"] + p["eval_seconds"])
                assert p["languages_in_job"] == spec["languages"]
                assert p["samples_file"] is None
                checked += 1
    assert checked == len(variants(config)) * sum(len(s["languages"]) for s in config["evaluation"]["tasks"].values())


def perturb_adapter(adapter_dir: Path) -> None:
    """Change the adapter's weights in place (every lora_B matrix + 0.01)."""
    from safetensors.torch import load_file, save_file

    path = adapter_dir / "adapter_model.safetensors"
    tensors = load_file(path)
    changed = {k: (v + 0.01 if "lora_B" in k else v).contiguous() for k, v in tensors.items()}
    save_file(changed, path, metadata={"format": "pt"})


@pytest.mark.slow
def test_adapter_hash_in_the_score_changes_when_the_adapter_changes(small_run, tmp_path):
    """Evaluate a changed copy of an adapter by hand (evaluate_variant, as a user would): its score file reads
    back a new adapter hash, the model fingerprint stays that of the run's base, and `limit` and the samples side
    file are honoured."""
    import shutil

    workdir, _ = small_run
    results = workdir / "results"
    original = json.loads((results / "scores/tiny/demo-r4-q16/demo_gen/en.json").read_text())["provenance"]
    adapter = tmp_path / "adapter"
    shutil.copytree(results / "adapters/tiny/demo/r4-q16", adapter)
    assert adapter_hash(adapter) == original["adapter_sha256"]  # content, not path
    perturb_adapter(adapter)

    task = Task(
        alias="demo_gen",
        source="local",
        kind="generate",
        metric="exact_match",
        lm_eval_names={"en": "maple_demo_gen_en"},
        eval_files={"en": str(results / "data/demo/eval/eval_gen/en.jsonl")},
        limit=4,
    )
    score_file, samples_file = tmp_path / "en.json", tmp_path / "en.samples.jsonl"
    evaluate_variant(
        model_alias="tiny",
        variant="demo-r4-q16",
        base_source=str(results / "models/tiny"),
        adapter_dir=str(adapter),
        bits=16,
        task=task,
        score_files={"en": score_file},
        batch_size=8,
        seed=1234,
        samples_files={"en": samples_file},
    )

    score = json.loads(score_file.read_text())
    p = score["provenance"]
    assert p["adapter_sha256"] == adapter_hash(adapter) != original["adapter_sha256"]
    assert p["model_fingerprint"] == original["model_fingerprint"]
    assert p["limit"] == 4 and p["n_examples"] == 4 == score["n"] == len(score["per_example"])
    assert p["batch_size"] == 8 and p["batch_size_used"] == 8
    assert p["samples_file"] == str(samples_file)
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert [s["doc_id"] for s in samples] == [e["doc_id"] for e in score["per_example"]]
    assert [float(s["exact_match"]) for s in samples] == [e["value"] for e in score["per_example"]]


def test_adapter_hash_covers_weights_and_config_only(tmp_path):
    adapter = tmp_path / "a"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights-1")
    (adapter / "adapter_config.json").write_text('{"r": 4}')
    (adapter / "train_metrics.json").write_text('{"loss": 1.0}')
    first = adapter_hash(adapter)
    (adapter / "train_metrics.json").write_text('{"loss": 0.5}')
    (adapter / "README.md").write_text("notes")
    assert adapter_hash(adapter) == first
    (adapter / "adapter_model.safetensors").write_bytes(b"weights-2")
    second = adapter_hash(adapter)
    assert second != first
    (adapter / "adapter_config.json").write_text('{"r": 8, "target_modules": ["q_proj", "v_proj"]}')
    third = adapter_hash(adapter)
    assert third not in (first, second)
    # peft writes target_modules (a set) in any order: the same adapter keeps its hash
    (adapter / "adapter_config.json").write_text('{"target_modules": ["v_proj", "q_proj"], "r": 8}')
    assert adapter_hash(adapter) == third
    with pytest.raises(FileNotFoundError):
        adapter_hash(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# Merged 16-bit adapters


def test_a_16_bit_adapter_merged_gives_the_unmerged_logits(tmp_path):
    """load_variant(merge=True) folds the adapter into the base weights (no LoRA layer left) and computes what the
    unmerged adapter computes; at 4 bits merging is refused (NF4 weights cannot take it exactly)."""
    import torch
    from maple.evaluate.job import load_variant
    from peft import LoraConfig, PeftModel, get_peft_model
    from tiny_models import build_tiny_llama
    from transformers import AutoModelForCausalLM

    base = build_tiny_llama(tmp_path / "base")
    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora).save_pretrained(tmp_path / "adapter")
    adapter = str(tmp_path / "adapter")
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    merged, _ = load_variant(base, adapter, 16, "main", False, merge=True)
    unmerged, _ = load_variant(base, adapter, 16, "main", False, merge=False)
    plain, _ = load_variant(base, None, 16, "main", False)
    assert not isinstance(merged, PeftModel) and isinstance(unmerged, PeftModel)
    assert not any("lora" in name for name, _ in merged.named_modules())
    with torch.no_grad():
        m, u, b = (model(ids).logits for model in (merged, unmerged, plain))
    assert (u - b).abs().max() > 1e-3  # the adapter changes the model
    assert torch.allclose(m, u, atol=1e-5), (m - u).abs().max()
    with pytest.raises(ValueError, match="merges only into an unquantised base"):
        load_variant(base, adapter, 4, "main", False, merge=True)


def test_local_generate_task_takes_its_answer_length():
    from maple.evaluate.job import local_task_config

    config = local_task_config("maple_demo_gen_de", "generate", "de.jsonl", max_gen_toks=10)
    assert config["generation_kwargs"] == {"until": ["\n"], "max_gen_toks": 10, "do_sample": False}


# ---------------------------------------------------------------------------------------------------------------
# bench/eval_overhead.py's projection (bench/eval_projection.py)


def bench_module():
    import importlib.util

    sys.path.insert(0, str(REPO / "bench"))  # its neighbours (eval_measure, finetune_models)
    spec = importlib.util.spec_from_file_location("eval_projection", REPO / "bench" / "eval_projection.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_projection_counts_processes_and_loads_per_design():
    bench = bench_module()
    study = bench.load_study(REPO / "config" / "maple.yaml")
    cells = bench.study_cells(study)
    n_variants = 2 * (1 + 2 * 6 * 3)
    n_langs = sum(len(t.languages) for t in study.tasks.values())
    assert len(cells) == n_variants * n_langs
    # MLQA's per-language sizes and XLSum's limit reach the cells.
    mlqa_en = next(c for c in cells if c["task"] == "mlqa" and c["lang"] == "en")
    assert mlqa_en["examples"] == 11590
    assert {c["examples"] for c in cells if c["task"] == "xlsum"} == {500}
    load = {16: 10.0, 8: 20.0, 4: 20.0}
    per_example = {t: 0.0 for t in study.tasks}
    rows = {d: bench.project(cells, d, 1.0, load, per_example) for d in bench.DESIGNS}
    assert rows["per task"]["processes"] == n_variants * len(study.tasks) == 518
    assert rows["per score"]["processes"] == len(cells)
    assert rows["per variant"]["processes"] == n_variants
    # Per task: each model's base at 16 bits, its 12 q16 adapters at 16 and 24 quantised ones at 20 s, x 7 tasks.
    assert rows["per task"]["load_s"] == pytest.approx(2 * 7 * ((1 + 12) * 10 + 24 * 20))
    assert rows["per task"]["load_share"] == pytest.approx(
        rows["per task"]["load_s"] / (518 * 1.0 + rows["per task"]["load_s"])
    )


def test_projected_load_share_of_the_paper_config_under_the_assumptions():
    """The no-GPU projection (ASSUMED_7B): at most 10 % under the chosen design, well above under one process per
    score. The bench prints the same numbers with the startup it measures; here the startup is 10 s."""
    bench = bench_module()
    study = bench.load_study(REPO / "config" / "maple.yaml")
    cells = bench.study_cells(study)
    example_s = {name: bench.assumed_7b_example_s(task.shape) for name, task in bench.PAPER_TASKS.items()}
    chosen = bench.project(cells, "per task", 10.0, bench.ASSUMED_7B["load_s"], example_s)
    per_score = bench.project(cells, "per score", 10.0, bench.ASSUMED_7B["load_s"], example_s)
    assert chosen["load_share"] <= 0.10
    assert per_score["load_share"] > 2 * chosen["load_share"]
