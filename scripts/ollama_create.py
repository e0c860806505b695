#!/usr/bin/env python3
"""Register the GGUF with Ollama: `ollama create NAME -f Modelfile`, then a one-line `ollama run`.

The guide's command; `ftkit ollama` runs the same code (ftkit/commands/ollama_create.py).
"""
from ftkit.commands.ollama_create import main
from ftkit.core.cli import run

if __name__ == "__main__":
    run(main)
