"""What one family file declares: a `Family` (its chat format, end of turn, Ollama TEMPLATE and pins) and the
tiny models it builds (`TinyModel`: architecture, vocabulary source, tokenizer settings)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ftkit.core.cli import UserError

THINKING_MODES = ("off", "on", "mixed")


def _token_id(tokenizer, token: str) -> int | None:
    """The id of a token the vocabulary really has (not the unknown token's)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    return token_id if isinstance(token_id, int) and tokenizer.convert_ids_to_tokens(token_id) == token else None


def shape_kwargs(shape: dict) -> dict:
    """A tiny body's sizes, as every transformers config names them."""
    return {k: shape[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                  "num_key_value_heads") if k in shape}


@dataclass(frozen=True)
class VocabSource:
    """A byte-level BPE vocabulary that the llama.cpp submodule ships as a vocab-only GGUF, and the rules the Hub
    tokenizer applies around it (ftkit/tiny/tiny_tokenizers.py rebuilds the tokenizer from these)."""
    vocab_file: str            # under llama.cpp/models/
    split_regex: str
    nfc: bool                  # Qwen2 normalises to NFC; Llama-3 does not normalise
    ignore_merges: bool        # Llama-3 takes a word found whole in the vocab without merging
    add_bos: str | None        # a post-processor that adds this BOS (Llama-3, DeepSeek-R1-Distill, Gemma 4)
    # SentencePiece-style BPE (Gemma 4): spaces become ▁, merges run on raw UTF-8, unknown bytes fall back to
    # <0x..> tokens, and the added tokens are already in the vocabulary; else byte-level BPE (GPT-2's byte map)
    sentencepiece_style: bool = False


@dataclass(frozen=True)
class TinyModel:
    """An embedded tiny model of a family: the real tokenizer (vocabulary from the submodule, the family's added
    tokens at their real ids) and chat template, and a few-million-parameter body of the real architecture with
    the real vocabulary and context length. Built into models/tiny-<name> by `make tiny-model`."""
    name: str
    architecture: str                           # the transformers config class, e.g. "Qwen2Config"
    config: Callable[[dict], dict]              # the tiny shape (hidden size, layers, heads) -> config kwargs
    vocab: VocabSource | None = None            # None: Llama-2's sentencepiece, trained on local text
    added_tokens: Callable | None = None        # (tokens, token types) -> [(id, text, special)] after the normal ones
    tokenizer_config: dict = field(default_factory=dict)  # what the Hub checkpoint's tokenizer_config.json says
    generation_eos: tuple[int, ...] = ()        # generation_config.json's eos_token_id
    generation_pad: int | None = None
    note: str = ""                              # what is special about it, for `--help` and the docs

    @property
    def folder(self) -> str:
        return f"models/tiny-{self.name}"


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    end_of_turn: str                      # ends an assistant turn: supervised, and generation stops on it
    stops: tuple[str, ...]                # Ollama's PARAMETER stop list (it replaces Ollama's own)
    ollama_template: str | None           # the Modelfile TEMPLATE (Go text/template), proven byte for byte
    detects: Callable[[str, dict], bool] = lambda template, config: False  # (chat template, config.json) -> mine?
    priority: int = 0                     # among families whose rule matches, the highest wins (the more specific)
    aliases: tuple[str, ...] = ()         # other names (FAMILY=, model names) that mean this family
    default_system: str | None = None     # what the template injects when the chat has no system prompt
    pins: dict = field(default_factory=dict)  # template variables the training text fixes (see _pinning)
    # Ollama >= 0.12 PARSER that keeps the Modelfile TEMPLATE in charge and declares no thinking and no tools
    # (None: none needed; ftkit.core.ollama decides by version)
    ollama_parser: str | None = None
    bos_text: str | None = None           # BOS as text in the rendering; llama.cpp (and Ollama) add it as an id
    llama_cpp_pre: str | None = None      # tokenizer.ggml.pre that llama.cpp's converter must write
    template_file: str | None = None      # the real chat template, under llama.cpp/models/templates/
    tiny_models: tuple[TinyModel, ...] = ()  # the first is the family's embedded default
    extra_stop_tokens: tuple[str, ...] = ()  # other tokens that end generation (e.g. end of text)
    # a family that thinks has THINKING=off|on|mixed: the Ollama TEMPLATE of a run trained with thinking
    thinking_ollama_template: str | None = None
    # the same for a template that always thinks (no enable_thinking switch; DeepSeek-R1's Hub template): think
    # changes nothing in the prompt
    always_thinking_ollama_template: str | None = None
    thinking: str = "off"                 # this run's mode (with_thinking); off: thinking pinned off, if it thinks
    # the final answer as the model writes it after the generation prompt, for a template that renders a past
    # answer otherwise (DeepSeek-R1 drops the reasoning of every answer, the last too): (trace, answer,
    # thinking) -> text. None: the template's own rendering of the whole conversation has the prompt as prefix.
    answer_after_prompt: Callable[[str | None, str, bool], str] | None = None
    think_tags: tuple[str, str] = ("<think>", "</think>")  # what opens and closes a trace in what the model writes
    # for the family table (README.md, made by `make docs`): Hub ids to pass as BASE_MODEL, the chat format in a
    # line, and the family's training presets
    examples: tuple[str, ...] = ()
    format_note: str = ""
    presets: tuple[str, ...] = ()

    @property
    def thinks(self) -> bool:
        return self.thinking_ollama_template is not None

    @property
    def tiny_model(self) -> str:
        return self.tiny_models[0].folder if self.tiny_models else ""

    def thinking_modes(self, template: str) -> tuple[str, ...]:
        """The THINKING modes this family's template allows: all three where it has the enable_thinking switch;
        only on where it always opens a think block (DeepSeek-R1's Hub template); only off for one that never
        thinks."""
        if not self.thinks:
            return ("off",)
        if "enable_thinking" in template or not template or not self.always_thinking_ollama_template:
            return THINKING_MODES
        return ("on",)

    def with_thinking(self, mode: str | None, template: str = "") -> Family:
        """The family as a run with thinking `mode` renders it: on/mixed keep the template's own
        enable_thinking (no pin, no PARSER: Ollama declares thinking), with the thinking TEMPLATE."""
        mode = mode or "off"
        if mode not in THINKING_MODES:
            raise UserError(f"THINKING={mode}: choose off, on or mixed")
        allowed = self.thinking_modes(template)
        if mode not in allowed:
            if not self.thinks:
                from ftkit.core.families import FAMILIES

                raise UserError(f"THINKING={mode}: {self.title} has no thinking mode (families that think: "
                                f"{', '.join(f.name for f in FAMILIES.values() if f.thinks)}); use THINKING=off")
            raise UserError(f"THINKING={mode}: this {self.title.split(' (')[0]} chat template always opens a think "
                            f"block (it has no enable_thinking switch); use THINKING={' or '.join(allowed)}")
        if mode == "off":
            return self
        pins = {k: v for k, v in self.pins.items() if k != "enable_thinking"}
        template = self.thinking_ollama_template if len(allowed) > 1 else self.always_thinking_ollama_template
        return replace(self, thinking=mode, pins=pins, ollama_template=template,
                       ollama_parser=None, title=f"{self.title.replace(', thinking off', '')}, thinking {mode}")

    @property
    def meta_renderer(self) -> bool:
        """Llama-2 is rendered by Meta's construction in ftkit.core.prompts, not by Jinja."""
        return self.name == "llama2"

    def stop_token_ids(self, tokenizer, generation_eos=None) -> list[int]:
        """Every id that ends generation: the end of turn, the family's other end tokens, the tokenizer's
        EOS and the generation config's EOS list."""
        ids = [i for i in (_token_id(tokenizer, t) for t in (self.end_of_turn, *self.extra_stop_tokens) if t)
               if i is not None]
        if tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
        if generation_eos is not None:
            ids += generation_eos if isinstance(generation_eos, list | tuple) else [generation_eos]
        return list(dict.fromkeys(ids))

    def end_of_turn_id(self, tokenizer) -> int:
        token_id = _token_id(tokenizer, self.end_of_turn)
        if token_id is None:
            raise UserError(f"the tokenizer has no {self.end_of_turn!r} token, which ends a turn in the "
                            f"{self.title} format (wrong --family?)")
        return token_id
