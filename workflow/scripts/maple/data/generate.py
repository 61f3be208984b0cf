"""The `generate` backend: self-instruct data from a teacher LLM, MultiAlpaca style.

For each target language the teacher (a causal LM, through transformers) is first prompted with a few example
instructions to write a new instruction in that language, then prompted with that instruction to write the
response. Candidates pass the shared filters (maple.data.filters: dedup, length, script) until n_per_language
records are kept or max_rounds rounds have run. Generation is batched with left padding; sampling is seeded per
language and round, so the same spec and seed give the same records (on the same hardware and library versions).

Keys: the dataset's config block, listed with their types and defaults in workflow/schemas/config.schema.yaml
(datasets, backend generate).

Records: {"id": "generate-<lang>-<nnnnn>", "instruction", "input": "", "output", "lang", "source"}.
"""

from __future__ import annotations

import logging
import math
import random
import re

from maple.data.filters import RecordFilter, SpecError, language_seed, n_per_language, spec_value
from maple.hub.access import load_causal_lm, load_tokenizer
from maple.runtime.prompts import format_prompt
from maple.runtime.records import check_record

BACKEND = "generate"
log = logging.getLogger(__name__)

INSTRUCTION_TEMPLATE = (
    "Write one new task instruction in {language}. It must be different from the examples, self-contained, "
    "and written entirely in {language}.\n\nExamples:\n{examples}\n\nReply with the new instruction only."
)
RESPONSE_TEMPLATE = "{instruction}\n\nAnswer in {language}."

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

SAMPLING_DEFAULTS = {"do_sample": True, "temperature": 0.7, "top_p": 0.9}
RESPONSE_SAMPLING_DEFAULTS = {"do_sample": False, "temperature": 0.7, "top_p": 0.9}
FILTER_DEFAULTS = {"dedup": True, "min_chars": 5, "max_chars": 2000, "script_filter": True, "min_script_ratio": 0.5}
STOP_MARKERS = ("### Instruction", "### Input", "### Response", "\n###")
_NUMBERING = re.compile(r"^\s*(?:\d+\s*[.):]|[-*\u2022])\s*")


# --- Teacher loading and batched generation (also used by the translate backend) ----------------------------------


def resolve_device(spec: dict, backend: str) -> str:
    import torch

    device = spec_value(spec, "device", backend, "auto", str)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(spec: dict, device: str, backend: str):
    import torch

    name = spec_value(spec, "dtype", backend, "auto", str, ("auto", "float32", "bfloat16", "float16"))
    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


