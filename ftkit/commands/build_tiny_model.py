"""Build an embedded tiny model (real tokenizer + chat template, random weights), fully offline.

--family llama2 (the default base model of the demo and the tests): a Llama-2-style checkpoint with a
sentencepiece tokenizer trained on local text, a few MB, built in seconds, byte-identical for the
same --seed. Any other family: its real tokenizer, rebuilt from the vocab file in llama.cpp/models/, its real
chat template from llama.cpp/models/templates/, and a tiny body of the real architecture with the full
vocabulary (40-80 M parameters, mostly embeddings). --tiny picks a family's other tiny model (qwen3-moe: Qwen3's
mixture of experts). Each family file under ftkit/core/families/ declares its tiny models.

examples: python scripts/build_tiny_model.py --output-dir models/tiny-llama
          python scripts/build_tiny_model.py --family qwen2.5 --output-dir models/tiny-qwen2.5
          python scripts/build_tiny_model.py --tiny qwen3-moe
"""
from __future__ import annotations

from dataclasses import dataclass

from ftkit.config import schema as options
from ftkit.config.schema import option
from ftkit.core import families
from ftkit.core.cli import setup_logging

TINY_MODELS = tuple(t.name for f in families.FAMILIES.values() for t in f.tiny_models)


@dataclass
class TinyModelConfig:
    family: str = option("llama2", "model family", choices=families.NAMES)
    tiny: str | None = option(None, "which tiny model (none: the family's own)", choices=TINY_MODELS)
    output_dir: str | None = option(None, "where to write the model (none: models/tiny-<tiny model>, e.g. "
                                          "models/tiny-llama)")
    seed: int = option(0, "weight initialisation seed")
    vocab_size: int = option(3000, "sentencepiece vocabulary size, llama2 only", minimum=256)
    layers: int = option(2, "number of transformer layers", minimum=1)


def main():
    args = options.parse(TinyModelConfig, options.build_parser(TinyModelConfig, __doc__))
    setup_logging()
    from ftkit.tiny.tiny_model import TinyFamilySpec, TinyLlamaSpec, build, build_family

    family, tiny = families.tiny_model(args.tiny or args.family)
    out = args.output_dir or tiny.folder
    if family.meta_renderer:
        build(out, TinyLlamaSpec(vocab_size=args.vocab_size, seed=args.seed, num_hidden_layers=args.layers))
    else:
        build_family(out, tiny.name, TinyFamilySpec(seed=args.seed, num_hidden_layers=args.layers))
