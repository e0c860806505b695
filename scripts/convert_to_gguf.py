#!/usr/bin/env python3
"""Convert a merged model to GGUF for Ollama/llama.cpp, quantize it, prove it, write the Modelfile.

The guide's command; `ftkit gguf` runs the same code (ftkit/commands/convert_to_gguf.py).
"""
from ftkit.commands.convert_to_gguf import main
from ftkit.core.cli import run

if __name__ == "__main__":
    run(main)