def load_teacher(spec: dict, backend: str, key: str = "teacher"):
    """(model, tokenizer) of the causal LM named by spec[key], ready for batched left-padded generation."""
    source = spec_value(spec, key, backend, types=str)
    revision = spec_value(spec, "revision", backend, None, str)
    trust = spec_value(spec, "trust_remote_code", backend, False, bool)
    device = resolve_device(spec, backend)
    tokenizer = load_tokenizer(source, revision=revision, trust_remote_code=trust, kind=f"{key} tokenizer")
    model = load_causal_lm(
        source,
        revision=revision,
        trust_remote_code=trust,
        kind=f"{key} model",
        dtype=resolve_dtype(spec, device, backend),
    )
    model.to(device)
    model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise SpecError(f"{backend} backend: {key} {source!r}: its tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def sampling_kwargs(spec: dict, key: str, defaults: dict, backend: str) -> dict:
    """generate() keyword arguments of a sampling block; temperature/top_p only when sampling."""
    block = spec_value(spec, key, backend, {}, dict)
    unknown = sorted(set(block) - set(defaults))
    if unknown:
        raise SpecError(f"{backend} backend: {key}: unknown keys {unknown} (known: {sorted(defaults)})")
    settings = {**defaults, **block}
    if not isinstance(settings["do_sample"], bool):
        raise SpecError(f"{backend} backend: {key}.do_sample: expected a boolean, got {settings['do_sample']!r}")
    if not settings["do_sample"]:
        return {"do_sample": False}
    for name, low in (("temperature", 0.0), ("top_p", 0.0)):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= low:
            raise SpecError(f"{backend} backend: {key}.{name}: expected a positive number, got {value!r}")
    return {"do_sample": True, "temperature": float(settings["temperature"]), "top_p": float(settings["top_p"])}


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


def resolve_prompt_format(spec: dict, tokenizer, backend: str) -> str:
    fmt = spec_value(spec, "prompt_format", backend, "auto", str, ("auto", "plain", "chat_template"))
    if fmt == "auto":
        return "chat_template" if getattr(tokenizer, "chat_template", None) else "plain"
    return fmt


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


def _positive_int(spec: dict, key: str, default: int, backend: str = BACKEND, minimum: int = 1) -> int:
    value = spec_value(spec, key, backend, default, int)
    if value < minimum:
        raise SpecError(f"{backend} backend: {key}: expected an integer >= {minimum}, got {value}")
    return value


def _positive_number(spec: dict, key: str, default: float, backend: str = BACKEND) -> float:
    value = spec_value(spec, key, backend, default, (int, float))
    if value <= 0:
        raise SpecError(f"{backend} backend: {key}: expected a positive number, got {value}")
    return float(value)


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


def build(spec: dict, languages: dict[str, dict], seed: int) -> list[dict]:
    import torch

    n = n_per_language(spec, BACKEND)
    batch_size = _positive_int(spec, "batch_size", 8)
    max_new_tokens = _positive_int(spec, "max_new_tokens", 256)
    instruction_tokens = _positive_int(spec, "instruction_max_new_tokens", 64)
    min_new_tokens = _positive_int(spec, "min_new_tokens", 0, minimum=0)
    n_examples = _positive_int(spec, "n_examples", 3, minimum=0)
    max_rounds = _positive_int(spec, "max_rounds", 4)
    oversample = _positive_number(spec, "oversample", 1.5)
    instruction_sampling = sampling_kwargs(spec, "sampling", SAMPLING_DEFAULTS, BACKEND)
    response_sampling = sampling_kwargs(spec, "response_sampling", RESPONSE_SAMPLING_DEFAULTS, BACKEND)
    instruction_template = _check_template(
        spec_value(spec, "instruction_template", BACKEND, INSTRUCTION_TEMPLATE, str),
        "instruction_template",
        ("language", "examples"),
    )
    response_template = _check_template(
        spec_value(spec, "response_template", BACKEND, RESPONSE_TEMPLATE, str),
        "response_template",
        ("language", "instruction"),
    )
    seed_prompts = load_seed_prompts(spec_value(spec, "seed_prompts", BACKEND, None, str))
    record_filter = RecordFilter.from_spec(spec, languages, **FILTER_DEFAULTS)
    teacher_name = spec_value(spec, "teacher", BACKEND, types=str)
    source = spec_value(spec, "source", BACKEND, f"generate:{teacher_name}", str)

    model, tokenizer = load_teacher(spec, BACKEND)
    prompt_format = resolve_prompt_format(spec, tokenizer, BACKEND)
    add_special = prompt_format != "chat_template"  # a chat template already writes the BOS token
    extra = {"min_new_tokens": min_new_tokens} if min_new_tokens else {}

    records: list[dict] = []
    for lang in sorted(languages):
        language = languages[lang].get("name", lang)
        pool = [p["instruction"] for p in seed_prompts if p["lang"] == lang] or [p["instruction"] for p in seed_prompts]
        kept: list[dict] = []
        for round_index in range(max_rounds):
            missing = n - len(kept)
            if missing <= 0:
                break
            k = math.ceil(missing * oversample)
            rng = random.Random(language_seed(seed, lang, "examples", round_index))
            prompts = []
            for _ in range(k):
                examples = rng.sample(pool, min(n_examples, len(pool)))
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
                max_new_tokens=instruction_tokens,
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
                max_new_tokens=max_new_tokens,
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
