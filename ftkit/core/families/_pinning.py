"""Pinning: the training text fixes some of a template's variables (Llama-3.1's date, Qwen3's thinking off).
The pinned variables are set at the top of the model's own template, which follows unchanged, so it renders the
training text with no extra arguments, whatever a runtime passes. That template travels into the adapter, the
merged model and the GGUF, where llama-server (and Ollama >= 0.30, LM Studio, ...) render it; the original is kept
beside it as chat_template.original.jinja. A run trained with thinking marks the template with its mode instead."""
from __future__ import annotations

import json
from pathlib import Path

from ftkit.core.families._family import THINKING_MODES, Family


def template_text(tokenizer) -> str:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    return template or ""


PIN_OPEN = "{#- ftkit: the training pins "
PIN_CLOSE = "{#- /ftkit pins #}"
ORIGINAL_TEMPLATE_FILE = "chat_template.original.jinja"


def _jinja_literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a double-quoted string; Jinja reads JSON's escapes


THINKING_MARK = "{#- ftkit: trained with THINKING="


def original_template(template: str) -> str:
    """A template without ftkit's pins and thinking mark (the template itself when it has none)."""
    if template.startswith(THINKING_MARK) and "#}" in template:
        template = template.split("#}", 1)[1]
    if template.startswith(PIN_OPEN) and PIN_CLOSE in template:
        return template.split(PIN_CLOSE, 1)[1]
    return template


def thinking_mark(template: str) -> str | None:
    """The THINKING mode a template was marked with by a run that trained thinking (None: unmarked)."""
    if not template.startswith(THINKING_MARK):
        return None
    mode = template[len(THINKING_MARK):].split(":", 1)[0].strip()
    return mode if mode in THINKING_MODES else None


def pin_template(template: str, pins: dict, thinking: str = "off") -> str:
    """The template with `pins` set before anything else runs: a top-level `set` shadows the variable a
    caller passes (transformers' apply_chat_template kwargs, llama-server's chat_template_kwargs and its
    date_string), so the template renders the training text whatever it is given. A run that trained
    thinking is marked instead (a comment: enable_thinking stays the caller's), so every later stage, and
    anyone reading the GGUF, knows the mode. Idempotent."""
    original = original_template(template)
    text = original
    if pins:
        names = ", ".join(f"{k}={_jinja_literal(v)}" for k, v in pins.items())
        sets = "".join(f"{{%- set {k} = {_jinja_literal(v)} %}}" for k, v in pins.items())
        text = (f"{PIN_OPEN}({names}): set before the model's own template, which follows unchanged "
                f"(kept in {ORIGINAL_TEMPLATE_FILE}) #}}{sets}{PIN_CLOSE}{original}")
    if thinking != "off":
        text = (f"{THINKING_MARK}{thinking}: enable_thinking (Ollama's think) chooses a thinking or a direct "
                f"answer, as in training; the model's own template follows #}}{text}")
    return text


def pinned(template, family: Family):
    """A tokenizer's chat_template (a string, or a dict of named templates) pinned for `family`."""
    if isinstance(template, dict):
        return {name: pin_template(text, family.pins, family.thinking) for name, text in template.items()}
    return pin_template(template, family.pins, family.thinking) if template else template


def is_pinned_for(template: str, family: Family) -> bool:
    """The template renders as `family`'s training did: pinned (or marked) exactly as ftkit would."""
    return pin_template(template, family.pins, family.thinking) == template


def write_original_template(tokenizer, folder: str | Path) -> None:
    """Keep the model's own template beside the pinned one that save_pretrained wrote."""
    text = template_text(tokenizer)
    if text and original_template(text) != text:
        (Path(folder) / ORIGINAL_TEMPLATE_FILE).write_text(original_template(text), encoding="utf-8")
