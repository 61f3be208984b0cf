"""The offline `template` data backend: instruction, evaluation and pretraining text from per-language lexicons
(maple.data.lexicon). Evaluation holds out one instruction template per fact family (chosen by the seed): eval asks
about the same facts as training, in a phrasing training never shows, and training covers every fact eval asks about.
"""

from __future__ import annotations

import random
from pathlib import Path

from maple.data.lexicon import FAMILIES, N_CHOICES, N_NUMBERS, facts, load_lexicon
from maple.runtime.records import INSTRUCTION_FIELDS

SOURCE = "template"
SEQUENCE_LENGTHS = range(3, 7)  # counting runs of the pretraining corpus


# --- facts and records ----------------------------------------------------------------------------------------------


def _render(text: str, fact: dict[str, str]) -> str:
    sentence = text.format(**fact)
    return sentence[:1].upper() + sentence[1:]  # a no-op for scripts without case


def all_items(lang: str, lexicon: dict) -> list[dict]:
    """Every (family, fact, template) instruction record, in lexicon order.

    Besides the record fields each carries `family`, `template_index` (int) and `fact` (the fact's key within its
    family); make_dataset drops them.
    """
    records = []
    for family, (_, answer) in FAMILIES.items():
        templates = lexicon["families"][family]["templates"]
        for fact_index, fact in enumerate(facts(family, lexicon)):
            for template_index, template in enumerate(templates):
                records.append(
                    {
                        "id": f"{SOURCE}-{lang}-{family}-{fact_index:03d}-{template_index}",
                        "instruction": _render(template, fact),
                        "input": "",
                        "output": fact[answer],
                        "lang": lang,
                        "source": SOURCE,
                        "family": family,
                        "template_index": template_index,
                        "fact": fact["key"],
                    }
                )
    return records


# --- sampling -------------------------------------------------------------------------------------------------------


def _interleave(groups: dict[str, list], rng: random.Random) -> list:
    """Shuffle each group, then take one from each in turn, so every prefix is balanced across groups."""
    queues = [rng.sample(groups[name], len(groups[name])) for name in sorted(groups)]
    rng.shuffle(queues)
    out = []
    while any(queues):
        out.extend(queue.pop() for queue in queues if queue)
    return out


def _take(groups: dict[str, list], n: int, rng: random.Random) -> list:
    """n balanced draws: all distinct while the groups last, then repeated passes (sampling with replacement)."""
    if n > 0 and not any(groups.values()):
        raise ValueError("nothing to sample from")
    out: list = []
    while len(out) < n:
        out.extend(_interleave(groups, rng))
    return out[:n]


