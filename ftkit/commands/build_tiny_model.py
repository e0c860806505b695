"""Build an embedded tiny model (real tokenizer + chat template, random weights), fully offline.

--family llama2 (the default base model of the demo and the tests): a Llama-2-style checkpoint with a
sentencepiece tokenizer trained on local text, a few MB, built in seconds, byte-identical for the
same --seed. --family qwen2.5 | qwen3 | qwen3.5 | llama3: the family's real tokenizer, rebuilt from the vocab
file in llama.cpp/models/, its real chat template from llama.cpp/models/templates/, and a tiny body
of the real architecture with the full vocabulary (40-67 M parameters, mostly embeddings; Qwen3.5: three
Gated DeltaNet layers and one gated-attention layer).

examples: python scripts/build_tiny_model.py --output-dir models/tiny-llama
          python scripts/build_tiny_model.py --family qwen2.5 --output-dir models/tiny-qwen2.5
"""
import argparse

from ftkit.core.cli import setup_logging
from ftkit.core.families import FAMILIES


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="llama2", choices=tuple(FAMILIES), help="model family (default: %(default)s)")
    ap.add_argument("--output-dir", default=None, help="where to write the model (default: the family's, e.g. models/tiny-llama)")
    ap.add_argument("--seed", type=int, default=0, help="weight initialisation seed (default: %(default)s)")
    ap.add_argument("--vocab-size", type=int, default=3000, help="sentencepiece vocabulary size, llama2 only (default: %(default)s)")
    ap.add_argument("--layers", type=int, default=2, help="number of transformer layers (default: %(default)s)")
    return ap.parse_args(argv)


def main():
    args = parse_args()
    setup_logging()
    from ftkit.tiny.tiny_model import TinyFamilySpec, TinyLlamaSpec, build, build_family

    out = args.output_dir or FAMILIES[args.family].tiny_model
    if args.family == "llama2":
        build(out, TinyLlamaSpec(vocab_size=args.vocab_size, seed=args.seed, num_hidden_layers=args.layers))
    else:
        build_family(out, args.family, TinyFamilySpec(seed=args.seed, num_hidden_layers=args.layers))

