"""The `generate` backend: self-instruct data from a teacher LLM, MultiAlpaca style.

For each target language the teacher (a causal LM, through transformers) is first prompted with a few example
instructions to write a new instruction in that language, then prompted with that instruction to write the
response. Candidates pass the shared filters (maple.data.filters: dedup, length, script) until n_per_language
records are kept or max_rounds rounds have run. Generation is batched with left padding; sampling is seeded per
language and round, so the same spec and seed give the same records (on the same hardware and library versions).

Keys: the dataset's config block, listed with their types and defaults in workflow/schemas/config.schema.yaml
(datasets, backend generate), read once into maple.data.settings.GenerateSettings.

Records: {"id": "generate-<lang>-<nnnnn>", "instruction", "input": "", "output", "lang", "source"}.
"""

from __future__ import annotations

import logging
import math
import random
import re

from maple.data.filters import SpecError, language_seed
from maple.data.settings import GenerateSettings
from maple.hub.access import load_causal_lm, load_tokenizer
from maple.runtime.prompts import format_prompt
from maple.runtime.records import check_record

BACKEND = "generate"
log = logging.getLogger(__name__)

DEFAULT_SEED_PROMPTS = [
    "Give three tips for staying healthy.",
    "Explain why the sky is blue.",
    "Write a short poem about the sea.",
    "Summarize the plot of a famous novel in two sentences.",
    "List five common fruits and their colours.",
    "Describe how to make a cup of tea.",
    "What are the advantages of learning a second language?",
    "Translate the sentence 'The weather is nice today' into French.",
    "Suggest a name for a new bakery and explain your choice.",
    "Explain the difference between weather and climate.",
    "Write a polite email declining a meeting invitation.",
    "Classify the following animals as mammals or birds: eagle, whale, sparrow, bat.",
]

STOP_MARKERS = ("### Instruction", "### Input", "### Response", "\n###")
_NUMBERING = re.compile(r"^\s*(?:\d+\s*[.):]|[-*\u2022])\s*")


# --- Teacher loading and batched generation (also used by the translate backend) ----------------------------------


def resolve_device(settings) -> str:
    import torch

    if settings.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return settings.device


def resolve_dtype(settings, device: str):
    import torch

    if settings.dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, settings.dtype)


