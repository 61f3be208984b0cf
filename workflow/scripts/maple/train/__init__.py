"""Model loading and one LoRA / QLoRA finetune: parameters, trainer, run directories, model sources."""
