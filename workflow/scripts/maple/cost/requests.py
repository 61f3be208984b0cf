"""What one evaluation example costs, per task and language, from the config alone (no model, no network): the
examples (the shipped table of lm-eval split sizes, workflow/resources/task_sizes.csv, its sources in its `source`
column; a local task's held-out set size from the config), the loglikelihood requests per example (choices), the
prompt tokens (a stated English average per task family times a per-script tokenizer factor) and, for generation,
the new tokens and the batch. Prompt and answer tokens counted with a model's tokenizer (rule count_tokens,
estimate.token_counts) replace the stated averages where given. docs/cost-and-sharding.md states every figure and
where it comes from."""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from functools import lru_cache

from maple.hub.split_sizes import SIZES_FILE, table_rows

# Per task family: choices (loglikelihood requests per example; 0: generation; one_token_choices: every continuation
# is one token, so HFLM runs one forward for all of an example's requests), English prompt tokens (Llama-2 /
# Mistral tokenizers; an estimate from the datasets' published average lengths) and, for generation, lm-eval's own
# max_gen_toks (new_tokens: the cap a batch decodes to unless every member stops earlier) and the tokens of a
# typical answer up to its stop sequence (answer_tokens: XQuAD / MLQA answers are spans of a few words, XL-Sum
# summaries one sentence).
FAMILIES = {
    # passage ~ 80 words, question, 4 answers; the choices " A" .. " D" are one token each after "Answer:"
    "belebele": {"choices": 4, "prompt_tokens": 180, "new_tokens": 0, "one_token_choices": True},
    "xcopa": {"choices": 2, "prompt_tokens": 20, "new_tokens": 0},
    "xnli": {"choices": 3, "prompt_tokens": 50, "new_tokens": 0},  # premise + hypothesis in each choice
    "xstorycloze": {"choices": 2, "prompt_tokens": 60, "new_tokens": 0},  # four sentences, two endings
    "xquad": {
        "choices": 0,
        "prompt_tokens": 200,
        "new_tokens": 256,
        "answer_tokens": 12,
    },  # paragraph ~ 140 words + question
    "mlqa": {
        "choices": 0,
        "prompt_tokens": 230,
        "new_tokens": 256,
        "answer_tokens": 12,
    },  # paragraph ~ 160 words + question
    "xlsum": {
        "choices": 0,
        "prompt_tokens": 520,
        "new_tokens": 128,
        "answer_tokens": 48,
    },  # first 2,000 characters of the article
    "local_multiple_choice": {"choices": 4, "prompt_tokens": 40, "new_tokens": 0},
    "local_generate": {"choices": 0, "prompt_tokens": 40, "new_tokens": 24, "answer_tokens": 6},
}
# The share of answers that do not stop at the stop sequence and run to the cap (a base model that goes on writing):
# a batch of B decodes to the cap unless none of its B members does so (maple.cost.requests.steps_per_batch).
RUN_ON_SHARE = 0.05
UNKNOWN_EXAMPLES = 1000  # an lm-eval task missing from the table: stated, and named in the estimate's notes

# Tokens per English token for the same text, by script (Llama-2 / Mistral SentencePiece vocabularies): a stated
# average after Petrov et al. 2023, "Language Model Tokenizers Introduce Unfairness Between Languages".
SCRIPT_FACTOR = {
    "Latn": 1.4,
    "Cyrl": 2.0,
    "Grek": 2.6,
    "Arab": 2.6,
    "Hans": 1.6,
    "Jpan": 1.8,
    "Kore": 2.6,
    "Thai": 3.5,
    "Deva": 4.0,
    "Beng": 5.0,
    "Gujr": 6.0,
    "Guru": 5.0,
    "Taml": 6.0,
    "Telu": 6.0,
    "Ethi": 5.0,
    "Mymr": 8.0,
}
DEFAULT_SCRIPT_FACTOR = 2.0


@dataclass(frozen=True)
class LangCost:
    """One language of one task: what its examples cost, before a model or throughput is chosen."""

    lang: str
    examples: int
    choices: int  # loglikelihood requests per example; 0 for generation
    forwards: int  # forwards per example as HFLM runs them (forwards_per_example)
    prompt_tokens: float
    new_tokens: int  # generation: the decode cap
    answer_tokens: int  # generation: a typical answer's tokens up to its stop sequence
    gen_batch: int  # generation: the batch size (1 for 'auto', which probes at the full context)
    known: bool  # examples from the table or the config (False: UNKNOWN_EXAMPLES)


@lru_cache(maxsize=4)
def split_sizes(path: str = str(SIZES_FILE)) -> dict[str, tuple[int, str]]:
    """lm-eval task name -> (examples of the split it scores, family). Preflight checks the examples against the hub
    (maple.hub.split_sizes)."""
    return {name: (row["examples"], row["family"]) for name, row in table_rows(path).items()}


def family_of(lm_eval_name: str) -> str | None:
    entry = split_sizes().get(lm_eval_name)
    if entry:
        return entry[1]
    base = re.sub(r"^maple_", "", lm_eval_name).split("_")[0]
    return base if base in FAMILIES else None


