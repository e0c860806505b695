#!/usr/bin/env python3
"""Fill the training report (training_report.md) from the run's artifacts.

The guide's command; `ftkit report` runs the same code (ftkit/commands/make_report.py).
"""
from ftkit.commands.make_report import main
from ftkit.core.cli import run

if __name__ == "__main__":
    run(main)
