"""Tiny models and tokenizers built inside tests, offline, in well under a second each.

Nothing here touches the Hugging Face hub: tokenizers are BPE trained with `tokenizers` on a handful of sentences in
several scripts (byte-level for the causal LM, a real NllbTokenizer for the translator), models are randomly
initialised from small configs and saved with save_pretrained.
"""

from __future__ import annotations

import os
from pathlib import Path

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]

# A few sentences in Latin, Cyrillic, Devanagari and Han script: enough for a small byte-level vocabulary.
CORPUS = [
    "Write a short poem about the sea.",
    "Explain why the sky is blue.",
    "Give three tips for staying healthy.",
    "Schreibe ein kurzes Gedicht über das Meer.",
    "Erkläre, warum der Himmel blau ist.",
    "Напиши короткое стихотворение о море.",
    "Объясни, почему небо голубое.",
    "समुद्र के बारे में एक छोटी कविता लिखें।",
    "आसमान नीला क्यों है, समझाइए।",
    "写一首关于大海的短诗。",
    "解释为什么天空是蓝色的。",
]


def train_tokenizer(texts: list[str] | None = None, vocab_size: int = 400, extra_special_tokens: list[str] = ()):
    """A byte-level BPE PreTrainedTokenizerFast (any script is representable); extra_special_tokens are added
    as additional special tokens (e.g. language codes such as "deu_Latn")."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS + list(extra_special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts or CORPUS, trainer)
    kwargs = {}
    if extra_special_tokens:
        kwargs["additional_special_tokens"] = list(extra_special_tokens)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=512,
        **kwargs,
    )


CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_tiny_llama(
    out_dir: str | os.PathLike,
    seed: int = 0,
    hidden_size: int = 32,
    num_hidden_layers: int = 1,
    texts: list[str] | None = None,
    chat_template: str | None = None,
) -> str:
    """A random tiny LlamaForCausalLM and its tokenizer (with chat_template when given, e.g. CHAT_TEMPLATE), saved
    to out_dir; returns out_dir as a string."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_tokenizer(texts)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return str(out_dir)


def train_nllb_tokenizer(lang_codes: list[str], texts: list[str] | None = None, vocab_size: int = 300):
    """A real transformers NllbTokenizer (Metaspace BPE, language codes as special tokens, `src_lang` prepends the
    source language token) built from a BPE vocabulary trained on a few sentences."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import NllbTokenizer

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False
    )
    bpe.train_from_iterator(texts or CORPUS, trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return NllbTokenizer(
        vocab=model["vocab"],
        merges=merges,
        additional_special_tokens=list(lang_codes),
        src_lang=lang_codes[0],
        model_max_length=512,
    )


def build_tiny_translator(
    out_dir: str | os.PathLike,
    lang_codes: list[str],
    seed: int = 0,
    d_model: int = 32,
    init_std: float = 0.5,
    tokenizer: str = "nllb",
    texts: list[str] | None = None,
) -> str:
    """A random tiny M2M100ForConditionalGeneration (the NLLB-200 / M2M100 architecture) whose tokenizer has the
    language codes as special tokens, so that forced_bos_token_id = convert_tokens_to_ids(code) works as with the
    real models. tokenizer: "nllb" (a real NllbTokenizer; lang_codes[0] is its default src_lang) or "fast" (a
    byte-level PreTrainedTokenizerFast with the codes added). A large init_std makes the random model's output
    depend on its input (with the default 0.02 every input gets the same translation). Returns out_dir."""
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    if tokenizer == "nllb":
        tokenizer = train_nllb_tokenizer(lang_codes, texts)
    elif tokenizer == "fast":
        tokenizer = train_tokenizer(texts, extra_special_tokens=list(lang_codes))
    else:
        raise ValueError(f"tokenizer: expected nllb or fast, got {tokenizer!r}")
    torch.manual_seed(seed)
    config = M2M100Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        init_std=init_std,
    )
    model = M2M100ForConditionalGeneration(config)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return str(out_dir)
