"""A score file: one language's (or one range of its examples') score from lm-eval's results, with provenance;
and the merge of a split language's ranges into the score file an unsplit job would have written.

A score file holds the headline metric (value, stderr, n), the per-example values of that metric (what the paired
bootstrap of the aggregate needs), lm-eval's own results for the task and `provenance` (PROVENANCE_FIELDS)."""

from __future__ import annotations

# What every score file's `provenance` holds (tests read these back).
PROVENANCE_FIELDS = (
    "model_alias",
    "model_source",
    "model_revision",
    "model_fingerprint",  # fingerprint: {kind: sha256|hub_commit, value}
    "variant",
    "adapter_dir",
    "adapter_sha256",
    "adapter_merged",  # True: merged into the base weights (merge_and_unload); False: applied unmerged; None: base
    "bits",  # adapter_*: None for the base
    "task",
    "lm_eval_task",
    "task_version",
    "dataset_revisions",  # hub dataset -> the commit its lm-eval tasks read (pinned by preflight), {} if none
    "num_fewshot",
    "limit",
    "n_examples",
    "seed",
    "batch_size",
    "batch_size_used",
    "device",
    "cuda_visible_devices",  # the GPU(s) the job had (maple.runtime.devices claims them), None where unset
    "dtype",
    "software",
    "workflow_commit",  # software: lm_eval, transformers, peft, torch, ... versions
    "wall_seconds",
    "model_load_seconds",
    "eval_seconds",
    "languages_in_job",  # the job's parts: a language, or lang.start-stop for a range of its examples
    "examples_range",  # [start, stop) of the examples this file scores; None: all of them
    "max_length",  # HFLM max_length (None: the model's context)
    "gen_kwargs",  # generation settings given over the task's own (max_gen_toks of an lm-eval task), or None
    "samples_file",
)


def per_example_values(samples: list[dict], metric: str) -> list[dict]:
    """(doc_id, value) of the headline metric per example: what a paired bootstrap needs."""
    return [{"doc_id": s["doc_id"], "value": float(s[metric])} for s in samples if metric in s]


def score_of(results: dict, task, lang: str, job_provenance: dict, samples_file: str | None, examples=None):
    """(score record, lm-eval's samples) of one language from lm-eval's results; the samples are taken out of them."""
    name = task.lm_eval_names[lang]
    task_results = results["results"][name]
    metric_key = f"{task.metric},none"
    samples = results["samples"].pop(name, [])
    n = results.get("n-samples", {}).get(name, {}).get("effective")
    version = results.get("versions", {}).get(name)
    provenance = {
        **job_provenance,
        "task": task.alias,
        "lm_eval_task": name,
        "task_version": version,
        "num_fewshot": task.num_fewshot,
        "limit": task.limit,
        "n_examples": n,
        "examples_range": [examples[0], examples[0] + n] if examples is not None else None,
        "max_length": task.max_length,
        "gen_kwargs": task.gen_kwargs(),
        "samples_file": samples_file,
    }
    score = {
        "model": job_provenance["model_alias"],
        "variant": job_provenance["variant"],
        "task": task.alias,
        "lang": lang,
        "lm_eval_task": name,
        "metric": task.metric,
        "value": task_results.get(metric_key),
        "stderr": task_results.get(f"{task.metric}_stderr,none"),
        "n": n,
        "task_version": version,
        "num_fewshot": task.num_fewshot,
        "per_example": per_example_values(samples, task.metric),
        "provenance": {k: provenance[k] for k in PROVENANCE_FIELDS},
        "lm_eval": {
            "results": task_results,
            "config": results.get("configs", {}).get(name),
            "version": version,
            "n-samples": results.get("n-samples", {}).get(name),
            "higher_is_better": results.get("higher_is_better", {}).get(name),
            "run_config": results.get("config"),
            "git_hash": results.get("git_hash"),
            "date": results.get("date"),
        },
    }
    if score["value"] is None:
        raise RuntimeError(f"lm-eval returned no {metric_key!r} for task {name}: got {sorted(task_results)}")
    return score, samples


class MergeError(ValueError):
    """The ranges of a language do not join up (a gap, an overlap) or are not of one task, model and variant."""


def merge_ranges(parts: list[dict]) -> dict:
    """The score file of a language split into ranges of its examples, from the ranges' score files: the
    per-example values joined in example order; value and stderr recomputed from them with lm-eval's own mean and
    mean_stderr (every headline metric of the study aggregates by mean), so that they are what one job over all the
    examples would have computed from the same per-example values. lm-eval's other metrics of the task are the
    ranges' means weighted by their n (their stderr: None; the ranges' own results are kept under lm_eval.ranges)."""
    from lm_eval.api.metrics import mean, mean_stderr

    parts = sorted(parts, key=lambda p: p["provenance"]["examples_range"][0])
    keys = {(p["model"], p["variant"], p["task"], p["lang"], p["metric"]) for p in parts}
    if len(keys) != 1:
        raise MergeError(f"ranges of different scores: {sorted(keys)}")
    at = 0
    for p in parts:
        start, stop = p["provenance"]["examples_range"]
        if start != at:
            raise MergeError(f"{p['lang']}: the ranges do not join up at example {at} (next starts at {start})")
        at = stop
    per_example = sorted((e for p in parts for e in p["per_example"]), key=lambda e: e["doc_id"])
    values = [e["value"] for e in per_example]
    first = parts[0]
    n = sum(p["n"] for p in parts)
    merged_results = {}
    for key in first["lm_eval"]["results"]:
        numbers = [p["lm_eval"]["results"].get(key) for p in parts]
        if "_stderr," in key:
            merged_results[key] = None
        elif all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in numbers):
            merged_results[key] = sum(x * p["n"] for x, p in zip(numbers, parts)) / n
        else:
            merged_results[key] = numbers[0]
    metric_key = f"{first['metric']},none"
    value, stderr = mean(values), mean_stderr(values) if len(values) > 1 else None
    merged_results[metric_key] = value
    merged_results[f"{first['metric']}_stderr,none"] = stderr
    provenance = {
        **first["provenance"],
        "n_examples": n,
        "examples_range": None,
        "samples_file": None,  # the merge job names the joined samples file
        "languages_in_job": [label for p in parts for label in p["provenance"]["languages_in_job"]],
        "wall_seconds": sum(p["provenance"]["wall_seconds"] for p in parts),
        "model_load_seconds": sum(p["provenance"]["model_load_seconds"] for p in parts),
        "eval_seconds": sum(p["provenance"]["eval_seconds"] for p in parts),
        "merged_from": [p["provenance"]["examples_range"] for p in parts],
    }
    return {
        **first,
        "value": value,
        "stderr": stderr,
        "n": n,
        "per_example": per_example,
        "provenance": provenance,
        "lm_eval": {
            **first["lm_eval"],
            "results": merged_results,
            "n-samples": {"original": n, "effective": n},
            "ranges": [p["lm_eval"]["results"] for p in parts],
        },
    }
