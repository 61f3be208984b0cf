"""One dataset of the study from its backend: the train set and the held-out evaluation sets of local tasks.

Every backend yields instruction records (maple.runtime.records). The template backend makes its own held-out sets
(phrasings unseen in training); for the others the last n_eval records of each language are held out, and the
multiple-choice set takes its distractors from other held-out answers of the same language.
"""

from __future__ import annotations

import importlib
import random
import re
from collections import defaultdict

from maple.data.filters import DEFAULT_N_EVAL_PER_LANGUAGE, DEFAULT_N_TRAIN_PER_LANGUAGE
from maple.runtime.records import check_record

# backend name -> the module whose build() makes its records (template makes its own held-out sets)
BACKEND_MODULES = {
    "generate": "maple.data.generate",
    "translate": "maple.data.translate",
    "hub": "maple.data.hub_dataset",
}
BACKENDS = ("template", *BACKEND_MODULES)


def synthesize(name: str, spec: dict, languages: dict, seed: int, lexicon_dir: str, records=None) -> dict:
    """{"train": [...], "eval_mc": {lang: [...]}, "eval_gen": {lang: [...]}} for dataset `name`. records: a
    model-written dataset's records already built by its synth_part jobs (build_part), else built here."""
    backend = spec["backend"]
    langs = list(spec["languages"])
    n_train = spec.get("n_train_per_language", DEFAULT_N_TRAIN_PER_LANGUAGE)
    n_eval = spec.get("n_eval_per_language", DEFAULT_N_EVAL_PER_LANGUAGE)
    if backend == "template":
        from maple.data.template import make_dataset

        data = make_dataset(langs, n_train, n_eval, seed, lexicon_dir)
    elif backend in BACKEND_MODULES:
        if records is None:
            records = build_part(spec, languages, seed, langs)
        data = hold_out(records, langs, n_eval, seed)
    else:
        raise ValueError(f"datasets.{name}.backend: expected one of {BACKENDS}, got {backend!r}")
    cap = spec.get("max_examples")
    if cap:
        data["train"] = random.Random(seed).sample(data["train"], min(cap, len(data["train"])))
    for record in data["train"]:
        check_record(record)
    return data


def build_part(spec: dict, languages: dict, seed: int, produce: list[str]) -> list[dict]:
    """The records of the languages in `produce` of a dataset built by a backend module (generate, translate, hub);
    the backend sees every language of the dataset (its source language, its script filters)."""
    module = importlib.import_module(BACKEND_MODULES[spec["backend"]])
    dataset_languages = {lang: languages[lang] for lang in spec["languages"]}
    if spec["backend"] == "hub":
        return module.build(spec, dataset_languages, seed)
    return module.build(spec, dataset_languages, seed, produce=list(produce))


def hold_out(records: list[dict], langs: list[str], n_eval: int, seed: int) -> dict:
    by_lang = defaultdict(list)
    for r in records:
        by_lang[r["lang"]].append(r)
    train, eval_mc, eval_gen = [], {}, {}
    rng = random.Random(seed)
    for lang in langs:
        rows = by_lang.get(lang, [])
        if len(rows) <= n_eval:
            raise ValueError(f"language {lang!r}: {len(rows)} records, need more than n_eval_per_language={n_eval}")
        train += rows[:-n_eval]
        held = rows[-n_eval:]
        eval_gen[lang] = held
        answers = sorted({r["output"] for r in held})
        eval_mc[lang] = []
        for r in held:
            distractors = rng.sample([a for a in answers if a != r["output"]], min(3, len(answers) - 1))
            choices = distractors + [r["output"]]
            rng.shuffle(choices)
            eval_mc[lang].append({**r, "choices": choices, "label": choices.index(r["output"])})
    return {"train": train, "eval_mc": eval_mc, "eval_gen": eval_gen}


def statistics(data: dict) -> dict:
    """Examples, characters and whitespace-separated words per language (Han text: characters)."""
    stats = defaultdict(lambda: {"examples": 0, "characters": 0, "words": 0})
    for r in data["train"]:
        text = " ".join((r["instruction"], r["input"], r["output"]))
        s = stats[r["lang"]]
        s["examples"] += 1
        s["characters"] += len(text)
        s["words"] += len(re.findall(r"\w+", text))
    return {
        "train": dict(sorted(stats.items())),
        "eval_examples": {lang: len(v) for lang, v in sorted(data["eval_gen"].items())},
        "total_train_examples": len(data["train"]),
    }
