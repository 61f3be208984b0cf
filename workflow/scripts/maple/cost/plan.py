"""The study's plan as every planning makes it (common.smk, check_config.py): the throughput table and the counted
tokens the config names (estimate.gpu_summary, estimate.token_counts), the evaluation shards, the parts of the
datasets a model writes and every GPU job's estimate (maple.cost.estimate)."""

from __future__ import annotations

from dataclasses import dataclass

from maple.cost.data_jobs import plan_synth_parts
from maple.cost.estimate import plan_shards, study_estimate
from maple.cost.requests import read_token_counts
from maple.cost.throughput import read_gpu_summary


@dataclass(frozen=True)
class StudyPlan:
    throughput: dict  # maple.cost.throughput.read_gpu_summary
    tokens: dict  # maple.cost.requests.read_token_counts ({}: stated averages)
    shards: dict  # task alias -> its shards
    synth_parts: dict  # dataset -> its parts ([]: one synth_data job)
    estimate: list[dict]  # one row per GPU job (results/plan/estimate.csv)


def study_plan(study, estimate_config: dict) -> StudyPlan:
    """The plan of a checked study; estimate_config: the config's `estimate` section. Raises ThroughputError or
    TokenCountsError for a file it names that cannot be read."""
    table = read_gpu_summary(estimate_config["gpu_summary"])
    tokens = read_token_counts(estimate_config["token_counts"])
    shards = plan_shards(study, table, tokens)
    parts = plan_synth_parts(study, table)
    return StudyPlan(table, tokens, shards, parts, study_estimate(study, shards, table, tokens, parts))
