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
from __future__ import annotations

from dataclasses import dataclass

from ftkit.config import schema as options
from ftkit.config.schema import option
from ftkit.core.cli import setup_logging
from ftkit.core.families import FAMILIES


@dataclass
class TinyModelConfig:
    family: str = option("llama2", "model family", choices=tuple(FAMILIES))
    output_dir: str | None = option(None, "where to write the model (none: the family's, e.g. models/tiny-llama)")
    seed: int = option(0, "weight initialisation seed")
    vocab_size: int = option(3000, "sentencepiece vocabulary size, llama2 only", minimum=256)
    layers: int = option(2, "number of transformer layers", minimum=1)

def main():
    args = options.parse(TinyModelConfig, options.build_parser(TinyModelConfig, __doc__))
    setup_logging()
    from ftkit.tiny.tiny_model import TinyFamilySpec, TinyLlamaSpec, build, build_family

    out = args.output_dir or FAMILIES[args.family].tiny_model
    if args.family == "llama2":
        build(out, TinyLlamaSpec(vocab_size=args.vocab_size, seed=args.seed, num_hidden_layers=args.layers))
    else:
        build_family(out, args.family, TinyFamilySpec(seed=args.seed, num_hidden_layers=args.layers))