def _by_family(records: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(record["family"], []).append(record)
    return groups


def _split_language(
    lang: str, lexicon: dict, n_train: int, n_eval: int, rng: random.Random
) -> tuple[list[dict], list[dict]]:
    """(train, eval) items of one language; eval uses one held-out template per family."""
    held_out = {family: rng.randrange(len(lexicon["families"][family]["templates"])) for family in FAMILIES}
    items = all_items(lang, lexicon)
    eval_pool, seen = [], set()
    for item in items:
        if item["template_index"] == held_out[item["family"]] and item["instruction"] not in seen:
            seen.add(item["instruction"])
            eval_pool.append(item)
    if len(eval_pool) < n_eval:
        raise ValueError(
            f"language {lang!r}: only {len(eval_pool)} unique held-out eval items can be made, {n_eval} requested"
        )
    train_pool = [
        item for item in items if item["template_index"] != held_out[item["family"]] and item["instruction"] not in seen
    ]
    eval_items = _interleave(_by_family(eval_pool), rng)[:n_eval]
    return _train_items(train_pool, eval_items, n_train, rng), eval_items


def _train_items(pool: list[dict], eval_items: list[dict], n: int, rng: random.Random) -> list[dict]:
    """n training items: first one per fact that eval asks about, then balanced draws from the rest."""
    by_fact: dict[tuple[str, str], list[dict]] = {}
    for item in pool:
        by_fact.setdefault((item["family"], item["fact"]), []).append(item)
    covering, used = [], set()
    for item in eval_items:
        options = [o for o in by_fact.get((item["family"], item["fact"]), []) if o["id"] not in used]
        if options:
            choice = rng.choice(options)
            used.add(choice["id"])
            covering.append(choice)
    rest = [item for item in pool if item["id"] not in used]
    fill = _take(_by_family(rest or pool), max(0, n - len(covering)), rng)
    train = (covering + fill)[:n]
    rng.shuffle(train)
    return train


def _mc_record(record: dict, lexicon_answers: list[str], rng: random.Random) -> dict:
    """The record plus 4 shuffled choices: its answer and 3 other answers of the same family."""
    distractors = rng.sample([a for a in lexicon_answers if a != record["output"]], N_CHOICES - 1)
    choices = [record["output"], *distractors]
    rng.shuffle(choices)
    return {**record, "choices": choices, "label": choices.index(record["output"])}


def _family_answers(lexicon: dict) -> dict[str, list[str]]:
    return {
        family: sorted({fact[answer] for fact in facts(family, lexicon)}) for family, (_, answer) in FAMILIES.items()
    }


def _plain(item: dict, record_id: str) -> dict:
    return {**{field: item[field] for field in INSTRUCTION_FIELDS}, "id": record_id}


def make_dataset(languages: list[str], n_train: int, n_eval: int, seed: int, lexicon_dir: str | Path) -> dict:
    """Train, multiple-choice eval and generative eval records for each language; deterministic from `seed`.

    Returns {"train": [...], "eval_mc": {lang: [...]}, "eval_gen": {lang: [...]}}; train holds n_train records per
    language (repeating items when a language has too few), each eval set n_eval distinct held-out records, the
    same questions in both eval sets. Ids are "template-<lang>-<5 digits>", unique within the dataset.
    """
    if len(set(languages)) != len(languages) or not languages:
        raise ValueError(f"languages: expected a non-empty list without repeats, got {languages!r}")
    if n_train < 0 or n_eval < 0:
        raise ValueError(f"n_train and n_eval must be >= 0, got {n_train} and {n_eval}")
    train: list[dict] = []
    eval_mc: dict[str, list[dict]] = {}
    eval_gen: dict[str, list[dict]] = {}
    for lang in languages:
        lexicon = load_lexicon(lang, lexicon_dir)
        rng = random.Random(f"{seed}-{lang}")  # str seeds are hashed deterministically, unlike hash()
        train_items, eval_items = _split_language(lang, lexicon, n_train, n_eval, rng)
        ids = (f"{SOURCE}-{lang}-{i:05d}" for i in range(n_train + 2 * n_eval))
        train.extend(_plain(item, next(ids)) for item in train_items)
        answers = _family_answers(lexicon)
        eval_mc[lang] = [_mc_record(_plain(item, next(ids)), answers[item["family"]], rng) for item in eval_items]
        eval_gen[lang] = [_plain(item, next(ids)) for item in eval_items]
    random.Random(f"{seed}-train").shuffle(train)
    return {"train": train, "eval_mc": eval_mc, "eval_gen": eval_gen}


# --- pretraining corpus ---------------------------------------------------------------------------------------------


def _statements(lexicon: dict) -> dict[str, list[str]]:
    return {
        family: [
            _render(text, fact) for fact in facts(family, lexicon) for text in lexicon["families"][family]["statements"]
        ]
        for family in FAMILIES
    }


def _number_sequences(lexicon: dict) -> list[str]:
    """Counting runs in words ("three, four, five"), so number words are also seen in order."""
    words, sep = lexicon["number_words"], lexicon["list_separator"]
    return [
        sep.join(words[start : start + length])
        for length in SEQUENCE_LENGTHS
        for start in range(N_NUMBERS - length + 1)
    ]


def pretraining_corpus(
    languages: list[str], lexicon_dir: str | Path, seed: int, n_sentences_per_language: int
) -> list[str]:
    """Declarative sentences of the lexicons' facts plus counting runs, n per language, shuffled together.

    Each language draws evenly from its families and the counting runs, so every fact family and every script is
    in the corpus that trains the tiny model's tokenizer and pretrains it.
    """
    if n_sentences_per_language < 0:
        raise ValueError(f"n_sentences_per_language must be >= 0, got {n_sentences_per_language}")
    corpus: list[str] = []
    for lang in languages:
        lexicon = load_lexicon(lang, lexicon_dir)
        groups = {**_statements(lexicon), "number_sequence": _number_sequences(lexicon)}
        corpus.extend(_take(groups, n_sentences_per_language, random.Random(f"{seed}-corpus-{lang}")))
    random.Random(f"{seed}-corpus").shuffle(corpus)
    return corpus


def question_answer_corpus(languages: list[str], lexicon_dir: str | Path, seed: int, n_per_language: int) -> list[str]:
    """The facts as "Q: ...\nA:\n..." texts in every phrasing, n per language, shuffled together.

    A pretrained LLM knows facts and answers questions in some layout before it is instruction-tuned; this gives
    the tiny base that knowledge in a layout other than the instruction prompt, so finetuning has the format (and
    the mapping to it) to teach, as in the paper's setting.
    """
    corpus: list[str] = []
    for lang in languages:
        items = all_items(lang, load_lexicon(lang, lexicon_dir))
        rng = random.Random(f"{seed}-qa-{lang}")
        picked = _take(_by_family(items), n_per_language, rng)
        # The answer starts a line, as it does after the instruction prompt: the same tokens, a different layout.
        corpus.extend(f"Q: {item['instruction']}\nA:\n{item['output']}" for item in picked)
    random.Random(f"{seed}-qa").shuffle(corpus)
    return corpus
