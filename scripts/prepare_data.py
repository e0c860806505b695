#!/usr/bin/env python3
"""Prepare raw Q&A data for training: validate, deduplicate, split into train/validation/test JSONL.

The guide's command; `ftkit data` runs the same code (ftkit/commands/prepare_data.py).
"""
from ftkit.commands.prepare_data import main
from ftkit.core.cli import run

if __name__ == "__main__":
    run(main)
