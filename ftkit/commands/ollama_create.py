"""Register the GGUF with Ollama: `ollama create NAME -f Modelfile`, then a one-line `ollama run`.

When ollama is not installed here, prints the exact commands to run where it is (and the Ollama version
the Modelfile needs), and exits 0. An installed Ollama older than the Modelfile needs (its REQUIRES, or
the version of its PARSER command) is refused with the way out: `make gguf OLLAMA_VERSION=<yours>`.

example: python scripts/ollama_create.py --model-name llama2-finetuned --modelfile models/gguf/Modelfile
"""
import argparse

from ftkit.config import defaults
from ftkit.core.cli import setup_logging


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-name", default=defaults.MODEL_NAME, help="Ollama model name (default: %(default)s)")
    ap.add_argument("--modelfile", default=f"{defaults.GGUF_DIR}/Modelfile", help="Modelfile (default: %(default)s)")
    ap.add_argument("--prompt", default="你好", help="smoke-test question for `ollama run` (default: %(default)s)")
    return ap.parse_args(argv)


def main():
    args = parse_args()
    setup_logging()
    from ftkit.core.ollama import deploy

    return deploy(args.model_name, args.modelfile, args.prompt)

