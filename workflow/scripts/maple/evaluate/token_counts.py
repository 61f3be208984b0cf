"""Prompt and answer tokens per task and language, counted with each model's own tokenizer on a sample of the
examples, where the tokenizer and the data are on this machine (rule count_tokens; docs/cost-and-sharding.md,
"Tokens"). The prompts are the ones lm-eval builds (its requests, few-shot context and chat template included), so
the counts are what an evaluation job feeds the model. Where either is missing, the row says why and the estimate
keeps its stated average. Nothing is read from the network."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from maple.evaluate.job import task_manager_for
from maple.runtime.records import read_jsonl
from maple.runtime.tasks import Task
from maple.train.finetune import to_prompt_completion

SAMPLE_SIZE = 32  # examples per language: the mean of 32 prompts is within a few % of a split's for these tasks


@dataclass(frozen=True)
class TokenCount:
    model: str
    task: str
    lang: str
    sampled: int  # examples counted (0: not counted, see source)
    prompt_tokens: float  # per loglikelihood request (context and continuation) or generation prompt
    answer_tokens: float  # generation: the reference answer's tokens; 0 for loglikelihood tasks
    source: str  # the tokenizer counted with, or why nothing was counted


def sample_indices(total: int, n: int = SAMPLE_SIZE) -> list[int]:
    """n indices spread evenly over a split of `total` examples (all where total <= n): a split sorted by topic or
    length is sampled across its whole range."""
    if total <= n:
        return list(range(total))
    return sorted({round(i * (total - 1) / (n - 1)) for i in range(n)})


def load_tokenizer(source: str, revision: str, trust_remote_code: bool):
    """The model's tokenizer from local files only (a local directory, or the hub cache after prefetch)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        source, revision=revision, local_files_only=True, trust_remote_code=trust_remote_code
    )


def chat_template_of(tokenizer):
    """The callable lm-eval's build_all_requests takes for a chat template, as HFLM.apply_chat_template renders."""

    def render(chat_history, add_generation_prompt=True):
        return tokenizer.apply_chat_template(
            chat_history,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
        )

    return render


def _target_text(lm_task, doc) -> str:
    """The reference answer of a generation example as text (lm-eval targets may be a list of answers)."""
    target = lm_task.doc_to_target(doc)
    if isinstance(target, list):
        target = target[0] if target else ""
    return str(target)


