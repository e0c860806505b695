#!/usr/bin/env python3
"""Merge a LoRA adapter into its base model and save a plain model for GGUF conversion.

The guide's command; `ftkit merge` runs the same code (ftkit/commands/merge_lora.py).
"""
from ftkit.cli import run
from ftkit.commands.merge_lora import main

if __name__ == "__main__":
    run(main)
