#!/usr/bin/env python3
"""Build an embedded tiny model (real tokenizer + chat template, random weights), fully offline.

The guide's command; `ftkit tiny-model` runs the same code (ftkit/commands/build_tiny_model.py).
"""
from ftkit.commands.build_tiny_model import main
from ftkit.core.cli import run

if __name__ == "__main__":
    run(main)
