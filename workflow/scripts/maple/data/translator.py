"""Machine translation with a seq2seq model of the NLLB-200 / M2M100 family: the tokenizer's `src_lang` set to the
source code and generation forced to start with the target language token (`forced_bos_token_id`); greedy or beam
search, batched, optionally line by line. Used by the translate backend."""

from __future__ import annotations

from maple.data.filters import SpecError
from maple.data.generate import resolve_device, resolve_dtype
from maple.hub.access import load_seq2seq_lm, load_tokenizer

BACKEND = "translate"


def language_token_id(tokenizer, code: str, what: str = "target") -> int:
    """The id of the language token of `code` (NLLB: "deu_Latn"; M2M100: "de" -> "__de__")."""
    candidates = []
    if hasattr(tokenizer, "get_lang_id"):
        try:
            candidates.append(tokenizer.get_lang_id(code))
        except (KeyError, ValueError, AttributeError):
            pass
    for token in (code, f"__{code}__"):
        candidates.append(tokenizer.convert_tokens_to_ids(token))
    for token_id in candidates:
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            return token_id
    raise SpecError(
        f"{BACKEND} backend: the translator's tokenizer has no language token for the {what} code "
        f"{code!r}: check code_key and the languages table's codes"
    )


def translate_ids(
    model,
    tokenizer,
    texts: list[str],
    source_code: str,
    target_code: str,
    batch_size: int,
    max_new_tokens: int,
    max_source_tokens: int = 512,
    num_beams: int = 1,
):
    """Generated token ids per batch (each a tensor whose sequences start with the forced target token)."""
    import torch

    tokenizer.src_lang = source_code
    forced = language_token_id(tokenizer, target_code)
    batches = []
    for start in range(0, len(texts), batch_size):
        encoded = tokenizer(
            texts[start : start + batch_size],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=max_source_tokens,
        )
        encoded = {k: v.to(model.device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            batches.append(
                model.generate(
                    **encoded,
                    forced_bos_token_id=forced,
                    max_new_tokens=max_new_tokens,
                    num_beams=num_beams,
                    do_sample=False,
                )
            )
    return batches


def translate_texts(
    model,
    tokenizer,
    texts: list[str],
    source_code: str,
    target_code: str,
    batch_size: int,
    max_new_tokens: int,
    max_source_tokens: int = 512,
    num_beams: int = 1,
    split_lines: bool = True,
) -> list[str]:
    """Each text translated; with split_lines every non-empty line separately, blank lines and indentation kept.
    Identical strings are translated once."""
    if split_lines:
        units = sorted({line.strip() for text in texts for line in text.splitlines() if line.strip()})
    else:
        units = sorted({text.strip() for text in texts if text.strip()})
    translated: dict[str, str] = {}
    if units:
        batches = translate_ids(
            model, tokenizer, units, source_code, target_code, batch_size, max_new_tokens, max_source_tokens, num_beams
        )
        outputs = [text for ids in batches for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]
        translated = {unit: " ".join(out.split()) for unit, out in zip(units, outputs)}

    def one(text: str) -> str:
        if not split_lines:
            return translated.get(text.strip(), "")
        lines = []
        for line in text.splitlines():
            if line.strip():
                indent = line[: len(line) - len(line.lstrip())]
                lines.append(indent + translated[line.strip()])
            else:
                lines.append("")
        return "\n".join(lines).strip()

    return [one(text) for text in texts]


def load_translator(settings):
    """(model, tokenizer) of the MT model of translate settings (maple.data.settings.TranslateSettings)."""
    source, revision, trust = settings.translator, settings.translator_revision, settings.trust_remote_code
    device = resolve_device(settings)
    tokenizer = load_tokenizer(source, revision=revision, trust_remote_code=trust, kind="translator tokenizer")
    model = load_seq2seq_lm(
        source,
        revision=revision,
        trust_remote_code=trust,
        kind="translator model",
        dtype=resolve_dtype(settings, device),
    )
    model.to(device)
    model.eval()
    return model, tokenizer
