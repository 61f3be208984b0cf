"""The `translate` backend: machine-translated instruction data, Bactrian-X style.

English (or other source-language) seed instructions are translated into each target language with a seq2seq MT
model of the NLLB-200 / M2M100 family: the tokenizer's `src_lang` is set to the source code and generation is
forced to start with the target language token (`forced_bos_token_id`). The response is either translated too
(`responses: translate`) or written by a teacher causal LM from the translated instruction (`responses: teacher`,
as Bactrian-X does with ChatGPT). Records of the source language itself are the seed records, untranslated.
Candidates pass the shared filters (maple.data.filters) until n_per_language records are kept per language.
Translation is greedy or beam search, teacher responses seeded per language and round: deterministic.

Keys: the dataset's config block, listed with their types and defaults in workflow/schemas/config.schema.yaml
(datasets, backend translate).

Records: {"id": "translate-<lang>-<nnnnn>", "instruction", "input", "output", "lang", "source"}.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random

from maple.data.filters import (
    RecordFilter,
    SpecError,
    language_code,
    language_seed,
    n_per_language,
    normalize,
    spec_value,
)
from maple.data.generate import (
    RESPONSE_SAMPLING_DEFAULTS,
    RESPONSE_TEMPLATE,
    _check_template,
    _positive_int,
    _positive_number,
    clean_response,
    generate_texts,
    load_teacher,
    resolve_prompt_format,
    response_prompts,
    sampling_kwargs,
)
from maple.data.translator import language_token_id, load_translator, translate_texts
from maple.hub.access import load_dataset
from maple.runtime.records import check_record

BACKEND = "translate"
log = logging.getLogger(__name__)

DEFAULT_SOURCE_CODES = {"nllb": {"en": "eng_Latn"}, "m2m100": {"en": "en"}}
FILTER_DEFAULTS = {"dedup": True, "min_chars": 1, "max_chars": None, "script_filter": True, "min_script_ratio": 0.5}
FIELDS = ("instruction", "input", "output")


# --- Seed data -----------------------------------------------------------------------------------------------------


def _read_local_json(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if data is None:
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise SpecError(f"{BACKEND} backend: seed_data {path}:{number}: not JSON ({exc})") from None
        return rows
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise SpecError(f"{BACKEND} backend: seed_data {path}: expected a JSON list of objects or JSON lines")
    return data


def load_seed_records(spec: dict) -> list[dict]:
    """The seed examples as {"instruction", "input", "output"} string dicts, in file order."""
    source = spec_value(spec, "seed_data", BACKEND, types=str)
    columns = {f: f for f in FIELDS}
    columns.update(spec_value(spec, "seed_columns", BACKEND, {}, dict))
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise SpecError(f"{BACKEND} backend: seed_columns: unknown keys {unknown} (known: {list(FIELDS)})")
    path = os.path.expanduser(source)
    if os.path.isfile(path) and path.endswith((".json", ".jsonl")):
        rows = _read_local_json(path)
    else:
        data = load_dataset(
            source,
            spec_value(spec, "seed_subset", BACKEND, None, str),
            spec_value(spec, "seed_split", BACKEND, "train", str),
            revision=spec_value(spec, "seed_revision", BACKEND, None, str),
            trust_remote_code=spec_value(spec, "trust_remote_code", BACKEND, False, bool),
            kind="seed dataset",
        )
        if hasattr(data, "keys") and not hasattr(data, "column_names"):
            raise SpecError(f"{BACKEND} backend: seed_data {source!r} has splits {sorted(data)}: set seed_split")
        rows = data.to_list()
    records = []
    for number, row in enumerate(rows):
        if not isinstance(row, dict):
            raise SpecError(f"{BACKEND} backend: seed_data {source!r}: row {number} is not an object")
        record = {}
        for field in FIELDS:
            column = columns[field]
            if column is None:
                record[field] = ""
                continue
            if column not in row:
                if field == "input":
                    record[field] = ""
                    continue
                raise SpecError(
                    f"{BACKEND} backend: seed_data {source!r}: row {number} lacks the column "
                    f"{column!r} (map it with seed_columns.{field}; columns: {sorted(row)})"
                )
            value = row[column]
            record[field] = "" if value is None else str(value).strip()
        if record["instruction"] and record["output"]:
            records.append(record)
    if not records:
        raise SpecError(f"{BACKEND} backend: seed_data {source!r} holds no example with an instruction and output")
    return records


# --- The backend ---------------------------------------------------------------------------------------------------


def build(spec: dict, languages: dict[str, dict], seed: int) -> list[dict]:
    import torch

    n = n_per_language(spec, BACKEND)
    code_key = spec_value(spec, "code_key", BACKEND, "nllb", str, ("nllb", "m2m100"))
    responses = spec_value(spec, "responses", BACKEND, "translate", str, ("translate", "teacher"))
    parallel = spec_value(spec, "parallel", BACKEND, True, bool)
    batch_size = _positive_int(spec, "batch_size", 16, BACKEND)
    max_new_tokens = _positive_int(spec, "max_new_tokens", 256, BACKEND)
    max_source_tokens = _positive_int(spec, "max_source_tokens", 512, BACKEND)
    num_beams = _positive_int(spec, "num_beams", 1, BACKEND)
    split_lines = spec_value(spec, "split_lines", BACKEND, True, bool)
    oversample = _positive_number(spec, "oversample", 1.2, BACKEND)
    max_rounds = _positive_int(spec, "max_rounds", 4, BACKEND)
    source_lang = spec_value(spec, "source_lang", BACKEND, "en", str)
    source_code = spec_value(spec, "source_code", BACKEND, None, str)
    if source_code is None:
        source_code = ((languages.get(source_lang) or {}).get("codes") or {}).get(code_key) or DEFAULT_SOURCE_CODES[
            code_key
        ].get(source_lang)
        if source_code is None:
            raise SpecError(f"{BACKEND} backend: source_code: give the {code_key} code of source_lang {source_lang!r}")
    target_codes = {
        lang: language_code(languages, lang, code_key, BACKEND) for lang in sorted(languages) if lang != source_lang
    }
    translator_name = spec_value(spec, "translator", BACKEND, types=str)
    source = spec_value(spec, "source", BACKEND, f"translate:{translator_name}", str)
    record_filter = RecordFilter.from_spec(spec, languages, **FILTER_DEFAULTS)
    if responses == "teacher":
        spec_value(spec, "teacher", BACKEND, types=str)
        response_sampling = sampling_kwargs(spec, "response_sampling", RESPONSE_SAMPLING_DEFAULTS, BACKEND)
        response_template = _check_template(
            spec_value(spec, "response_template", BACKEND, RESPONSE_TEMPLATE, str),
            "response_template",
            ("language", "instruction"),
        )
        min_new_tokens = _positive_int(spec, "min_new_tokens", 0, BACKEND, minimum=0)

    seeds = load_seed_records(spec)
    unique, seen = [], set()
    for record in seeds:
        key = (normalize(record["instruction"]), normalize(record["input"]))
        if key not in seen:
            seen.add(key)
            unique.append(record)

    model, tokenizer = load_translator(spec)
    if tokenizer.pad_token is None:
        raise SpecError(f"{BACKEND} backend: translator {translator_name!r}: its tokenizer has no pad token")
    language_token_id(tokenizer, source_code, "source")
    if responses == "teacher":
        teacher, teacher_tokenizer = load_teacher(spec, BACKEND)
        prompt_format = resolve_prompt_format(spec, teacher_tokenizer, BACKEND)
        extra = {"min_new_tokens": min_new_tokens} if min_new_tokens else {}

    records: list[dict] = []
    for lang in sorted(languages):
        language = languages[lang].get("name", lang)
        order = list(range(len(unique)))
        random.Random(language_seed(seed, "" if parallel else lang, "pool")).shuffle(order)
        kept: list[dict] = []
        position = 0
        for round_index in range(max_rounds):
            missing = n - len(kept)
            if missing <= 0 or position >= len(order):
                break
            take = order[position : position + math.ceil(missing * oversample)]
            position += len(take)
            batch = [dict(unique[i]) for i in take]
            if lang != source_lang:
                fields = ("instruction", "input") + (("output",) if responses == "translate" else ())
                texts = [r[f] for r in batch for f in fields]
                out = iter(
                    translate_texts(
                        model,
                        tokenizer,
                        texts,
                        source_code,
                        target_codes[lang],
                        batch_size,
                        max_new_tokens,
                        max_source_tokens,
                        num_beams,
                        split_lines,
                    )
                )
                for r in batch:
                    for f in fields:
                        r[f] = next(out)
                if responses == "teacher":
                    torch.manual_seed(language_seed(seed, lang, "responses", round_index))
                    prompts = response_prompts(
                        [(r["instruction"], r["input"]) for r in batch],
                        language,
                        response_template,
                        prompt_format,
                        teacher_tokenizer,
                    )
                    answers = generate_texts(
                        teacher,
                        teacher_tokenizer,
                        prompts,
                        batch_size,
                        prompt_format != "chat_template",
                        max_new_tokens=max_new_tokens,
                        **response_sampling,
                        **extra,
                    )
                    for r, answer in zip(batch, answers):
                        r["output"] = clean_response(answer)
            for r in batch:
                record = {"id": "", **r, "lang": lang, "source": source}
                if record_filter.accept(record):
                    record["id"] = f"{BACKEND}-{lang}-{len(kept):05d}"
                    kept.append(check_record(record))
                    if len(kept) == n:
                        break
        if not kept:
            raise RuntimeError(
                f"translate backend: no usable {lang} record (filtered out: "
                f"{record_filter.summary(lang)}); check the translator, code_key and the filters "
                f"(min_chars, script_filter)"
            )
        if len(kept) < n:
            log.warning(
                "translate backend: %s: %d of %d records (seed examples: %d; filtered out: %s)",
                lang,
                len(kept),
                n,
                len(unique),
                record_filter.summary(lang),
            )
        records.extend(kept)
    return records
