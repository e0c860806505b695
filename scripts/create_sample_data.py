#!/usr/bin/env python3
"""Create sample Chinese Q&A data (alpaca format: instruction/input/output) for the pipeline.

The guide's command; `ftkit sample` runs the same code (ftkit/commands/create_sample_data.py).
"""
from ftkit.commands.create_sample_data import main
from ftkit.core.cli import run

if __name__ == "__main__":
    run(main)
