"""engine vllm, one job per model x evaluation bit-width x shard (maple.config.lora_groups, maple.evaluate.lora_group),
on CPU: the groups, the 8-bit refusal at validation, the group's estimate and the shards sized on it, the DAG (each
group job's outputs the per-variant score files, its runtime the group's estimate), and the job's loop over the
adapters with lm-eval's vLLM model replaced at its import (tests/fake_vllm.py) and everything else real."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from types import SimpleNamespace

import pytest
import yaml
from conftest import DECODE_ONLY_SUMMARY, REPO, planned_jobs, small_config, write_config
from maple.config.lora_groups import LoraGroup, lora_groups
from maple.config.study import ConfigError
from maple.config.validation import checked_study
from maple.cost.estimate import evaluation_fixed_seconds, plan_shards, runtime_minutes, study_estimate
from maple.cost.model_shape import model_shape
from maple.cost.throughput import read_gpu_summary
from test_shards import planned_workflow


def vllm_config(config: dict, task: str, bits=(4, 16), ranks=None) -> dict:
    config = copy.deepcopy(config)
    config["finetune"]["bits"] = list(bits)
    if ranks:
        config["finetune"]["ranks"] = list(ranks)
    config["evaluation"]["tasks"][task]["engine"] = "vllm"
    return config


def study_of(config: dict):
    return checked_study(config, [], str(REPO))[1]


def test_variants_are_grouped_by_the_bit_width_they_are_evaluated_at():
    config = vllm_config(small_config(), "demo_gen", ranks=[4, 8])
    assert lora_groups(study_of(config)) == [
        LoraGroup(16, ("base", "demo-r4-q16", "demo-r8-q16")),
        LoraGroup(4, ("demo-r4-q4", "demo-r8-q4")),
    ]
    config["evaluation"]["quantize_base_like_training"] = False  # every adapter on the bf16 base: one group
    (group,) = lora_groups(study_of(config))
    assert group.name == "vllm-q16" and len(group.variants) == 5


def test_8_bit_adapters_with_a_vllm_task_stop_at_validation_naming_the_key():
    config = vllm_config(small_config(), "demo_gen", bits=(4, 8, 16))
    with pytest.raises(ConfigError, match=r"evaluation\.tasks\.demo_gen\.engine: vllm cannot evaluate the 8-bit"):
        study_of(config)
    config["evaluation"]["quantize_base_like_training"] = False
    study_of(config)  # the 8-bit adapters then run on the bf16 base, which vLLM loads


@pytest.fixture(scope="module")
def maple_vllm():
    """config/maple.yaml at bits 4 and 16, xquad with engine vllm; the same study with xquad on hf."""
    config = yaml.safe_load((REPO / "config" / "maple.yaml").read_text())
    config = vllm_config(config, "xquad")
    hf = copy.deepcopy(config)
    hf["evaluation"]["tasks"]["xquad"]["engine"] = "hf"
    return study_of(config), study_of(hf), read_gpu_summary(None)


def test_a_group_jobs_estimate_is_its_variants_less_the_extra_model_loads(maple_vllm):
    study, hf, table = maple_vllm
    shards = plan_shards(study, table)
    rows = [r for r in study_estimate(study, shards, table) if r["task"] == "xquad"]
    per_variant = [r for r in study_estimate(hf, shards, table) if r["task"] == "xquad"]  # the same shards
    groups = lora_groups(study)
    assert len(rows) == len(study.models) * len(groups) * len(shards["xquad"])
    for row in rows:
        load = evaluation_fixed_seconds(table, model_shape(study.models[row["model"]], study.tiny_model))
        (group,) = [g for g in groups if g.name == row["variant"]]
        members = [
            r
            for r in per_variant
            if (r["model"], r["job"]) == (row["model"], row["job"]) and r["variant"] in group.variants
        ]
        assert len(members) == len(group.variants) == (13 if group.bits == 16 else 12)
        expected = sum(r["gpu_seconds"] for r in members) - (len(members) - 1) * load
        assert row["gpu_seconds"] == pytest.approx(expected, abs=0.1 * len(members))
        assert row["examples"] == sum(r["examples"] for r in members)
        assert row["runtime_min"] == runtime_minutes(row["gpu_seconds"], study.evaluation_params["runtime_margin"])
    other = [r for r in study_estimate(study, shards, table) if r["task"] == "belebele"]
    assert {r["variant"] for r in other} == {v for m in study.models for v in study.variants(m)}  # hf: per variant


def test_a_vllm_tasks_shards_are_sized_on_its_largest_group(maple_vllm):
    study, hf, table = maple_vllm
    for s in (study, hf):  # a limit one variant's xquad job fits and a group's does not
        s.evaluation_params["max_job_hours"] = 2
    try:
        limit = study.evaluation_params["max_job_hours"] * 3600
        shards = plan_shards(study, table)
        assert len(shards["xquad"]) > len(plan_shards(hf, table)["xquad"]) == 1
        rows = [r for r in study_estimate(study, shards, table) if r["stage"] == "evaluate"]
    finally:
        for s in (study, hf):
            s.evaluation_params["max_job_hours"] = 5
    assert max(r["gpu_seconds"] for r in rows if r["task"] == "xquad") <= limit
    assert {lang for s in shards["xquad"] for lang in s.languages} == set(study.tasks["xquad"].languages)


# One second per generated example, loglikelihood free, no load time (conftest.DECODE_ONLY_SUMMARY): with
# max_job_hours at 24 s, one variant's language (16 examples) fits a job, the 16-bit group's three do not.
def grouped_config(tmp_path):
    config = vllm_config(small_config(), "demo_gen", ranks=[4, 8])
    (tmp_path / "summary.json").write_text(json.dumps(DECODE_ONLY_SUMMARY))
    config["estimate"] = {"gpu_summary": str(tmp_path / "summary.json")}
    config["evaluation"].update(max_job_hours=24 / 3600, min_shard_examples=4)
    return write_config(tmp_path, config)


def test_the_dag_has_one_job_per_model_bits_and_shard_writing_the_per_variant_files(tmp_path):
    config_path = grouped_config(tmp_path)
    variants = ["base", "demo-r4-q16", "demo-r8-q16", "demo-r4-q4", "demo-r8-q4"]
    with planned_workflow(config_path, tmp_path) as workflow:
        g = workflow.globals
        shards = g["SHARDS"]["demo_gen"]
        assert [p.label for s in shards for p in s.parts] == ["en.0-8", "en.8-16", "de.0-8", "de.8-16"]
        estimate = {(r["model"], r["variant"], r["job"]): r for r in g["ESTIMATE"]}
        outputs = set()
        for shard in shards:
            for group in g["LORA_GROUPS"]:
                rule = workflow.get_rule(f"evaluate_demo_gen_s{shard.index}_q{group.bits}")
                files = [re.sub(r"\{model[^}]*\}", "tiny", str(f)) for f in rule.output]
                (part,) = shard.parts
                assert files == [
                    f"results/scores/tiny/{v}/demo_gen/ranges/{part.lang}.{part.start}-{part.stop}.json"
                    for v in group.variants
                ]
                outputs.update(files)
                row = estimate[("tiny", group.name, shard.name)]
                assert row["gpu_seconds"] <= 24
                runtime = rule.resources["runtime"]
                assert runtime.evaluate(SimpleNamespace(model="tiny"), attempt=1).value == row["runtime_min"]
                # a retry (evaluation.retries) asks for the first attempt's runtime times the attempt
                assert runtime.evaluate(SimpleNamespace(model="tiny"), attempt=3).value == 3 * row["runtime_min"]
                assert rule.params.variants == list(group.variants) and rule.params.bits == group.bits
        assert len(outputs) == len(variants) * 4  # each variant's ranges, once
        # no load time and the same speed at both bit-widths: a job costs its variants' examples
        q16, q4 = (estimate[("tiny", name, "demo_gen.s1")]["gpu_seconds"] for name in ("vllm-q16", "vllm-q4"))
        assert q16 == pytest.approx(q4 * 3 / 2, abs=0.1)
    jobs = planned_jobs(tmp_path, config=config_path)
    grouped = {name: n for name, n in jobs.items() if name.startswith("evaluate_demo_gen")}
    assert grouped == {f"evaluate_demo_gen_s{i}_q{b}": 1 for i in range(1, 5) for b in (4, 16)}
    assert jobs["merge_demo_gen"] == len(variants) * 2 and jobs["evaluate_demo_mc"] == len(variants)


def test_the_cost_table_shares_a_group_jobs_seconds_among_its_variants(tmp_path):
    import pandas as pd
    from maple.report.summary import cost_table

    bench = tmp_path / "group.tsv"
    bench.write_text("s\th:m:s\n30.0\t0:00:30\n")
    jobs = [
        {"model": "m", "variant": v, "stage": "evaluate", "benchmark": str(bench), "gpu": 1, "share": 1 / 3}
        for v in ("base", "d-r4-q16", "d-r8-q16")
    ]
    table = pd.DataFrame(columns=["model", "variant", "task", "lang", "delta_vs_base"])
    cost = cost_table(table, jobs)
    assert list(cost["evaluate_s"]) == [pytest.approx(10.0)] * 3


def local_task(tmp_path, languages=("en",)):
    """A local generate task over three held-out records per language."""
    from maple.runtime.records import write_jsonl
    from maple.runtime.tasks import Task

    files = {}
    for lang in languages:
        records = [
            {"id": f"{lang}{i}", "instruction": f"Say {w}", "input": "", "output": w, "lang": lang, "source": "t"}
            for i, w in enumerate(["one", "two", "three"])
        ]
        files[lang] = str(tmp_path / "eval" / f"{lang}.jsonl")
        write_jsonl(records, files[lang])
    names = {lang: f"maple_gen_{lang}" for lang in languages}
    return Task(
        "gen", "local", "generate", "exact_match", names, tuple(languages), eval_files=files, engine="vllm", lora_rank=8
    )


def group_member(tmp_path, out, variant, languages=("en",)):
    adapter = None
    if variant != "base":
        adapter = tmp_path / "adapters" / variant
        adapter.mkdir(parents=True)
        (adapter / "adapter_config.json").write_text(json.dumps({"r": 4, "variant": variant}))
    files = {lang: str(tmp_path / out / variant / f"{lang}.json") for lang in languages}
    samples = {lang: str(tmp_path / out / variant / f"{lang}.samples.jsonl") for lang in languages}
    return {"variant": variant, "adapter_dir": adapter and str(adapter), "score_files": files, "samples_files": samples}


def without_times(score_file: str) -> dict:
    """A score file without what differs between any two runs: the times and date, where its files are, the
    temporary directory of the job's task files."""
    score = json.loads(re.sub(r"maple-tasks-[^/]+/", "", open(score_file, encoding="utf-8").read()))
    score["lm_eval"].pop("date")
    for key in ("wall_seconds", "model_load_seconds", "eval_seconds", "samples_file"):
        score["provenance"].pop(key)
    return score


