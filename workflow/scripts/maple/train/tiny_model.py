"""A tiny Llama-architecture base model built offline: a byte-level BPE tokenizer trained on the demo corpus and
a small causal LM pretrained on that corpus with the transformers Trainer, saved with save_pretrained.

The demo needs a base that knows the facts (pretraining on declarative sentences) but not the instruction format,
so that finetuning has something visible to teach.
"""

from __future__ import annotations

import os
import shutil

from maple.runtime.atomic import replacing

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE: every script is representable, frequent words of each language get their own tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=1_000_000,
    )


def make_model(
    tokenizer,
    hidden_size: int,
    intermediate_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    max_position_embeddings: int,
    seed: int,
):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_attention_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def pretrain(
    model, tokenizer, texts: list[str], epochs: float, learning_rate: float, seed: int, max_length: int, work_dir: str
) -> list[dict]:
    """Causal-LM pretraining with the transformers Trainer; returns its log history."""
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    def tokenize(batch):
        return tokenizer([t + tokenizer.eos_token for t in batch["text"]], truncation=True, max_length=max_length)

    dataset = Dataset.from_dict({"text": texts}).map(tokenize, batched=True, remove_columns=["text"])
    args = TrainingArguments(
        output_dir=work_dir,
        num_train_epochs=epochs,
        per_device_train_batch_size=32,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        weight_decay=0.0,
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=not _cuda_available(),
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
    )
    trainer.train()
    return trainer.state.log_history


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def build_tiny_llama(
    corpus: list[str],
    out_dir: str | os.PathLike,
    seed: int,
    vocab_size: int = 2000,
    hidden_size: int = 128,
    intermediate_size: int = 256,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    max_position_embeddings: int = 128,
    pretrain_epochs: float = 6,
    learning_rate: float = 3e-3,
) -> list[dict]:
    """Train the tokenizer, build and pretrain the model, and save both to out_dir atomically."""
    from transformers import set_seed

    set_seed(seed)
    tokenizer = train_tokenizer(corpus, vocab_size)
    model = make_model(
        tokenizer, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, max_position_embeddings, seed
    )
    history = []
    with replacing(out_dir) as tmp_dir:
        if pretrain_epochs > 0:
            history = pretrain(
                model,
                tokenizer,
                corpus,
                pretrain_epochs,
                learning_rate,
                seed,
                max_position_embeddings,
                str(tmp_dir / "trainer"),
            )
        shutil.rmtree(tmp_dir / "trainer", ignore_errors=True)
        model.save_pretrained(tmp_dir)
        tokenizer.save_pretrained(tmp_dir)
    return history