def load_teacher(settings, backend: str):
    """(model, tokenizer) of the teacher causal LM of a backend's settings, ready for batched left-padded
    generation."""
    source, revision, trust = settings.teacher, settings.revision, settings.trust_remote_code
    device = resolve_device(settings)
    tokenizer = load_tokenizer(source, revision=revision, trust_remote_code=trust, kind="teacher tokenizer")
    model = load_causal_lm(
        source, revision=revision, trust_remote_code=trust, kind="teacher model", dtype=resolve_dtype(settings, device)
    )
    model.to(device)
    model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise SpecError(f"{backend} backend: teacher {source!r}: its tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def generate_texts(
    model, tokenizer, prompts: list[str], batch_size: int, add_special_tokens: bool = True, **generate_kwargs
) -> list[str]:
    """The continuation of each prompt (special tokens removed), generated in left-padded batches."""
    import torch

    outputs: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        encoded = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
        encoded = {k: v.to(model.device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            generated = model.generate(**encoded, pad_token_id=tokenizer.pad_token_id, **generate_kwargs)
        new_tokens = generated[:, encoded["input_ids"].shape[1] :]
        outputs.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    return outputs


def resolve_prompt_format(prompt_format: str, tokenizer) -> str:
    """auto: the tokenizer's chat template when it has one, else plain."""
    if prompt_format == "auto":
        return "chat_template" if getattr(tokenizer, "chat_template", None) else "plain"
    return prompt_format


def wrap_prompt(text: str, prompt_format: str, tokenizer) -> str:
    return format_prompt(text, "", prompt_format, tokenizer)


def clean_instruction(text: str) -> str:
    """The first non-empty line of a generated instruction, without list numbering, quotes or prompt markers."""
    for marker in STOP_MARKERS:
        text = text.split(marker)[0]
    for line in text.splitlines():
        line = _NUMBERING.sub("", line).strip().strip("\"'\u201c\u201d\u00ab\u00bb").strip()
        if line:
            return line
    return ""


def clean_response(text: str) -> str:
    for marker in STOP_MARKERS:
        text = text.split(marker)[0]
    return text.strip()


def response_prompts(
    instructions: list[tuple[str, str]], language: str, template: str, prompt_format: str, tokenizer
) -> list[str]:
    """Prompts asking the teacher to answer each (instruction, input) in `language`."""
    prompts = []
    for instruction, input_text in instructions:
        text = template.format(language=language, instruction=instruction)
        prompts.append(format_prompt(text, input_text, prompt_format, tokenizer))
    return prompts


def _check_template(template: str, key: str, fields: tuple[str, ...]) -> str:
    try:
        template.format(**{f: "" for f in fields})
    except (KeyError, IndexError, ValueError) as exc:
        raise SpecError(
            f"{BACKEND} backend: {key}: bad template (placeholders allowed: "
            f"{', '.join('{' + f + '}' for f in fields)}): {exc}"
        ) from None
    return template


def load_seed_prompts(path: str | None) -> list[dict]:
    """[{"instruction", "lang"}] from a local JSONL file, or the built-in English examples."""
    import json
    import os

    if path is None:
        return [{"instruction": text, "lang": "en"} for text in DEFAULT_SEED_PROMPTS]
    if not os.path.isfile(path):
        raise SpecError(f"{BACKEND} backend: seed_prompts: no such file {path!r}")
    prompts = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SpecError(f"{BACKEND} backend: seed_prompts {path}:{number}: not JSON ({exc})") from None
            text = row.get("instruction") if isinstance(row, dict) else None
            if not isinstance(text, str) or not text.strip():
                raise SpecError(
                    f'{BACKEND} backend: seed_prompts {path}:{number}: needs a non-empty "instruction" string'
                )
            prompts.append({"instruction": text.strip(), "lang": str(row.get("lang", ""))})
    if not prompts:
        raise SpecError(f"{BACKEND} backend: seed_prompts: {path!r} holds no instruction")
    return prompts


# --- The backend ---------------------------------------------------------------------------------------------------


def build(spec: dict, languages: dict[str, dict], seed: int, produce: list[str] | None = None) -> list[dict]:
    """The dataset's records for the languages in `produce` (default: every language), each language seeded on its
    own, so that the records of a part of the languages (a synth_part job) are those of the whole."""
    import torch

    settings = GenerateSettings.from_spec(spec)
    n, batch_size, max_rounds = settings.n_per_language, settings.batch_size, settings.max_rounds
    instruction_sampling = settings.sampling.generate_kwargs()
    response_sampling = settings.response_sampling.generate_kwargs()
    instruction_template = _check_template(
        settings.instruction_template, "instruction_template", ("language", "examples")
    )
    response_template = _check_template(settings.response_template, "response_template", ("language", "instruction"))
    seed_prompts = load_seed_prompts(settings.seed_prompts)
    record_filter = settings.record_filter(languages)
    teacher_name, source = settings.teacher, settings.records_source

    model, tokenizer = load_teacher(settings, BACKEND)
    prompt_format = resolve_prompt_format(settings.prompt_format, tokenizer)
    add_special = prompt_format != "chat_template"  # a chat template already writes the BOS token
    extra = {"min_new_tokens": settings.min_new_tokens} if settings.min_new_tokens else {}

    records: list[dict] = []
    for lang in sorted(produce or languages):
        language = languages[lang].get("name", lang)
        pool = [p["instruction"] for p in seed_prompts if p["lang"] == lang] or [p["instruction"] for p in seed_prompts]
        kept: list[dict] = []
        for round_index in range(max_rounds):
            missing = n - len(kept)
            if missing <= 0:
                break
            k = math.ceil(missing * settings.oversample)
            rng = random.Random(language_seed(seed, lang, "examples", round_index))
            prompts = []
            for _ in range(k):
                examples = rng.sample(pool, min(settings.n_examples, len(pool)))
                listing = "\n".join(f"{i}. {text}" for i, text in enumerate(examples, 1))
                prompts.append(
                    wrap_prompt(
                        instruction_template.format(language=language, examples=listing), prompt_format, tokenizer
                    )
                )
            torch.manual_seed(language_seed(seed, lang, "instructions", round_index))
            raw = generate_texts(
                model,
                tokenizer,
                prompts,
                batch_size,
                add_special,
                max_new_tokens=settings.instruction_max_new_tokens,
                **instruction_sampling,
                **extra,
            )
            instructions = [text for text in (clean_instruction(r) for r in raw) if text]
            if not instructions:
                continue
            torch.manual_seed(language_seed(seed, lang, "responses", round_index))
            answers = generate_texts(
                model,
                tokenizer,
                response_prompts(
                    [(i, "") for i in instructions], language, response_template, prompt_format, tokenizer
                ),
                batch_size,
                add_special,
                max_new_tokens=settings.max_new_tokens,
                **response_sampling,
                **extra,
            )
            for instruction, answer in zip(instructions, answers):
                record = {
                    "id": "",
                    "instruction": instruction,
                    "input": "",
                    "output": clean_response(answer),
                    "lang": lang,
                    "source": source,
                }
                if record_filter.accept(record):
                    record["id"] = f"{BACKEND}-{lang}-{len(kept):05d}"
                    kept.append(check_record(record))
                    if len(kept) == n:
                        break
        if not kept:
            raise RuntimeError(
                f"generate backend: the teacher {teacher_name!r} produced no usable {lang} record in "
                f"{max_rounds} rounds (filtered out: {record_filter.summary(lang)}); relax the filters "
                f"(min_chars, script_filter) or use a stronger teacher"
            )
        if len(kept) < n:
            log.warning(
                "generate backend: %s: %d of %d records after %d rounds (filtered out: %s)",
                lang,
                len(kept),
                n,
                max_rounds,
                record_filter.summary(lang),
            )
        records.extend(kept)
    return records