def test_one_engine_scores_each_adapter_as_its_own_lora_request_into_the_per_variant_files(tmp_path, monkeypatch):
    import fake_vllm
    from maple.evaluate.job import evaluate_variant
    from maple.evaluate.lora_group import evaluate_group

    engine = fake_vllm.install(monkeypatch)
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    task = local_task(tmp_path)
    members = [group_member(tmp_path, "group", v) for v in ("base", "d-r4-q16", "d-r8-q16")]
    common = dict(model_alias="m", base_source=str(base), bits=16, task=task, batch_size=4, seed=7)
    values = evaluate_group(members=members, **common)
    assert list(values) == ["base", "d-r4-q16", "d-r8-q16"]
    (built,) = engine.built  # one engine, LoRA on, no adapter of its own
    assert built["enable_lora"] is True and "lora_local_path" not in built and built["max_lora_rank"] == 8
    requests = list(dict.fromkeys(engine.calls))  # each member's request, in order: base none, adapters their own
    assert requests == [
        None,
        ("d-r4-q16", 2, members[1]["adapter_dir"]),
        ("d-r8-q16", 3, members[2]["adapter_dir"]),
    ]
    assert engine.calls.count(requests[1]) == 1  # one simple_evaluate (generate_until) under each request

    for member in members:
        samples = open(member["samples_files"]["en"], encoding="utf-8").read()
        answers = {json.loads(line)["filtered_resps"][0].split()[0] for line in samples.splitlines()}
        assert answers == {member["variant"] if member["adapter_dir"] else "base"}  # its own adapter's answers
    for member in members[1:]:  # an adapter in a job of its own (the per-variant path): the same files
        alone = {"en": str(tmp_path / "alone" / member["variant"] / "en.json")}
        alone_samples = {"en": str(tmp_path / "alone" / member["variant"] / "en.samples.jsonl")}
        evaluate_variant(
            variant=member["variant"],
            adapter_dir=member["adapter_dir"],
            score_files=alone,
            samples_files=alone_samples,
            **common,
        )
        assert without_times(member["score_files"]["en"]) == without_times(alone["en"])
        assert open(member["samples_files"]["en"]).read() == open(alone_samples["en"]).read()


