#!/usr/bin/env python3
"""Merge a LoRA adapter into its base model and save a plain model for GGUF conversion.

The guide's command; `ftkit merge` runs the same code (ftkit/commands/merge_lora.py).
"""
from ftkit.commands.merge_lora import main
from ftkit.core.cli import run

if __name__ == "__main__":
    run(main)
