"""Which training preset suits a base model: chosen by its parameter count, for `make train` when you
name no TRAIN_CONFIG.

The count comes from the model's config.json — a local folder, or a Hub id in the Hugging Face cache
(offline: no download) — and, for a Hub id not downloaded yet, from the size in its name ("7B", "0.5B").
Standard library only: Make runs this on every invocation that needs the preset.

usage: python -m ftkit.config.presets BASE_MODEL [--qlora]   prints the preset's path (nothing: none fits) and,
on stderr, why it was chosen
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

# (largest parameter count, LoRA preset, QLoRA preset): the first class the model fits in
SIZE_CLASSES = (
    (3e9, "configs/small-lora.yaml", "configs/small-lora.yaml"),
    (10e9, "configs/7b-lora.yaml", "configs/7b-qlora.yaml"),
    (float("inf"), "configs/large-lora.yaml", "configs/large-lora.yaml"),
)


def hub_cache() -> Path:
    """Where huggingface_hub keeps downloads: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def find_config(model: str) -> Path | None:
    """config.json of a local folder, or of a Hub id's cached snapshot (the revision `main` points at)."""
    local = Path(model) / "config.json"
    if local.is_file():
        return local
    if model.count("/") != 1:
        return None
    repo = hub_cache() / f"models--{model.replace('/', '--')}"
    ref = repo / "refs" / "main"
    snapshots = [repo / "snapshots" / ref.read_text().strip()] if ref.is_file() else \
        sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((s / "config.json" for s in snapshots if (s / "config.json").is_file()), None)


def count_parameters(config: dict) -> int:
    """Parameters of a decoder-only transformer from its config: embeddings (and an untied output layer),
    attention and MLP weights. Norms and biases are left out (well under 1%)."""
    text = config.get("text_config", config)  # multimodal configs nest the language model's
    hidden, layers = text["hidden_size"], text["num_hidden_layers"]
    heads = text["num_attention_heads"]
    kv_heads = text.get("num_key_value_heads") or heads
    head_dim = text.get("head_dim") or hidden // heads
    attention = hidden * head_dim * (2 * heads + 2 * kv_heads)  # q and o; k and v
    mlp = 3 * hidden * text["intermediate_size"]  # gate, up, down
    embeddings = text["vocab_size"] * hidden * (1 if text.get("tie_word_embeddings", config.get("tie_word_embeddings")) else 2)
    return embeddings + layers * (attention + mlp)


def size_from_name(model: str) -> float | None:
    """'Qwen/Qwen2.5-7B-Instruct' -> 7e9; '...-0.5B' -> 5e8; None when the name says no size."""
    found = re.findall(r"(?<![\d.])(\d+(?:\.\d+)?)[bB](?![a-zA-Z])", model.rsplit("/", 1)[-1])
    return float(found[-1]) * 1e9 if found else None


def parameters_of(model: str) -> tuple[float | None, str]:
    """(parameter count, where it came from)."""
    config = find_config(model)
    if config is not None:
        try:
            return float(count_parameters(json.loads(config.read_text(encoding="utf-8")))), str(config)
        except (KeyError, TypeError, ValueError):
            pass
    size = size_from_name(model)
    return (size, "its name") if size else (None, "")


def choose(model: str, qlora: bool = False) -> tuple[str | None, str]:
    """(preset path or None, the reason, for the log)."""
    params, source = parameters_of(model)
    if params is None:
        return None, f"{model}: size unknown (no config.json here or in the Hugging Face cache, none in its name)"
    for largest, lora, qlora_preset in SIZE_CLASSES:
        if params <= largest:
            preset = qlora_preset if qlora else lora
            count = f"{params / 1e9:.2f} B" if params >= 1e9 else f"{params / 1e6:.1f} M"
            return preset, f"{model}: about {count} parameters (from {source}) -> {preset}"
    raise AssertionError("the last size class has no upper bound")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base_model")
    ap.add_argument("--qlora", action="store_true", help="the QLoRA preset of the size class")
    args = ap.parse_args(argv)
    preset, why = choose(args.base_model, args.qlora)
    print(f"ftkit: training preset: {why} (TRAIN_CONFIG=FILE for another, TRAIN_CONFIG= for none)", file=sys.stderr)
    if preset:
        print(preset)
    return 0


if __name__ == "__main__":
    sys.exit(main())