def test_a_group_job_reads_its_members_from_the_rules_outputs():
    from maple.evaluate.lora_group import group_members

    outputs = {
        "scores": ["b/en", "b/de", "a/en", "a/de"],
        "samples": [],
        "range_scores": ["b/sw.0-8", "a/sw.0-8"],
    }
    ranges = [{"lang": "sw", "start": 0, "stop": 8}]
    base, adapter = group_members(["base", "a"], {"a": "adapters/a"}, ["en", "de"], ranges, outputs)
    assert base["adapter_dir"] is None and base["score_files"] == {"en": "b/en", "de": "b/de"}
    assert adapter["adapter_dir"] == "adapters/a" and adapter["samples_files"] is None
    assert adapter["ranges"] == [{"lang": "sw", "start": 0, "stop": 8, "score": "a/sw.0-8", "samples": None}]
    with pytest.raises(ValueError, match="3 scores files for 2 variants"):
        group_members(["base", "a"], {}, ["en"], [], {"scores": ["x", "y", "z"]})


class Named(dict):
    """What a Snakemake job's params, input and output look like to a script: keys as attributes, get()."""

    __getattr__ = dict.__getitem__


def test_the_group_rules_script_passes_each_variant_its_adapter_and_files(monkeypatch):
    import evaluate_group

    seen = {}
    monkeypatch.setattr(evaluate_group, "evaluate_group", lambda **kw: seen.update(kw))
    params = dict(variants=["base", "d-r4-q16"], adapter_variants=["d-r4-q16"], languages=["en"], bits=16)
    params.update(base_source="b", prompt_format="plain", revision="main", trust_remote_code=False, batch_size=8)
    params.update(
        seed=1, task={"alias": "t", "source": "local", "kind": "generate", "metric": "m", "lm_eval_names": {}}
    )
    smk = Named(
        params=Named(params),
        input=Named(adapters=["results/adapters/tiny/d/r4-q16"]),
        output=Named(scores=["s/base/en.json", "s/d-r4-q16/en.json"], samples=[]),
        wildcards=Named(model="tiny"),
    )
    evaluate_group.run_from_snakemake(smk)
    base, adapter = seen["members"]
    assert (base["adapter_dir"], base["score_files"]) == (None, {"en": "s/base/en.json"})
    assert adapter["adapter_dir"] == "results/adapters/tiny/d/r4-q16"
    assert adapter["score_files"] == {"en": "s/d-r4-q16/en.json"} and seen["bits"] == 16


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_without_vllm_a_group_job_stops_with_the_set_up_hint_before_writing(tmp_path):
    from maple.evaluate.lora_group import evaluate_group
    from maple.evaluate.vllm_engine import SETUP_HINT, VLLMUnavailable

    member = group_member(tmp_path, "group", "base")
    with pytest.raises(VLLMUnavailable, match="envs/setup_vllm.sh") as error:
        evaluate_group(model_alias="m", base_source="org/m", bits=16, task=local_task(tmp_path), members=[member])
    assert SETUP_HINT in str(error.value) and not (tmp_path / "group").exists()
