#!/usr/bin/env python3
"""Check every item of the guide's acceptance checklist from the artifacts on disk.

The guide's command; `ftkit acceptance` runs the same code (ftkit/commands/acceptance_check.py).
"""
from ftkit.commands.acceptance_check import main
from ftkit.core.cli import run

if __name__ == "__main__":
    run(main)
