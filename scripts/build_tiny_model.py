#!/usr/bin/env python3
"""Build the embedded tiny Llama (sentencepiece tokenizer + random weights), fully offline.

The default base model of the demo and the tests: a real Llama-2-style checkpoint, a few MB, built
in seconds, byte-identical for the same --seed.

example: python scripts/build_tiny_model.py --output-dir models/tiny-llama
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install needed

from ftkit.cli import run, setup_logging


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output-dir", default="models/tiny-llama", help="where to write the model (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="weight initialisation seed (default: %(default)s)")
    ap.add_argument("--vocab-size", type=int, default=3000, help="sentencepiece vocabulary size (default: %(default)s)")
    ap.add_argument("--layers", type=int, default=2, help="number of transformer layers (default: %(default)s)")
    return ap.parse_args(argv)


def main():
    args = parse_args()
    setup_logging()
    from ftkit.tiny_model import TinyLlamaSpec, build
    build(args.output_dir, TinyLlamaSpec(vocab_size=args.vocab_size, seed=args.seed, num_hidden_layers=args.layers))


if __name__ == "__main__":
    run(main)
