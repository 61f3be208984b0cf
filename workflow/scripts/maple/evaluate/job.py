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

from maple.evaluate.request_cache import cached_requests, job_fingerprint, remove_work_dirs
from maple.evaluate.scores import PROVENANCE_FIELDS, score_of  # noqa: F401 (PROVENANCE_FIELDS: the score layout)
from maple.evaluate.units import Unit, job_units
from maple.hub.task_files import SHIPPED_TASKS_DIR
from maple.runtime.atomic import write_json
from maple.runtime.prompts import format_prompt
from maple.runtime.provenance import adapter_hash, model_fingerprint, software_versions, workflow_commit
from maple.runtime.records import read_jsonl, write_jsonl
from maple.runtime.tasks import LOCAL_MAX_GEN_TOKS, Task
from maple.track.scores import track_scores
from maple.train.models import compute_dtype, device_kind, load_base

# PeftModel.from_pretrained: without fp32 upcast of a bf16 adapter, the LoRA matmuls of an unmerged 4/8-bit
# evaluation run in bf16 like the base's, not in fp32.
ADAPTER_LOAD_ARGUMENTS = {"autocast_adapter_dtype": False}


def local_task_config(name: str, kind: str, data_file: str, max_gen_toks: int = LOCAL_MAX_GEN_TOKS) -> dict:
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
            yaml.safe_dump(
                local_task_config(name, task.kind, str(data_file), task.max_gen_toks or LOCAL_MAX_GEN_TOKS),
                f,
                allow_unicode=True,
            )


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

        model = PeftModel.from_pretrained(model, adapter_dir, **ADAPTER_LOAD_ARGUMENTS)
        if merge:
            if bits != 16:
                raise ValueError(f"merge: a LoRA adapter merges only into an unquantised base, not at {bits} bits")
            model = model.merge_and_unload()
    model.eval()
    return model, tokenizer


def task_manager_for(task: Task, names: list[str], task_dir: Path, prompt_format: str, tokenizer):
    """lm-eval's TaskManager for the task's lm-eval names, its files in task_dir. lm_eval tasks: lm-eval's own, plus
    the task YAMLs this repo ships (staged with their data source resolved, as are tasks whose dataset has a local
    mirror: maple.hub.task_sources). Local tasks: only the YAMLs written here, their prompts in the model's format;
    indexing lm-eval's thousands of task files would cost seconds per job."""
    from lm_eval.tasks import TaskManager

    from maple.hub import task_sources

    if task.source == "local":
        write_local_tasks(task, prompt_format, tokenizer, task_dir)
        return TaskManager(include_path=[str(task_dir)], include_defaults=False)
    return task_sources.task_manager(
        names,
        task_dir / "staged",
        shipped_dir=SHIPPED_TASKS_DIR,
        mirrors=task.mirrors,
        revisions=task.dataset_revisions,
    )


def run_lm_eval(lm, tokenizer, task: Task, languages, prompt_format: str, seed: int, examples=None) -> dict:
    """lm-eval's results (with samples) for the task's languages, in one simple_evaluate call; examples: (start,
    stop) of one language's examples (stop None: to the end of the split or the task's limit), else all."""
    import lm_eval

    with tempfile.TemporaryDirectory(prefix="maple-tasks-") as task_dir:
        names = [task.lm_eval_names[lang] for lang in languages]
        task_manager = task_manager_for(task, names, Path(task_dir), prompt_format, tokenizer)
        samples = None
        if examples is not None:
            (name,) = names
            total = len(task_manager.load([name])["tasks"][name].eval_docs)
            start, stop = examples
            stop = min(stop or total, total, task.limit or total)
            if start >= stop:  # lm-eval reads an empty sample list as "every example"
                raise ValueError(
                    f"{name}: the range {start}-{examples[1] or 'end'} starts past the split's {stop} examples: "
                    "its row in workflow/resources/task_sizes.csv overstates the split (preflight checks it online)"
                )
            samples = {name: list(range(start, stop))}
        return lm_eval.simple_evaluate(
            model=lm,
            tasks=names,
            num_fewshot=task.num_fewshot,
            limit=task.limit if samples is None else None,
            samples=samples,
            gen_kwargs=task.gen_kwargs(),
            task_manager=task_manager,
            log_samples=True,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
            apply_chat_template=prompt_format == "chat_template" and task.source == "lm_eval",
        )


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
    ranges: list[dict] | None = None,
) -> dict:
    """Run lm-eval for each language of score_files (and each range of ranges: {lang, start, stop, score,
    samples}, stop None: to the end) with one model load, one simple_evaluate call per language or range, so that a
    language's score does not depend on which languages share its job; write one score file for each."""
    from lm_eval.models.huggingface import HFLM

    started = time.time()
    merge = bool(merge and adapter_dir) and task.engine == "hf"
    if task.engine == "vllm":
        from maple.evaluate.vllm_engine import task_vllm_lm

        lm = task_vllm_lm(task, base_source, revision, adapter_dir, bits, batch_size, seed, trust_remote_code)
        model, tokenizer = None, lm.tokenizer
        loaded = time.time()
    else:
        model, tokenizer = load_variant(base_source, adapter_dir, bits, revision, trust_remote_code, merge=merge)
        loaded = time.time()
        lm = HFLM(
            pretrained=model,
            tokenizer=tokenizer,
            batch_size=batch_size,
            max_length=task.max_length,
            trust_remote_code=trust_remote_code,
        )
    return score_units(
        lm,
        tokenizer,
        task,
        job_units(score_files, samples_files, ranges),
        prompt_format,
        seed,
        load_seconds=loaded - started,
        model_alias=model_alias,
        variant=variant,
        base_source=base_source,
        revision=revision,
        model_config=getattr(model, "config", None),
        adapter_dir=adapter_dir,
        merged=merge,
        bits=bits,
        batch_size=batch_size,
    )