def count_language(lm_task, tokenizer, *, chat: bool, n: int = SAMPLE_SIZE) -> tuple[int, float, float]:
    """(examples sampled, mean tokens per request, mean reference-answer tokens) of one lm-eval task object."""
    docs = lm_task.eval_docs
    indices = sample_indices(len(docs), n)
    if not indices:
        return 0, 0.0, 0.0
    lm_task.build_all_requests(
        samples=indices,
        apply_chat_template=chat,
        chat_template=chat_template_of(tokenizer) if chat else None,
        tokenizer_name=getattr(tokenizer, "name_or_path", "") if chat else "",
    )

    def length(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    request_tokens = []
    for instance in lm_task.instances:
        context, second = instance.arguments[0], instance.arguments[1]
        # loglikelihood: (context, continuation); generation: (context, generation kwargs)
        request_tokens.append(length(context) + (length(second) if isinstance(second, str) else 0))
    generation = lm_task.instances and lm_task.instances[0].request_type == "generate_until"
    answers = [length(_target_text(lm_task, docs[i])) for i in indices] if generation else [0]
    return len(indices), sum(request_tokens) / len(request_tokens), sum(answers) / len(answers)


def count_task(
    model_alias: str, task: Task, tokenizer, tokenizer_name: str, prompt_format: str, n: int = SAMPLE_SIZE
) -> list[TokenCount]:
    """One TokenCount per language of the task; a language whose data cannot be read here gets a row that says why."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="maple-tokens-") as task_dir:
        names = [task.lm_eval_names[lang] for lang in task.languages]
        # a local task's languages whose held-out files are not written yet (write_local_tasks reads each)
        present = replace(task, eval_files={k: v for k, v in task.eval_files.items() if Path(v).is_file()})
        local_missing = [lang for lang in task.languages if task.source == "local" and lang not in present.eval_files]
        manager = task_manager_for(present, names, Path(task_dir), prompt_format, tokenizer)
        chat = prompt_format == "chat_template" and task.source == "lm_eval"
        for lang, name in zip(task.languages, names):
            if lang in local_missing:
                rows.append(TokenCount(model_alias, task.alias, lang, 0, 0, 0, "stated: no held-out data yet"))
                continue
            try:
                lm_task = manager.load([name])["tasks"][name]
                sampled, prompt, answer = count_language(lm_task, tokenizer, chat=chat, n=n)
            except Exception as error:  # noqa: BLE001 (a dataset not prefetched: the stated average stands)
                reason = " ".join(f"{type(error).__name__}: {error}".split())[:160]
                rows.append(TokenCount(model_alias, task.alias, lang, 0, 0, 0, f"stated: data not readable ({reason})"))
                continue
            rows.append(
                TokenCount(model_alias, task.alias, lang, sampled, round(prompt, 1), round(answer, 1), tokenizer_name)
            )
    return rows


TRAIN_PREFIX = "train:"  # the task column of a training set's rows: train:<dataset>


def count_training(
    model_alias: str, dataset: str, train_file: str, languages, tokenizer, tokenizer_name: str, prompt_format: str
) -> list[TokenCount]:
    """Per language of a training set: the tokens of a record as the finetune feeds it (the prompt in the model's
    format, the completion and an end-of-sequence token), on SAMPLE_SIZE records spread over the language's; a
    set not written yet keeps the stated average."""
    task = f"{TRAIN_PREFIX}{dataset}"
    if not Path(train_file).is_file():
        return [
            TokenCount(model_alias, task, lang, 0, 0, 0, "stated: training data not written yet") for lang in languages
        ]
    records = read_jsonl(train_file)
    rows = []
    for lang in languages:
        mine = [r for r in records if r.get("lang") == lang]
        sample = [mine[i] for i in sample_indices(len(mine))]
        if not sample:
            rows.append(TokenCount(model_alias, task, lang, 0, 0, 0, "stated: no record of this language"))
            continue
        pairs = to_prompt_completion(sample, prompt_format, tokenizer)
        lengths = [
            len(tokenizer(p + c, add_special_tokens=False)["input_ids"]) + 1
            for p, c in zip(pairs["prompt"], pairs["completion"])
        ]
        rows.append(
            TokenCount(model_alias, task, lang, len(sample), round(sum(lengths) / len(lengths), 1), 0, tokenizer_name)
        )
    return rows


def count_study(models: dict, tasks: list[Task], n: int = SAMPLE_SIZE, training: dict | None = None) -> list[dict]:
    """Every (model, task, language) as a row of results/plan/tokens.csv, and with training (model alias ->
    {dataset: {train_file, languages}}) every (model, train:<dataset>, language) it finetunes on. models: alias ->
    {source, revision, prompt_format, trust_remote_code}."""
    rows = []
    for alias, model in models.items():
        sets = (training or {}).get(alias, {})
        try:
            tokenizer = load_tokenizer(model["source"], model["revision"], model["trust_remote_code"])
        except Exception as error:  # noqa: BLE001 (not on this machine: the stated averages stand)
            reason = f"stated: tokenizer not on this machine ({type(error).__name__})"
            rows += [asdict(TokenCount(alias, t.alias, lang, 0, 0, 0, reason)) for t in tasks for lang in t.languages]
            rows += [
                asdict(TokenCount(alias, f"{TRAIN_PREFIX}{d}", lang, 0, 0, 0, reason))
                for d, spec in sets.items()
                for lang in spec["languages"]
            ]
            continue
        name = f"{model['source']}@{model['revision']}"
        for task in tasks:
            rows += [asdict(r) for r in count_task(alias, task, tokenizer, name, model["prompt_format"], n)]
        for dataset, spec in sets.items():
            counted = count_training(
                alias, dataset, spec["train_file"], spec["languages"], tokenizer, name, model["prompt_format"]
            )
            rows += [asdict(r) for r in counted]
    return rows
