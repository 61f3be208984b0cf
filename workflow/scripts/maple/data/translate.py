"""The `translate` backend: machine-translated instruction data, Bactrian-X style.

English (or other source-language) seed instructions are translated into each target language with a seq2seq MT
model of the NLLB-200 / M2M100 family: the tokenizer's `src_lang` is set to the source code and generation is
forced to start with the target language token (`forced_bos_token_id`). The response is either translated too
(`responses: translate`) or written by a teacher causal LM from the translated instruction (`responses: teacher`,
as Bactrian-X does with ChatGPT). Records of the source language itself are the seed records, untranslated.
Candidates pass the shared filters (maple.data.filters) until n_per_language records are kept per language.
Translation is greedy or beam search, teacher responses seeded per language and round: deterministic.

Keys: the dataset's config block, listed with their types and defaults in workflow/schemas/config.schema.yaml
(datasets, backend translate), read once into maple.data.settings.TranslateSettings.

Records: {"id": "translate-<lang>-<nnnnn>", "instruction", "input", "output", "lang", "source"}.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random

from maple.data.filters import SpecError, language_code, language_seed, normalize
from maple.data.generate import (
    _check_template,
    clean_response,
    generate_texts,
    load_teacher,
    resolve_prompt_format,
    response_prompts,
)
from maple.data.settings import TranslateSettings
from maple.data.translator import language_token_id, load_translator, translate_texts
from maple.hub.access import load_dataset
from maple.runtime.records import check_record

BACKEND = "translate"
log = logging.getLogger(__name__)

DEFAULT_SOURCE_CODES = {"nllb": {"en": "eng_Latn"}, "m2m100": {"en": "en"}}
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


def load_seed_records(spec: dict | TranslateSettings) -> list[dict]:
    """The seed examples as {"instruction", "input", "output"} string dicts, in file order."""
    settings = spec if isinstance(spec, TranslateSettings) else TranslateSettings.from_spec(spec)
    source = settings.seed_data
    columns = {**{f: f for f in FIELDS}, **settings.seed_columns}
    path = os.path.expanduser(source)
    if os.path.isfile(path) and path.endswith((".json", ".jsonl")):
        rows = _read_local_json(path)
    else:
        data = load_dataset(
            source,
            settings.seed_subset,
            settings.seed_split,
            revision=settings.seed_revision,
            trust_remote_code=settings.trust_remote_code,
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


def build(spec: dict, languages: dict[str, dict], seed: int, produce: list[str] | None = None) -> list[dict]:
    """The dataset's records for the languages in `produce` (default: every language), each language seeded on its
    own, so that the records of a part of the languages (a synth_part job) are those of the whole."""
    import torch

    settings = TranslateSettings.from_spec(spec)
    n, code_key, responses = settings.n_per_language, settings.code_key, settings.responses
    source_lang, source_code = settings.source_lang, settings.source_code
    if source_code is None:
        source_code = ((languages.get(source_lang) or {}).get("codes") or {}).get(code_key) or DEFAULT_SOURCE_CODES[
            code_key
        ].get(source_lang)
        if source_code is None:
            raise SpecError(f"{BACKEND} backend: source_code: give the {code_key} code of source_lang {source_lang!r}")
    target_codes = {
        lang: language_code(languages, lang, code_key, BACKEND) for lang in sorted(languages) if lang != source_lang
    }
    translator_name, source = settings.translator, settings.records_source
    record_filter = settings.record_filter(languages)
    if responses == "teacher":
        response_sampling = settings.response_sampling.generate_kwargs()
        response_template = _check_template(
            settings.response_template, "response_template", ("language", "instruction")
        )

    seeds = load_seed_records(settings)
    unique, seen = [], set()
    for record in seeds:
        key = (normalize(record["instruction"]), normalize(record["input"]))
        if key not in seen:
            seen.add(key)
            unique.append(record)

    model, tokenizer = load_translator(settings)
    if tokenizer.pad_token is None:
        raise SpecError(f"{BACKEND} backend: translator {translator_name!r}: its tokenizer has no pad token")
    language_token_id(tokenizer, source_code, "source")
    if responses == "teacher":
        teacher, teacher_tokenizer = load_teacher(settings, BACKEND)
        prompt_format = resolve_prompt_format(settings.prompt_format, teacher_tokenizer)
        extra = {"min_new_tokens": settings.min_new_tokens} if settings.min_new_tokens else {}

    records: list[dict] = []
    for lang in sorted(produce or languages):
        language = languages[lang].get("name", lang)
        order = list(range(len(unique)))
        random.Random(language_seed(seed, "" if settings.parallel else lang, "pool")).shuffle(order)
        kept: list[dict] = []
        position = 0
        for round_index in range(settings.max_rounds):
            missing = n - len(kept)
            if missing <= 0 or position >= len(order):
                break
            take = order[position : position + math.ceil(missing * settings.oversample)]
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
                        settings.batch_size,
                        settings.max_new_tokens,
                        settings.max_source_tokens,
                        settings.num_beams,
                        settings.split_lines,
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
                        settings.batch_size,
                        prompt_format != "chat_template",
                        max_new_tokens=settings.max_new_tokens,
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
