"""The training stage: LoRA / QLoRA with TRL and PEFT, on one GPU, several, or several hosts."""
