"""Real byte-level BPE tokenizers (Qwen2, Llama-3), rebuilt offline from llama.cpp's vocab files.

The llama.cpp submodule ships each family's vocabulary as a vocab-only GGUF
(`llama.cpp/models/ggml-vocab-{qwen2,llama-bpe}.gguf`): every token, every merge and the special
tokens. With the family's split regex, byte-level pre-tokenizer and decoder this gives the same ids
as the Hub tokenizer — checked against llama.cpp's reference tokenizations beside each file
(`*.gguf.inp` / `*.gguf.out`) and against the pre-tokenizer hash its converter recognises.

Where the vocab file has `[PAD…]` placeholders, the family's own added tokens go in at their real ids
(Qwen2.5's tool and vision tokens, Qwen3's `<think>`), and Llama-3's reserved tokens get their
Llama-3.1 names (`<|eom_id|>`, `<|python_tag|>`, `<|finetune_right_pad_id|>`).

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
from dataclasses import dataclass
from pathlib import Path

from ftkit import ROOT

QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
# Qwen3.5 (llama.cpp src/llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_QWEN35): letters keep their combining marks
QWEN35_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")

# (token, special) after <|endoftext|> <|im_start|> <|im_end|>, in id order from 151646
QWEN25_ADDED = ([(t, True) for t in ("<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
                                     "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
                                     "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")]
                + [(t, False) for t in ("<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
                                        "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>")])
QWEN3_ADDED = QWEN25_ADDED + [(t, False) for t in ("<tool_response>", "</tool_response>", "<think>", "</think>")]
# Llama-3.1 names for ids the Llama-3 vocab file calls reserved
LLAMA31_RENAMED = {128004: "<|finetune_right_pad_id|>", 128008: "<|eom_id|>", 128010: "<|python_tag|>"}


@dataclass(frozen=True)
class VocabSource:
    vocab_file: str            # under llama.cpp/models/
    split_regex: str
    nfc: bool                  # Qwen2 normalises to NFC; Llama-3 does not normalise
    ignore_merges: bool        # Llama-3 takes a word found whole in the vocab without merging
    add_bos: str | None        # Llama-3's post-processor adds <|begin_of_text|>


QWEN2 = VocabSource("ggml-vocab-qwen2.gguf", QWEN2_SPLIT, nfc=True, ignore_merges=False, add_bos=None)
QWEN35 = VocabSource("ggml-vocab-qwen35.gguf", QWEN35_SPLIT, nfc=True, ignore_merges=False, add_bos=None)
LLAMA3 = VocabSource("ggml-vocab-llama-bpe.gguf", LLAMA3_SPLIT, nfc=False, ignore_merges=True, add_bos="<|begin_of_text|>")


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


def added_tokens(family: str, tokens: list[str], types: list[int]) -> list[tuple[int, str, bool]]:
    """(id, text, special) for every token after the normal ones, with the family's real names."""
    first = next(i for i, t in enumerate(types) if t != 1)
    if family in ("qwen2.5", "qwen3", "qwen3.5"):
        extra = QWEN25_ADDED if family == "qwen2.5" else QWEN3_ADDED
        control = [(i, tokens[i], True) for i in range(first, first + 3)]  # endoftext, im_start, im_end
        return control + [(first + 3 + k, text, special) for k, (text, special) in enumerate(extra)]
    if family == "llama3":
        reserved, out = 0, []
        for i in range(first, len(tokens)):
            name = LLAMA31_RENAMED.get(i, tokens[i])
            if name.startswith("<|reserved_special_token_"):
                name = f"<|reserved_special_token_{reserved}|>"
                reserved += 1
            out.append((i, name, True))
        return out
    raise ValueError(f"no BPE vocabulary for family {family}")


def build_tokenizer(family: str, source: VocabSource):
    """A `tokenizers.Tokenizer` with the family's real vocabulary, merges, rules and added tokens."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tokens, types, merges = read_vocab_file(ROOT / "llama.cpp" / "models" / source.vocab_file)
    normal = {token: i for i, token in enumerate(tokens) if types[i] == 1}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tokenizer = Tokenizer(models.BPE(vocab=normal, merges=pairs, ignore_merges=source.ignore_merges,
                                     byte_fallback=False, fuse_unk=False))
    if source.nfc:
        tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(source.split_regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    added = added_tokens(family, tokens, types)
    if added[0][0] != len(normal):
        raise ValueError(f"{source.vocab_file}: normal tokens are not contiguous")
    for token_id, text, special in added:  # one at a time, in id order: each gets the next id
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
