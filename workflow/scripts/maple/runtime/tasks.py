"""One evaluation task of the study, as planning resolves it from the config (maple.config.study) and as its
evaluation job runs it (maple.evaluate.job): one record for both. The job's own fields (the held-out files of a local
task, the dataset mirrors and pinned commits its lm-eval tasks read) are filled per job by common.smk."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    max_gen_toks: int = 24  # local generate tasks
    # the evaluation job's
    eval_files: dict = field(default_factory=dict)  # lang -> held-out jsonl (local tasks)
    mirrors: dict = field(default_factory=dict)  # hub dataset id -> local mirror directory (maple.hub.task_sources)
    dataset_revisions: dict = field(default_factory=dict)  # hub dataset id -> pinned commit (maple.hub.pins)

    def job_param(self) -> dict:
        """The evaluation job's `task` param (Task(**param) rebuilds the record there): every field but languages
        and dataset (the job's score files name the languages, a local task's eval_files its data), max_gen_toks
        only where it counts (a local generate task), mirrors and pinned revisions only where there are some. The
        keys in a fixed order: Snakemake compares a param by its repr, so this order is what keeps finished
        evaluations from rerunning."""
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
        if self.source == "local" and self.kind == "generate":
            param["max_gen_toks"] = self.max_gen_toks
        for key in ("mirrors", "dataset_revisions"):
            if getattr(self, key):
                param[key] = dict(getattr(self, key))
        return param
