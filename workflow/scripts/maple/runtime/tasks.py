"""One evaluation task of the study, as planning resolves it from the config (maple.config.study) and as its
evaluation job runs it (maple.evaluate.job): one record for both. The job's own fields (the held-out files of a local
task, the dataset mirrors and pinned commits its lm-eval tasks read) are filled per job by common.smk."""

from __future__ import annotations

from dataclasses import dataclass, field

LOCAL_MAX_GEN_TOKS = 24  # a local generate task's answer cap where max_gen_toks is not given


@dataclass(frozen=True)
class Task:
    alias: str
    source: str  # local | lm_eval
    kind: str | None  # multiple_choice | generate (local tasks)
    metric: str  # the headline metric
    lm_eval_names: dict  # lang -> lm-eval task name
    languages: tuple[str, ...] = ()
    dataset: str | None = None  # local tasks: the dataset whose held-out sets they read
    # the config schema's defaults (evaluation.tasks.<alias>; tests/test_study_config.py checks that they agree)
    num_fewshot: int = 0
    limit: int | None = None
    max_gen_toks: int | None = None  # generation: the most new tokens (None: an lm-eval task's own; local: 24)
    batch_size: int | str | None = None  # this task's HFLM batch size (None: evaluation.batch_size)
    max_length: int | None = None  # HFLM max_length: prompt and answer tokens (None: the model's context)
    engine: str = "hf"  # hf: HFLM; vllm: lm-eval's vLLM model (maple.evaluate.vllm_engine)
    # the evaluation job's
    eval_files: dict = field(default_factory=dict)  # lang -> held-out jsonl (local tasks)
    mirrors: dict = field(default_factory=dict)  # hub dataset id -> local mirror directory (maple.hub.task_sources)
    dataset_revisions: dict = field(default_factory=dict)  # hub dataset id -> pinned commit (maple.hub.pins)
    lora_rank: int = 16  # engine vllm: max_lora_rank (the grid's largest rank, rounded up to one vLLM takes)

    def job_param(self) -> dict:
        """The evaluation job's `task` param (Task(**param) rebuilds the record there): every field but languages,
        dataset and batch_size (the job's score files name the languages, a local task's eval_files its data, the
        batch size is a param of its own); the others only where they count, so that a task without them plans the
        jobs it always did. The keys in a fixed order: Snakemake compares a param by its repr."""
        param = {
            "alias": self.alias,
            "source": self.source,
            "kind": self.kind,
            "metric": self.metric,
            "lm_eval_names": dict(self.lm_eval_names),
            "eval_files": dict(self.eval_files),
            "num_fewshot": self.num_fewshot,
            "limit": self.limit,
        }
        if self.max_gen_toks and self.kind != "multiple_choice":
            param["max_gen_toks"] = self.max_gen_toks
        if self.max_length:
            param["max_length"] = self.max_length
        if self.engine == "vllm":
            param.update(engine=self.engine, lora_rank=self.lora_rank)
        for key in ("mirrors", "dataset_revisions"):
            if getattr(self, key):
                param[key] = dict(getattr(self, key))
        return param

    def gen_kwargs(self) -> dict | None:
        """What simple_evaluate lays over an lm-eval generation task's own generation_kwargs (its stop sequences
        stay): max_gen_toks where the config gives one. Local tasks carry theirs in the YAML the job writes."""
        return {"max_gen_toks": self.max_gen_toks} if self.source == "lm_eval" and self.max_gen_toks else None
