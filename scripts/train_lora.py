#!/usr/bin/env python3
"""LoRA / QLoRA fine-tuning of a chat model on prepared data (TRL SFTTrainer + PEFT).

The guide's command; `ftkit train` runs the same code (ftkit/commands/train_lora.py).
"""
from ftkit.commands.train_lora import main
from ftkit.core.cli import run

if __name__ == "__main__":
    run(main)
