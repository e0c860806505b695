"""The embedded default model: a tiny Llama built offline, for the demo and the tests.

It is a real Llama-2-style checkpoint — a sentencepiece BPE tokenizer (byte fallback, <unk>/<s>/</s>
as ids 0/1/2, a distinct <pad> as id 3) trained on text this project ships and generates, the Llama-2
chat template, and random weights — so every real code path (transformers, peft, trl, llama.cpp)
runs on it in seconds. Hidden and intermediate sizes are multiples of 256 so that llama.cpp's
k-quants apply without fallback. Same seed and same corpus give byte-identical files.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from ftkit import prompts
from ftkit.io import atomic_dir, sha256_file

log = logging.getLogger(__name__)

CORPUS_FILE = Path(__file__).parent / "assets" / "tokenizer_corpus.txt"
SPECIAL_TOKENS = {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"}


@dataclass(frozen=True)
class TinyLlamaSpec:
    vocab_size: int = 3000
    hidden_size: int = 256          # multiple of 256: k-quants need 256-element rows
    intermediate_size: int = 768    # multiple of 256, for the same reason
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_position_embeddings: int = 1024
    seed: int = 0


def corpus_lines() -> list[str]:
    """Tokenizer training text: the shipped corpus plus the sample data's own text, if present."""
    lines = CORPUS_FILE.read_text(encoding="utf-8").splitlines()
    try:
        from ftkit import sample_data
    except ImportError:  # the data stage is optional for the tokenizer
        return [line for line in lines if line.strip()]
    for record in sample_data.generate(num=sample_data.DEFAULT_NUM, seed=0):
        conv = prompts.from_alpaca(record)
        lines.extend(prompts.render_llama2_text(conv).replace("<s>", "").replace("</s>", "").splitlines())
    return [line for line in lines if line.strip()]


def train_tokenizer(lines: list[str], model_file: Path, vocab_size: int) -> Path:
    """Train a Llama-2-like sentencepiece BPE model into `model_file`."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()  # in memory: a model_prefix path would be recorded in the file
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="bpe",  # transformers 5's LlamaTokenizer is BPE-only; unigram gave other ids
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # a small corpus may support fewer pieces; never fail on that
        character_coverage=1.0,  # keep every Chinese character seen; rarer ones fall back to bytes
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        unk_id=0, bos_id=1, eos_id=2, pad_id=3,
        unk_piece=SPECIAL_TOKENS["unk"], bos_piece=SPECIAL_TOKENS["bos"],
        eos_piece=SPECIAL_TOKENS["eos"], pad_piece=SPECIAL_TOKENS["pad"],
        num_threads=1,  # deterministic
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    model_file.write_bytes(model.getvalue())
    return model_file


def write_tokenizer_config(out_dir: Path, max_length: int) -> None:
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": SPECIAL_TOKENS["bos"],
        "eos_token": SPECIAL_TOKENS["eos"],
        "unk_token": SPECIAL_TOKENS["unk"],
        "pad_token": SPECIAL_TOKENS["pad"],  # distinct from EOS, so padding never masks EOS
        "add_bos_token": True,
        "add_eos_token": False,
        "legacy": False,
        "model_max_length": max_length,
        "padding_side": "right",
        "chat_template": prompts.LLAMA2_CHAT_TEMPLATE,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n")


def build(out_dir: str | Path, spec: TinyLlamaSpec = TinyLlamaSpec()) -> Path:
    """Build the tiny model into `out_dir` (replaced atomically). Returns the directory."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        log.info("tiny-model: training the sentencepiece tokenizer")
        train_tokenizer(corpus_lines(), tmp / "tokenizer.model", spec.vocab_size)
        write_tokenizer_config(tmp, spec.max_position_embeddings)

        tokenizer = AutoTokenizer.from_pretrained(tmp, add_bos_token=True)
        tokenizer.save_pretrained(tmp)  # adds tokenizer.json (+ chat_template.jinja); keeps tokenizer.model

        log.info("tiny-model: building random weights (seed %d, vocab %d)", spec.seed, len(tokenizer))
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=spec.hidden_size,
            intermediate_size=spec.intermediate_size,
            num_hidden_layers=spec.num_hidden_layers,
            num_attention_heads=spec.num_attention_heads,
            num_key_value_heads=spec.num_attention_heads,
            max_position_embeddings=spec.max_position_embeddings,
            rms_norm_eps=1e-5,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,
        )
        torch.manual_seed(spec.seed)
        model = LlamaForCausalLM(config)
        model.generation_config = GenerationConfig(
            bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
            pad_token_id=config.pad_token_id, do_sample=False)
        model.save_pretrained(tmp, safe_serialization=True)

        manifest = {"spec": asdict(spec), "corpus_sha256": sha256_file(CORPUS_FILE),
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "vocab_size": len(tokenizer)}
        (tmp / "tiny_model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("tiny-model: wrote %s (%d parameters)", out_dir, manifest["parameters"])
    return out_dir
