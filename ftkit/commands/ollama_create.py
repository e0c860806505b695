"""Register the GGUF with Ollama: `ollama create NAME -f Modelfile`, then a one-line `ollama run`.

When ollama is not installed here, prints the exact commands to run where it is (and the Ollama version
the Modelfile needs), and exits 0. An installed Ollama older than the Modelfile needs (its REQUIRES, or
the version of its PARSER command) is refused with the way out: `make gguf OLLAMA_VERSION=<yours>`.

example: python scripts/ollama_create.py --model-name llama2-finetuned --modelfile models/gguf/Modelfile
"""
from __future__ import annotations

from dataclasses import dataclass

from ftkit.config import defaults
from ftkit.config import schema as options
from ftkit.config.schema import option
from ftkit.core.cli import setup_logging


@dataclass
class OllamaConfig:
    model_name: str = option(defaults.MODEL_NAME, "Ollama model name")
    modelfile: str = option(f"{defaults.GGUF_DIR}/Modelfile", "Modelfile")
    prompt: str = option("你好", "smoke-test question for `ollama run`")

def main():
    args = options.parse(OllamaConfig, options.build_parser(OllamaConfig, __doc__))
    setup_logging()
    from ftkit.core.ollama import deploy

    return deploy(args.model_name, args.modelfile, args.prompt)

