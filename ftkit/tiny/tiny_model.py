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
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ftkit import ASSETS
from ftkit.core import families, prompts
from ftkit.core.families import TinyModel
from ftkit.core.io import atomic_dir, sha256_file

log = logging.getLogger(__name__)

CORPUS_FILE = ASSETS / "tokenizer_corpus.txt"
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
        from ftkit.stages.data import sample_data
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


SPEC_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")


# --- the other families: the real tokenizer and chat template, a tiny body of the real architecture --

@dataclass(frozen=True)
class TinyFamilySpec:
    """A few-million-parameter body of the family's real architecture, with the full vocabulary and the
    context length the real model declares, so what breaks on the real model breaks here first."""
    hidden_size: int = 256          # multiple of 256: k-quants apply without fallback
    intermediate_size: int = 768
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2    # grouped-query attention, as in every real model of these families
    seed: int = 0


def family_config(tiny: TinyModel, spec: TinyFamilySpec):
    """transformers config of the tiny model's real architecture, at a tiny size (its family file says how)."""
    import transformers

    shape = {k: getattr(spec, k) for k in SPEC_KEYS}
    return getattr(transformers, tiny.architecture)(**tiny.config(shape))


def write_family_tokenizer(tiny: TinyModel, template_file: str, out_dir: Path) -> None:
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from ftkit.tiny import tiny_tokenizers

    settings = tiny.tokenizer_config
    template = (tiny_tokenizers.ROOT / "llama.cpp" / "models" / "templates" / template_file).read_text(encoding="utf-8")
    fast = PreTrainedTokenizerFast(tokenizer_object=tiny_tokenizers.build_tokenizer(tiny),
                                   **{k: v for k, v in settings.items() if k != "tokenizer_class"},
                                   clean_up_tokenization_spaces=False, chat_template=template)
    fast.save_pretrained(out_dir)
    config_file = out_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["tokenizer_class"] = settings["tokenizer_class"]  # as the Hub checkpoint names it
    config_file.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n")
    AutoTokenizer.from_pretrained(out_dir)  # it must load the way a user's model does


def build_family(out_dir: str | Path, name: str, spec: TinyFamilySpec = TinyFamilySpec()) -> Path:
    """The tiny model `name` (a family's, e.g. qwen2.5, or another of its tiny models, e.g. qwen3-moe) into
    `out_dir` (replaced atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    family, tiny = families.tiny_model(name)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        log.info("tiny-model: %s tokenizer from llama.cpp's vocab file", tiny.name)
        write_family_tokenizer(tiny, family.template_file, tmp)
        config = family_config(tiny, spec)
        log.info("tiny-model: random %s weights (seed %d, vocab %d)", config.model_type, spec.seed, config.vocab_size)
        torch.manual_seed(spec.seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=list(tiny.generation_eos),
                                                   pad_token_id=tiny.generation_pad, do_sample=False)
        model.save_pretrained(tmp, safe_serialization=True)
        manifest = {"family": family.name, "tiny_model": tiny.name, "spec": asdict(spec),
                    "parameters": sum(p.numel() for p in model.parameters()), "vocab_size": config.vocab_size}
        (tmp / "tiny_model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("tiny-model: wrote %s (%s, %d parameters)", out_dir, tiny.name, manifest["parameters"])
    return out_dir


# --- random models of real shapes (benchmarks, the GPU check) ----------------------------------------


def build_random_model(out_dir: str | Path, family: str, shape: dict, dtype: str = "bf16") -> int:
    """Random weights of `family`'s architecture at `shape` (any config key: sizes, vocab_size,
    tie_word_embeddings, max_position_embeddings, ...) with the family's tokenizer and chat template,
    saved as safetensors in `out_dir` (the model is built on the GPU when there is one: a 7B initialises
    in seconds there). Random weights cost the memory and FLOPs real ones do. Returns the parameter count."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from ftkit.core.loading import torch_dtype

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if family == "llama2":  # the embedded sentencepiece tokenizer; embedding rows past its vocabulary go unused
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer_dir = build(Path(tmp) / "tiny")
            AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(out_dir)
            shutil.copy(tokenizer_dir / "tokenizer.model", out_dir / "tokenizer.model")
        config = LlamaConfig(**{**families.get("llama2").tiny_models[0].config(shape), **shape})
    else:
        owner, tiny = families.tiny_model(family)
        write_family_tokenizer(tiny, owner.template_file, out_dir)
        config = family_config(tiny, TinyFamilySpec(**{k: shape[k] for k in SPEC_KEYS if k in shape}))
        for key, value in shape.items():  # what the spec does not set: derived sizes (head_dim) stay consistent
            if key not in SPEC_KEYS:
                setattr(config, key, value)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype(dtype))  # initialised in that dtype
    model.save_pretrained(out_dir, safe_serialization=True)
    params = sum(p.numel() for p in model.parameters())
    log.info("random model: %s, %s, %.2f B parameters, %s", out_dir, family, params / 1e9, dtype)
    return params
