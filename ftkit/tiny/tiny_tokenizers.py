"""Real byte-level BPE tokenizers (Qwen2, Llama-3, DeepSeek-R1-Distill), rebuilt offline from llama.cpp's vocab files.

The llama.cpp submodule ships each family's vocabulary as a vocab-only GGUF
(`llama.cpp/models/ggml-vocab-{qwen2,llama-bpe}.gguf`): every token, every merge and the special
tokens. With the family's split regex, byte-level pre-tokenizer and decoder (its file's `VocabSource`) this gives
the same ids as the Hub tokenizer — checked against llama.cpp's reference tokenizations beside each file
(`*.gguf.inp` / `*.gguf.out`) and against the pre-tokenizer hash its converter recognises.

Where the vocab file has `[PAD…]` placeholders, the family's own added tokens go in at their real ids
(Qwen2.5's tool and vision tokens, Qwen3's `<think>`, DeepSeek's `<｜User｜>`), and Llama-3's reserved tokens get
their Llama-3.1 names (`<|eom_id|>`, `<|python_tag|>`, `<|finetune_right_pad_id|>`): each family file's
`TinyModel.added_tokens` says which.

Qwen3.5: the submodule's `ggml-vocab-qwen35.gguf` is Qwen2's 151,936-token vocabulary under Qwen3.5's
pre-tokenizer (`LLAMA_VOCAB_PRE_TYPE_QWEN35`), not Qwen3.5's own 248,320-token one. With Qwen3.5's split
pattern and NFC (what transformers' Qwen3_5Tokenizer applies) it gives llama.cpp's reference tokenizations
beside that file, except for text NFC changes (a decomposed é: llama.cpp does not normalize); but the
converter's hash of it is Qwen2's (`e636dc…`: the hash text holds no letter + combining mark, where the
two patterns differ), so a GGUF of it says `qwen2`, and llama.cpp splits with Qwen2's pattern.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ftkit import ROOT
from ftkit.core.families import TinyModel


def submodule_gguf():
    """The submodule's gguf-py package (the converter's own reader), loaded by its path: it is not installed."""
    if "gguf" not in sys.modules:
        package = ROOT / "llama.cpp" / "gguf-py" / "gguf"
        spec = importlib.util.spec_from_file_location("gguf", package / "__init__.py",
                                                      submodule_search_locations=[str(package)])
        module = importlib.util.module_from_spec(spec)
        sys.modules["gguf"] = module  # its own modules import `gguf.<name>`
        spec.loader.exec_module(module)
    return sys.modules["gguf"]


def read_vocab_file(path: Path) -> tuple[list[str], list[int], list[str]]:
    """Tokens, token types and merges of a llama.cpp vocab GGUF (read with the submodule's gguf-py)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make llama.cpp` first")
    fields = submodule_gguf().GGUFReader(str(path)).fields
    return (fields["tokenizer.ggml.tokens"].contents(), fields["tokenizer.ggml.token_type"].contents(),
            fields["tokenizer.ggml.merges"].contents())


def _sentencepiece_style(tokens: list[str], merges: list[str]):
    """Gemma 4's tokenizer: BPE over raw UTF-8 with spaces as ▁ and byte fallback, every token in the vocabulary
    (llama.cpp src/llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_GEMMA4). It matches every reference tokenization beside
    the vocab file; llama.cpp's converter writes the tokenizer itself for this family, without a pre-tokenizer hash."""
    from tokenizers import Tokenizer, decoders, models, normalizers

    tokenizer = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[tuple(m.split(" ", 1)) for m in merges],
                                     byte_fallback=True, unk_token="<unk>", fuse_unk=False))
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return tokenizer


def _byte_level(tokens: list[str], types: list[int], merges: list[str], source, first_added: int):
    """Qwen's, Llama-3's and DeepSeek's: byte-level BPE over the normal tokens, split by the family's pattern;
    the added tokens (from `first_added` on) follow the normal ones."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    normal = {token: i for i, token in enumerate(tokens) if types[i] == 1}
    if first_added != len(normal):
        raise ValueError(f"{source.vocab_file}: normal tokens are not contiguous")
    tokenizer = Tokenizer(models.BPE(vocab=normal, merges=[tuple(m.split(" ", 1)) for m in merges],
                                     ignore_merges=source.ignore_merges, byte_fallback=False, fuse_unk=False))
    if source.nfc:
        tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(source.split_regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    return tokenizer


def build_tokenizer(tiny: TinyModel):
    """A `tokenizers.Tokenizer` with the tiny model's real vocabulary, merges, rules and added tokens."""
    from tokenizers import AddedToken, processors

    source = tiny.vocab
    tokens, types, merges = read_vocab_file(ROOT / "llama.cpp" / "models" / source.vocab_file)
    added = tiny.added_tokens(tokens, types)
    tokenizer = (_sentencepiece_style(tokens, merges) if source.sentencepiece_style
                 else _byte_level(tokens, types, merges, source, added[0][0]))
    # one at a time, in id order: each gets the next id (or keeps its vocabulary id, SentencePiece-style)
    for token_id, text, special in added:
        tokenizer.add_tokens([AddedToken(text, special=special, normalized=False)])
        if tokenizer.token_to_id(text) != token_id:
            raise ValueError(f"{text}: got id {tokenizer.token_to_id(text)}, expected {token_id}")
    if source.add_bos:
        bos = (source.add_bos, tokenizer.token_to_id(source.add_bos))
        tokenizer.post_processor = processors.TemplateProcessing(single=f"{bos[0]} $A", pair=f"{bos[0]} $A {bos[0]} $B",
                                                                 special_tokens=[bos])
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def reference_cases(vocab_file: str) -> list[tuple[str, list[int]]]:
    """llama.cpp's reference tokenizations beside a vocab file: (text, ids without BOS)."""
    base = ROOT / "llama.cpp" / "models" / vocab_file
    texts = base.with_name(base.name + ".inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    outs = base.with_name(base.name + ".out").read_text(encoding="utf-8").split("\n")
    texts = texts[:-1] if texts and texts[-1] == "" else texts
    return [(text, [int(x) for x in out.split()]) for text, out in zip(texts, outs, strict=False)]
