#!/usr/bin/env python3
"""Did fine-tuning cost general ability? Multiple-choice accuracy of the base model, the fine-tuned model and

The guide's command; `ftkit eval-general` runs the same code (ftkit/commands/eval_general.py).
"""
from ftkit.commands.eval_general import main
from ftkit.core.cli import run

if __name__ == "__main__":
    run(main)
