"""One prompt format per model, applied identically to training data and to the local evaluation tasks.

`plain` is an Alpaca-style layout; `chat_template` uses the tokenizer's own chat template. The response starts
right after the prompt, so the loss mask in training and the context/continuation split in lm-eval agree.
"""

from __future__ import annotations

PLAIN_WITH_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
PLAIN = "### Instruction:\n{instruction}\n\n### Response:\n"


def format_prompt(instruction: str, input_text: str = "", prompt_format: str = "plain", tokenizer=None) -> str:
    if prompt_format == "plain":
        template = PLAIN_WITH_INPUT if input_text else PLAIN
        return template.format(instruction=instruction, input=input_text)
    if prompt_format == "chat_template":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompt_format chat_template: the model's tokenizer has no chat template")
        content = f"{instruction}\n\n{input_text}" if input_text else instruction
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
    raise ValueError(f"prompt_format: expected plain or chat_template, got {prompt_format!r}")