def score_units(lm, tokenizer, task: Task, units: list[Unit], prompt_format: str, seed: int, keep_work=False, **job):
    """One simple_evaluate call per unit on the loaded model, each unit's score (and samples) file written with the
    job's provenance (job: job_provenance's fields but lm, task, units, seed and eval_seconds); {unit label: value}."""
    started, results = time.time(), {}
    for unit in units:  # resumed from its work directory (maple.evaluate.request_cache), removed unless keep_work
        with cached_requests(lm, unit, job_fingerprint(task=task, prompt_format=prompt_format, seed=seed, **job)):
            results[unit] = run_lm_eval(lm, tokenizer, task, [unit.lang], prompt_format, seed, unit.examples)
    provenance = job_provenance(lm=lm, task=task, units=units, seed=seed, eval_seconds=time.time() - started, **job)
    summary = write_scores(results, task, provenance)
    remove_work_dirs([] if keep_work else [unit.score_file for unit in units])
    return summary


def job_provenance(
    *,
    model_alias,
    variant,
    base_source,
    revision,
    model_config,
    adapter_dir,
    merged,
    bits,
    seed,
    batch_size,
    lm,
    task,
    units,
    load_seconds,
    eval_seconds,
) -> dict:
    """What every score file of one variant's evaluation records of the job (scores.PROVENANCE_FIELDS)."""
    return {
        "model_alias": model_alias,
        "model_source": base_source,
        "model_revision": revision,
        "model_fingerprint": model_fingerprint(base_source, model_config, revision),
        "variant": variant,
        "adapter_dir": adapter_dir,
        "adapter_sha256": adapter_hash(adapter_dir) if adapter_dir else None,
        "adapter_merged": merged if adapter_dir else None,
        "bits": bits,
        "seed": seed,
        "batch_size": batch_size,
        "batch_size_used": _batch_size_used(lm),
        "device": device_kind(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "dtype": str(compute_dtype()),
        "software": software_versions(),
        "workflow_commit": workflow_commit(),
        # One job evaluates every language of its shard: these times are the job's, shared by its score files.
        "wall_seconds": load_seconds + eval_seconds,
        "model_load_seconds": load_seconds,
        "eval_seconds": eval_seconds,
        "languages_in_job": [unit.label for unit in units],
        "dataset_revisions": dict(task.dataset_revisions),
    }


def write_scores(results: dict, task: Task, provenance: dict) -> dict:
    """One score file (and samples file) per unit of results ({Unit: lm-eval's results}); {unit label: value}."""
    from lm_eval.utils import handle_non_serializable

    summary, written = {}, []
    for unit, unit_results in results.items():
        score, samples = score_of(unit_results, task, unit.lang, provenance, unit.samples_file, unit.examples)
        if unit.samples_file:
            write_jsonl(samples, unit.samples_file, default=handle_non_serializable)
        write_json(unit.score_file, score, default=handle_non_serializable)
        summary[unit.label] = score["value"]
        written.append((unit.score_file, score))
    track_scores(written)
    return summary


def _batch_size_used(lm):
    """The batch size lm-eval ran with: the configured integer, or what 'auto' detected (per schedule)."""
    sizes = getattr(lm, "batch_sizes", None)
    if sizes:
        return sorted({int(v) for v in sizes.values()})
    size = getattr(lm, "batch_size", None)
    return int(size) if isinstance(size, int) or (isinstance(size, str) and size.isdigit()) else size
