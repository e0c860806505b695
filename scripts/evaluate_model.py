#!/usr/bin/env python3
"""Evaluate a fine-tuned model against its base: batch metrics on the test split, or interactively.

The guide's command; `ftkit eval` runs the same code (ftkit/commands/evaluate_model.py).
"""
from ftkit.commands.evaluate_model import main
from ftkit.core.cli import run

if __name__ == "__main__":
    run(main)
