"""Snakemake rule build_tiny_model: tokenizer + tiny Llama pretrained on the demo corpus (offline)."""

import json

from maple.data.template import pretraining_corpus, question_answer_corpus
from maple.hub.model_files import require_model_files
from maple.runtime.jobs import logged_to, use_threads
from maple.train.tiny_model import build_tiny_llama


def main(lexicon_dir: str, languages: list[str], out_dir: str, seed: int, spec: dict) -> list[dict]:
    corpus = pretraining_corpus(languages, lexicon_dir, seed, spec.get("pretrain_sentences_per_language", 300))
    corpus += question_answer_corpus(languages, lexicon_dir, seed, spec.get("pretrain_qa_per_language", 300))
    return build_tiny_llama(
        corpus,
        out_dir,
        seed,
        vocab_size=spec.get("vocab_size", 2000),
        hidden_size=spec.get("hidden_size", 128),
        intermediate_size=spec.get("intermediate_size", 256),
        num_hidden_layers=spec.get("num_hidden_layers", 2),
        num_attention_heads=spec.get("num_attention_heads", 4),
        max_position_embeddings=spec.get("max_position_embeddings", 128),
        pretrain_epochs=spec.get("pretrain_epochs", 4),
        learning_rate=spec.get("learning_rate", 3e-3),
    )


if __name__ == "__main__":
    # it pretrains a model: like a finetune, the job claims its GPU (rule build_tiny_model: resources gpu)
    gpus = int(snakemake.resources.get("gpu", 0)) or None  # noqa: F821
    with logged_to(snakemake.log[0], gpus=gpus):  # noqa: F821
        use_threads(snakemake.threads)  # noqa: F821
        history = main(
            snakemake.params.lexicon_dir,  # noqa: F821
            snakemake.params.languages,  # noqa: F821
            snakemake.output[0],  # noqa: F821
            snakemake.params.seed,  # noqa: F821
            snakemake.params.spec,  # noqa: F821
        )
        require_model_files(f"models.{snakemake.wildcards.model}", snakemake.output[0])  # noqa: F821
        print(json.dumps(history[-1:] if history else []))
