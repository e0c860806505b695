#!/usr/bin/env python3
"""Show exactly what the model sees: a record rendered by the toolkit's one prompt renderer.

The guide's command; `ftkit render-prompt` runs the same code (ftkit/commands/render_prompt.py).
"""
from ftkit.commands.render_prompt import main
from ftkit.core.cli import run

if __name__ == "__main__":
    run(main)
