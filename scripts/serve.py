#!/usr/bin/env python3
"""Serve the fine-tuned GGUF behind llama-server's OpenAI-compatible API, without Ollama.

The guide's command; `ftkit serve` runs the same code (ftkit/commands/serve.py).
"""
from ftkit.commands.serve import main
from ftkit.core.cli import run

if __name__ == "__main__":
    run(main)