def token_factor(lang: str, languages: dict) -> float:
    if lang == "en":
        return 1.0
    return SCRIPT_FACTOR.get(languages.get(lang, {}).get("script"), DEFAULT_SCRIPT_FACTOR)


def generation_batch(batch_size) -> int:
    """The generation batch an HFLM batch size gives: an integer as is; 'auto' probes at the full context, which
    for a 7B model often ends at 1 (the estimate takes that)."""
    return int(batch_size) if isinstance(batch_size, int) or str(batch_size).isdigit() else 1


class TokenCountsError(ValueError):
    """estimate.token_counts names a file that is missing or not a table count_tokens wrote."""


TOKEN_COLUMNS = ("model", "task", "lang", "sampled", "prompt_tokens", "answer_tokens")


def read_token_counts(path) -> dict[tuple[str, str, str], tuple[float, float]]:
    """(model, task, lang) -> (prompt tokens per request, answer tokens) from the table rule count_tokens writes
    (results/plan/tokens.csv), for the rows it counted with a tokenizer (sampled > 0); {} where path is None."""
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in TOKEN_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise TokenCountsError(f"estimate.token_counts: {path} has no column {missing} (rule count_tokens)")
            return {
                (r["model"], r["task"], r["lang"]): (float(r["prompt_tokens"]), float(r["answer_tokens"]))
                for r in reader
                if int(r["sampled"]) > 0
            }
    except OSError as error:
        raise TokenCountsError(
            f"estimate.token_counts: cannot read {path} ({error.strerror}); `snakemake count_tokens` writes it"
        ) from None
    except ValueError as error:
        if isinstance(error, TokenCountsError):
            raise
        raise TokenCountsError(f"estimate.token_counts: {path}: expected numbers: {error}") from None


def measured_tokens(tokens: dict, model: str, task_alias: str) -> dict[str, tuple[float, float]]:
    """lang -> (prompt, answer) tokens counted for this model and task (read_token_counts)."""
    return {lang: v for (m, t, lang), v in tokens.items() if m == model and t == task_alias}


def language_costs(task, study, measured: dict | None = None) -> list[LangCost]:
    """Each language of a resolved task (maple.runtime.tasks.Task) as a LangCost. measured: lang -> (prompt tokens
    per request, answer tokens) counted with the model's tokenizer (measured_tokens), in place of the stated
    averages."""
    measured = measured or {}
    batch = generation_batch(task.batch_size if task.batch_size is not None else study.evaluation_params["batch_size"])
    costs = []
    for lang in task.languages:
        if task.source == "local":
            family = FAMILIES[f"local_{task.kind}"]
            spec = study.datasets[task.dataset]
            examples, known = int(spec.get("n_eval_per_language", 40)), True
            new_tokens = task.max_gen_toks or family["new_tokens"]
        else:
            name = task.lm_eval_names[lang]
            entry = split_sizes().get(name)
            family = FAMILIES.get(family_of(name) or "", FAMILIES["local_multiple_choice"])
            examples, known = (entry[0], True) if entry else (UNKNOWN_EXAMPLES, False)
            new_tokens = task.max_gen_toks or family["new_tokens"]
        if task.limit is not None:
            examples = min(examples, int(task.limit))
        prompt = family["prompt_tokens"] * token_factor(lang, study.languages)
        answer = family.get("answer_tokens", 0) * token_factor(lang, study.languages)
        if lang in measured:
            prompt, counted_answer = measured[lang]
            answer = counted_answer or answer
        if task.max_length:
            prompt = min(prompt, max(task.max_length - new_tokens, 1))
        costs.append(
            LangCost(
                lang=lang,
                examples=examples,
                choices=family["choices"],
                forwards=forwards_per_example(family),
                prompt_tokens=math.ceil(prompt),
                new_tokens=new_tokens if family["choices"] == 0 else 0,
                answer_tokens=math.ceil(answer),
                gen_batch=batch,
                known=known,
            )
        )
    return costs


def forwards_per_example(family: dict) -> int:
    """HFLM's forwards for one example (lm_eval 0.4.13, HFLM._loglikelihood_tokens): with logits_cache (on by
    default) its Collator groups requests by context + continuation[:-1] (group_by="contexts"), so choices whose
    continuations are one token each share one forward; longer continuations differ and run one forward each. A
    generation example is one prompt."""
    if family["choices"] == 0 or family.get("one_token_choices"):
        return 1
    return family["choices"]


def steps_per_batch(cost: LangCost) -> float:
    """Expected decode steps of one generation batch: the cap where at least one member runs on (probability
    1 - (1 - RUN_ON_SHARE) ** batch), else a typical answer's length."""
    answer = min(cost.answer_tokens, cost.new_tokens)
    run_on = 1 - (1 - RUN_ON_SHARE) ** max(cost.gen_batch, 1)
    return cost.new_tokens * run_on + answer * (1 - run_on)
