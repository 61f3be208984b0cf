"""Evaluate one model variant (the base, or the base plus a LoRA adapter) on one task over many languages with
lm-evaluation-harness, loading the model once, and write one score file per language.

Design (one job per model x variant x task): the model load is paid once per task, not once per score, and adding
a language to a task reruns that task's jobs only (docs/evaluation.md, "Why one job per task"; bench/eval_overhead.py
projects the model-load share). Local tasks are lm-eval task YAMLs (`dataset_path: json`) written from the held-out
sets at run time, with the prompt rendered in the model's own prompt format.

A score file holds the headline metric (value, stderr, n), the per-example values of that metric (what the paired
bootstrap of the aggregate needs), lm-eval's own results for the task and `provenance` (PROVENANCE_FIELDS). lm-eval's
full samples (prompts, responses, filtered responses) go to a side JSONL file when samples_files is given
(`evaluation.log_samples`).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import yaml

from maple.hub.task_files import SHIPPED_TASKS_DIR
from maple.runtime.atomic import write_json
from maple.runtime.prompts import format_prompt
from maple.runtime.provenance import adapter_hash, model_fingerprint, software_versions, workflow_commit
from maple.runtime.records import read_jsonl, write_jsonl
from maple.runtime.tasks import Task
from maple.train.models import compute_dtype, device_kind, load_base

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
    "languages_in_job",
    "samples_file",
)


# PeftModel.from_pretrained: without fp32 upcast of a bf16 adapter, the LoRA matmuls of an unmerged 4/8-bit
# evaluation run in bf16 like the base's, not in fp32.
ADAPTER_LOAD_ARGUMENTS = {"autocast_adapter_dtype": False}


def local_task_config(name: str, kind: str, data_file: str, max_gen_toks: int = 24) -> dict:
    """An lm-eval task config over a jsonl whose records carry a rendered `prompt`."""
    config = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file)}},
        "test_split": "test",
        "doc_to_text": "{{prompt}}",
        "target_delimiter": "",
        "metadata": {"version": 1.0},
    }
    if kind == "multiple_choice":
        config.update(
            output_type="multiple_choice",
            doc_to_choice="{{choices}}",
            doc_to_target="{{label}}",
            metric_list=[{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        )
    elif kind == "generate":
        config.update(
            output_type="generate_until",
            doc_to_target="{{output}}",
            generation_kwargs={"until": ["\n"], "max_gen_toks": max_gen_toks, "do_sample": False},
            metric_list=[
                {
                    "metric": "exact_match",
                    "aggregation": "mean",
                    "higher_is_better": True,
                    "ignore_case": True,
                    "ignore_punctuation": True,
                }
            ],
        )
    else:
        raise ValueError(f"task kind: expected multiple_choice or generate, got {kind!r}")
    return config


def write_local_tasks(task: Task, prompt_format: str, tokenizer, out_dir: Path) -> None:
    """Render the prompts with the model's format and write one task YAML per language into out_dir."""
    for lang, source_file in task.eval_files.items():
        records = read_jsonl(source_file)
        for r in records:
            r["prompt"] = format_prompt(r["instruction"], r["input"], prompt_format, tokenizer)
        data_file = out_dir / f"{task.alias}_{lang}.jsonl"
        write_jsonl(records, data_file)
        name = task.lm_eval_names[lang]
        with open(out_dir / f"{name}.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(local_task_config(name, task.kind, str(data_file), task.max_gen_toks), f, allow_unicode=True)


def load_variant(
    base_source: str,
    adapter_dir: str | None,
    bits: int,
    revision: str,
    trust_remote_code: bool,
    merge: bool = False,
):
    """The base (quantised as the adapter was trained, if so) with the adapter applied, ready for inference.

    merge: fold the adapter into the base weights (peft merge_and_unload), so that inference runs one matmul per
    adapted layer instead of three; only on an unquantised base (merging into NF4 / int8 weights is not exact)."""
    model, tokenizer = load_base(base_source, bits, revision, trust_remote_code)
    if adapter_dir:
        from peft import PeftModel

        # the adapter in the dtype it was saved in (the compute dtype), not peft's default fp32 upcast
        model = PeftModel.from_pretrained(model, adapter_dir, **ADAPTER_LOAD_ARGUMENTS)
        if merge:
            if bits != 16:
                raise ValueError(f"merge: a LoRA adapter merges only into an unquantised base, not at {bits} bits")
            model = model.merge_and_unload()
    model.eval()
    return model, tokenizer


def per_example_values(samples: list[dict], metric: str) -> list[dict]:
    """(doc_id, value) of the headline metric per example: what a paired bootstrap needs."""
    return [{"doc_id": s["doc_id"], "value": float(s[metric])} for s in samples if metric in s]


def run_lm_eval(lm, tokenizer, task: Task, languages, prompt_format: str, seed: int) -> dict:
    """lm-eval's results (with samples) for the task's languages, in one simple_evaluate call."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from maple.hub import task_sources

    with tempfile.TemporaryDirectory(prefix="maple-tasks-") as task_dir:
        # lm_eval tasks: lm-eval's own, plus the task YAMLs this repo ships (staged with their data source resolved,
        # as are tasks whose dataset has a local mirror: maple.hub.task_sources). Local tasks: only the YAMLs written
        # here; indexing lm-eval's thousands of task files would cost seconds per job.
        names = [task.lm_eval_names[lang] for lang in languages]
        if task.source == "local":
            write_local_tasks(task, prompt_format, tokenizer, Path(task_dir))
            task_manager = TaskManager(include_path=[task_dir], include_defaults=False)
        else:
            staged = Path(task_dir) / "staged"
            task_manager = task_sources.task_manager(
                names, staged, shipped_dir=SHIPPED_TASKS_DIR, mirrors=task.mirrors, revisions=task.dataset_revisions
            )
        return lm_eval.simple_evaluate(
            model=lm,
            tasks=names,
            num_fewshot=task.num_fewshot,
            limit=task.limit,
            task_manager=task_manager,
            log_samples=True,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
            apply_chat_template=prompt_format == "chat_template" and task.source == "lm_eval",
        )


def score_of(results: dict, task: Task, lang: str, job_provenance: dict, samples_file: str | None):
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


def evaluate_variant(
    *,
    model_alias: str,
    variant: str,
    base_source: str,
    adapter_dir: str | None,
    bits: int,
    task: Task,
    score_files: dict,
    prompt_format: str = "plain",
    revision: str = "main",
    trust_remote_code: bool = False,
    batch_size: int | str = "auto",
    seed: int = 1234,
    samples_files: dict | None = None,
    merge: bool = False,
) -> dict:
    """Run lm-eval for every language of the task with one model load; write score_files[lang] for each."""
    from lm_eval.models.huggingface import HFLM
    from lm_eval.utils import handle_non_serializable

    started = time.time()
    merge = bool(merge and adapter_dir)
    model, tokenizer = load_variant(base_source, adapter_dir, bits, revision, trust_remote_code, merge=merge)
    loaded = time.time()
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, trust_remote_code=trust_remote_code)
    results = run_lm_eval(lm, tokenizer, task, list(score_files), prompt_format, seed)
    finished = time.time()

    job_provenance = {
        "model_alias": model_alias,
        "model_source": base_source,
        "model_revision": revision,
        "model_fingerprint": model_fingerprint(base_source, getattr(model, "config", None), revision),
        "variant": variant,
        "adapter_dir": adapter_dir,
        "adapter_sha256": adapter_hash(adapter_dir) if adapter_dir else None,
        "adapter_merged": merge if adapter_dir else None,
        "bits": bits,
        "seed": seed,
        "batch_size": batch_size,
        "batch_size_used": _batch_size_used(lm),
        "device": device_kind(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "dtype": str(compute_dtype()),
        "software": software_versions(),
        "workflow_commit": workflow_commit(),
        # One job evaluates every language of the task: these times are the job's, shared by its score files.
        "wall_seconds": finished - started,
        "model_load_seconds": loaded - started,
        "eval_seconds": finished - loaded,
        "languages_in_job": list(score_files),
        "dataset_revisions": dict(task.dataset_revisions),
    }
    summary = {}
    for lang, path in score_files.items():
        samples_file = str(samples_files[lang]) if samples_files and lang in samples_files else None
        score, samples = score_of(results, task, lang, job_provenance, samples_file)
        if samples_file:
            write_jsonl(samples, samples_file, default=handle_non_serializable)
        write_json(path, score, default=handle_non_serializable)
        summary[lang] = score["value"]
    return summary


def _batch_size_used(lm):
    """The batch size lm-eval ran with: the configured integer, or what 'auto' detected (per schedule)."""
    sizes = getattr(lm, "batch_sizes", None)
    if sizes:
        return sorted({int(v) for v in sizes.values()})
    size = getattr(lm, "batch_size", None)
    return int(size) if isinstance(size, int) or (isinstance(size, str) and size.isdigit()) else size
