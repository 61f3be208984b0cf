"""Incremental reruns: after a finished run, a config edit schedules exactly the stale jobs (docs/reruns-and-faults.md,
"What reruns"). Each case is a dry run (`snakemake -n`) of an edited copy of the small run's config in the finished
small run; the jobs it lists are compared, rule and wildcards, with the jobs the edit makes stale.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_snakemake, small_config

pytestmark = pytest.mark.slow

JOB_HEADER = re.compile(r"^(?:local)?rule (\S+):$")
# Rules downstream of the scores (aggregate, plot and the tables beside them): any rule of report.smk.
REPORT_RULES = set(re.findall(r"^rule (\w+):", (REPO / "workflow" / "rules" / "report.smk").read_text(), re.M)) | {
    "all"
}
UPSTREAM = ("build_tiny_model", "synth_data", "finetune", "evaluate_demo_mc", "evaluate_demo_gen")


def dry_run_jobs(workdir: Path, config: Path) -> list[dict]:
    """The jobs of `snakemake -n`: one dict per job with rule, wildcards and reason as Snakemake prints them."""
    out = run_snakemake(workdir, "-n", config=config)
    jobs, job = [], None
    for line in (out.stdout + out.stderr).splitlines():
        header = JOB_HEADER.match(line)
        if header:
            job = {"rule": header[1], "wildcards": "", "reason": ""}
            jobs.append(job)
        elif job is not None and line.startswith("    ") and ": " in line:
            key, _, value = line.strip().partition(": ")
            job.setdefault(key, value)
            if key in ("wildcards", "reason") and not job[key]:
                job[key] = value
        elif job is not None and not line.startswith("    "):
            job = None
    return jobs


def upstream(jobs: list[dict]) -> set[tuple[str, str]]:
    return {(j["rule"], j["wildcards"]) for j in jobs if j["rule"] not in REPORT_RULES}


def finetune(rank, bits):
    return ("finetune", f"model=tiny, data=demo, rank={rank}, bits={bits}")


def evaluate(task, variant):
    return (f"evaluate_{task}", f"model=tiny, variant={variant}")


ADAPTERS = ["demo-r4-q4", "demo-r4-q16"]
TASKS = ["demo_mc", "demo_gen"]


@pytest.fixture(scope="module")
def edit(small_run, tmp_path_factory):
    """edit(change) -> the dry-run jobs of the small run's config changed by change(config) in place."""
    workdir, config_path = small_run
    base = yaml.safe_load(Path(config_path).read_text())
    directory = tmp_path_factory.mktemp("rerun-configs")

    def run(change, name):
        config = copy.deepcopy(base)
        change(config)
        path = directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return dry_run_jobs(workdir, path)

    return run


def assert_report_follows(jobs):
    """aggregate and the plot of the model rerun; nothing else but report rules besides the upstream jobs."""
    rules = {j["rule"] for j in jobs}
    assert {"aggregate", "plot"} <= rules, rules
    assert [j["wildcards"] for j in jobs if j["rule"] == "plot"] == ["model=tiny"]


def test_finished_run_has_nothing_to_do(edit):
    assert edit(lambda c: None, "unchanged") == []


def test_adding_a_rank_runs_that_rank_only(edit):
    jobs = edit(lambda c: c["finetune"].update(ranks=[4, 8]), "rank8")
    assert upstream(jobs) == {finetune(8, 4), finetune(8, 16)} | {
        evaluate(t, v) for t in TASKS for v in ("demo-r8-q4", "demo-r8-q16")
    }
    assert_report_follows(jobs)


def test_changing_num_fewshot_reruns_that_task_only(edit):
    jobs = edit(lambda c: c["evaluation"]["tasks"]["demo_gen"].update(num_fewshot=2), "fewshot")
    assert upstream(jobs) == {evaluate("demo_gen", v) for v in ["base"] + ADAPTERS}
    assert all("Params have changed" in j["reason"] for j in jobs if j["rule"] == "evaluate_demo_gen")
    assert_report_follows(jobs)


def test_changing_a_training_hyperparameter_reruns_the_finetunes_not_the_data(edit):
    jobs = edit(lambda c: c["finetune"].update(learning_rate=0.001), "lr")
    # The model's finetunes and the evaluations of their adapters; not the data, the tiny model or the base scores.
    assert upstream(jobs) == {finetune(4, 4), finetune(4, 16)} | {evaluate(t, v) for t in TASKS for v in ADAPTERS}
    assert all("Params have changed" in j["reason"] for j in jobs if j["rule"] == "finetune")
    assert_report_follows(jobs)


def test_changing_a_models_target_modules_reruns_its_finetunes(edit):
    jobs = edit(lambda c: c["models"]["tiny"].update(target_modules=["q_proj", "v_proj"]), "target_modules")
    assert upstream(jobs) == {finetune(4, 4), finetune(4, 16)} | {evaluate(t, v) for t in TASKS for v in ADAPTERS}


def test_changing_the_data_seed_reruns_everything_after_the_data(edit):
    jobs = edit(lambda c: c["datasets"]["demo"].update(seed=7), "data_seed")
    # The data, every finetune on it, every evaluation (the base too: local tasks read the data's held-out sets);
    # not the tiny model, whose pretraining corpus follows the global seed.
    assert upstream(jobs) == {("synth_data", "data=demo"), finetune(4, 4), finetune(4, 16)} | {
        evaluate(t, v) for t in TASKS for v in ["base"] + ADAPTERS
    }
    assert_report_follows(jobs)


def test_writing_out_the_default_data_seed_reruns_nothing(edit):
    assert edit(lambda c: c["datasets"]["demo"].update(seed=c["seed"]), "data_seed_same") == []


def test_changing_the_global_seed_reruns_everything(edit):
    jobs = edit(lambda c: c.update(seed=7), "seed")
    assert upstream(jobs) == {
        ("build_tiny_model", "model=tiny"),
        ("synth_data", "data=demo"),
        finetune(4, 4),
        finetune(4, 16),
    } | {evaluate(t, v) for t in TASKS for v in ["base"] + ADAPTERS}


def test_the_data_seed_defaults_to_the_global_seed_and_stays_out_of_the_spec():
    from maple.config.validation import checked_study

    config = small_config()
    assert checked_study(config)[1].data_seed("demo") == config["seed"]
    config["datasets"]["demo"]["seed"] = 7
    study = checked_study(config)[1]
    assert study.data_seed("demo") == 7 and study.seed == config["seed"]
    assert "seed" not in study.datasets["demo"]  # the synth_data spec param: the seed travels on its own
