"""Model families: the only place that knows chat formats.

A family answers, for one kind of chat model: how a conversation is rendered (Meta's Llama-2
construction, or the model's own Jinja chat template with the variables the training pins), which
token ends an assistant turn (it is supervised in training and stops generation), which default
system prompt the template injects, the Ollama TEMPLATE (Go text/template) and stop list that
reproduce the training text byte for byte, the Ollama PARSER that keeps Ollama on that TEMPLATE
where the GGUF's own template would otherwise win, and the pre-tokenizer llama.cpp's converter must
recognise.

Thinking: a family that thinks (Qwen3, Qwen3.5) trains with THINKING=off (the default: thinking pinned
off), on or mixed (`Family.with_thinking`): then enable_thinking stays the caller's, the saved template is
marked with the mode instead of pinned, and the Ollama TEMPLATE declares thinking.

Pinning: the training text fixes some of a template's variables (Llama-3.1's date, Qwen3's thinking
off). `bind` rewrites the tokenizer's template so that it renders the training text with no extra
arguments, whatever a runtime passes: the pinned variables are set at the top of the model's own
template, which follows unchanged. That template travels into the adapter, the merged model and the
GGUF, where llama-server (and Ollama >= 0.30, LM Studio, ...) render it; the original is kept beside
it as chat_template.original.jinja.

Every stage asks `family_of(tokenizer)` once and stays ignorant of formats. The Ollama templates
are proven against the real Hugging Face templates (llama.cpp/models/templates/) by
tests/test_families.py and ftkit.verify.deploy_parity, through tests/go/ollama_chat.go, which fills a
template the way Ollama does; the pinned templates by llama-server itself.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from ftkit.core.cli import UserError

# --- the Ollama templates ------------------------------------------------------------------------
# Ollama fills a template that mentions .Messages with: .Messages (consecutive messages of one role
# merged, system messages kept), .System (every system message, joined by a blank line; the
# Modelfile's SYSTEM enters as a first system message when the chat has none) and .Tools.

LLAMA2_OLLAMA_TEMPLATE = (
    '{{- $system := .System }}{{- range .Messages }}{{- if eq .Role "system" }}{{- $system = .Content }}{{- end }}{{- end }}'
    '{{- $first := true }}{{- range .Messages }}'
    '{{- if eq .Role "user" }}{{- if not $first }}<s>{{- end }}'
    '[INST] {{ if and $first $system }}<<SYS>>\n{{ $system }}\n<</SYS>>\n\n{{ end }}{{ .Content }} [/INST]'
    '{{- $first = false }}'
    '{{- else if eq .Role "assistant" }} {{ .Content }} </s>{{- end }}'
    '{{- end }}'
)

LLAMA3_DATE = "26 Jul 2024"  # the template's own default; fixed so the training text never depends on the day
LLAMA3_OLLAMA_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\n"
    f"Cutting Knowledge Date: December 2023\nToday Date: {LLAMA3_DATE}\n\n"
    "{{ .System }}<|eot_id|>"
    '{{ range .Messages }}{{ if or (eq .Role "user") (eq .Role "assistant") }}'
    "<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
    "{{ end }}{{ end }}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)

QWEN25_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
_CHATML_TURNS = (
    '{{ range .Messages }}{{ if or (eq .Role "user") (eq .Role "assistant") }}'
    "<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
    "{{ end }}{{ end }}"
)
QWEN25_OLLAMA_TEMPLATE = (
    "<|im_start|>system\n{{ if .System }}{{ .System }}{{ else }}" + QWEN25_DEFAULT_SYSTEM + "{{ end }}<|im_end|>\n"
    + _CHATML_TURNS + "<|im_start|>assistant\n"
)
# thinking off: the answer follows an empty think block, in training, evaluation and Ollama alike
QWEN3_EMPTY_THINK = "<think>\n\n</think>\n\n"
QWEN3_OLLAMA_TEMPLATE = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    + _CHATML_TURNS + "<|im_start|>assistant\n" + QWEN3_EMPTY_THINK
)
# a run trained with thinking (THINKING=on|mixed): Ollama's think=true renders the thinking prompt (it ends at the
# assistant header), think=false the empty think block, as the model's own template does with enable_thinking.
# .Thinking inside the range over .Messages is what makes Ollama declare thinking and parse <think>…</think> out
# of the answer (thinking.InferTags); like Qwen3's template it is written only for an assistant message after the
# last user message, so history goes without its reasoning.
QWEN3_THINKING_OLLAMA_TEMPLATE = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    '{{ $lastUser := -1 }}{{ range $i, $m := .Messages }}{{ if eq $m.Role "user" }}{{ $lastUser = $i }}{{ end }}{{ end }}'
    '{{ range $i, $m := .Messages }}{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
    '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n'
    "{{ if and .Thinking (gt $i $lastUser) }}<think>\n{{ .Thinking }}\n</think>\n\n{{ end }}"
    "{{ .Content }}<|im_end|>\n{{ end }}{{ end }}"
    "<|im_start|>assistant\n{{ if and .IsThinkSet (not .Think) }}" + QWEN3_EMPTY_THINK + "{{ end }}"
)
# Qwen3.5's template opens the think block in the generation prompt itself (thinking on: it ends "<think>\n");
# Ollama feeds a prompt that ends with the opening tag to its thinking parser (server/routes.go ~L2728), so the
# answer's thinking is still parsed out
QWEN35_THINKING_OLLAMA_TEMPLATE = QWEN3_THINKING_OLLAMA_TEMPLATE.replace(
    "{{ if and .IsThinkSet (not .Think) }}" + QWEN3_EMPTY_THINK + "{{ end }}",
    "{{ if and .IsThinkSet (not .Think) }}" + QWEN3_EMPTY_THINK + "{{ else }}<think>\n{{ end }}")
THINKING_MODES = ("off", "on", "mixed")


def _token_id(tokenizer, token: str) -> int | None:
    """The id of a token the vocabulary really has (not the unknown token's)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    return token_id if isinstance(token_id, int) and tokenizer.convert_ids_to_tokens(token_id) == token else None


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    end_of_turn: str                      # ends an assistant turn: supervised, and generation stops on it
    stops: tuple[str, ...]                # Ollama's PARAMETER stop list (it replaces Ollama's own)
    ollama_template: str | None           # None: no proven Ollama template (a model outside the registry)
    default_system: str | None = None     # what the template injects when the chat has no system prompt
    pins: dict = field(default_factory=dict)  # template variables the training text fixes (see pin_template)
    # Ollama >= 0.12 PARSER that keeps the Modelfile TEMPLATE in charge and declares no thinking and no tools
    # (None: none needed; ftkit.core.ollama decides by version)
    ollama_parser: str | None = None
    bos_text: str | None = None           # BOS as text in the rendering; llama.cpp (and Ollama) add it as an id
    llama_cpp_pre: str | None = None      # tokenizer.ggml.pre that llama.cpp's converter must write
    template_file: str | None = None      # the real chat template, under llama.cpp/models/templates/
    tiny_model: str = ""                  # the embedded tiny model of this family, under models/
    extra_stop_tokens: tuple[str, ...] = ()  # other tokens that end generation (e.g. end of text)
    # a family that thinks has THINKING=off|on|mixed: the Ollama TEMPLATE of a run trained with thinking
    thinking_ollama_template: str | None = None
    thinking: str = "off"                 # this run's mode (with_thinking); off: thinking pinned off, if it thinks

    @property
    def thinks(self) -> bool:
        return self.thinking_ollama_template is not None

    def with_thinking(self, mode: str | None) -> Family:
        """The family as a run with thinking `mode` renders it: on/mixed keep the template's own
        enable_thinking (no pin, no PARSER: Ollama declares thinking), with the thinking TEMPLATE."""
        mode = mode or "off"
        if mode not in THINKING_MODES:
            raise UserError(f"THINKING={mode}: choose off, on or mixed")
        if mode == "off":
            return self
        if not self.thinks:
            raise UserError(f"THINKING={mode}: {self.title} has no thinking mode (families that think: "
                            f"{', '.join(f.name for f in FAMILIES.values() if f.thinks)}); use THINKING=off")
        pins = {k: v for k, v in self.pins.items() if k != "enable_thinking"}
        return replace(self, thinking=mode, pins=pins, ollama_template=self.thinking_ollama_template,
                       ollama_parser=None, title=f"{self.title.replace(', thinking off', '')}, thinking {mode}")

    @property
    def meta_renderer(self) -> bool:
        """Llama-2 is rendered by Meta's construction in ftkit.core.prompts, not by Jinja."""
        return self.name == "llama2"

    @property
    def proven(self) -> bool:
        return self.ollama_template is not None

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


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("llama2", "Llama-2 chat", "</s>", ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "</s>"),
           LLAMA2_OLLAMA_TEMPLATE, bos_text="<s>", tiny_model="models/tiny-llama"),
    Family("llama3", "Llama-3.x Instruct", "<|eot_id|>", ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
           LLAMA3_OLLAMA_TEMPLATE, pins={"date_string": LLAMA3_DATE}, bos_text="<|begin_of_text|>",
           llama_cpp_pre="llama-bpe", template_file="meta-llama-Llama-3.1-8B-Instruct.jinja",
           tiny_model="models/tiny-llama3", extra_stop_tokens=("<|end_of_text|>", "<|eom_id|>")),
    Family("qwen2.5", "Qwen2.5 Instruct (ChatML)", "<|im_end|>", ("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
           QWEN25_OLLAMA_TEMPLATE, default_system=QWEN25_DEFAULT_SYSTEM, llama_cpp_pre="qwen2",
           template_file="Qwen-Qwen2.5-7B-Instruct.jinja", tiny_model="models/tiny-qwen2.5",
           extra_stop_tokens=("<|endoftext|>",)),
    Family("qwen3", "Qwen3 (ChatML, thinking off)", "<|im_end|>", ("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
           QWEN3_OLLAMA_TEMPLATE, pins={"enable_thinking": False}, llama_cpp_pre="qwen2",
           template_file="Qwen-Qwen3-0.6B.jinja", tiny_model="models/tiny-qwen3", extra_stop_tokens=("<|endoftext|>",),
           # the GGUF's template has <think> and tools: without a PARSER, Ollama >= 0.30 would prefer it and
           # turn thinking on by default; passthrough declares neither (think=true is refused, not ignored)
           ollama_parser="passthrough", thinking_ollama_template=QWEN3_THINKING_OLLAMA_TEMPLATE),
    # Qwen3.5 (hybrid Gated DeltaNet + gated attention): thinking off renders as Qwen3's; its GGUF template too
    # has <think> and tools, hence the same PARSER
    Family("qwen3.5", "Qwen3.5 (ChatML, thinking off)", "<|im_end|>", ("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
           QWEN3_OLLAMA_TEMPLATE, pins={"enable_thinking": False}, llama_cpp_pre="qwen35",
           template_file="Qwen3.5-4B.jinja", tiny_model="models/tiny-qwen3.5", extra_stop_tokens=("<|endoftext|>",),
           ollama_parser="passthrough", thinking_ollama_template=QWEN35_THINKING_OLLAMA_TEMPLATE),
)}

# a model outside the registry that ships a chat template: trained and evaluated with that template;
# its Ollama template is unproven
TEMPLATE_ONLY = Family("template", "the model's own chat template (not in the registry)", "", (), None)


def _template_text(tokenizer) -> str:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    return template or ""


# --- pinning -----------------------------------------------------------------------------------------
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
    text = _template_text(tokenizer)
    if text and original_template(text) != text:
        (Path(folder) / ORIGINAL_TEMPLATE_FILE).write_text(original_template(text), encoding="utf-8")


def detect(tokenizer) -> Family:
    """The family of a tokenizer, from its chat template and special tokens."""
    template = _template_text(tokenizer)
    if not template or ("[INST]" in template and "<<SYS>>" in template):
        return FAMILIES["llama2"]
    if "<|start_header_id|>" in template and "<|eot_id|>" in template:
        return FAMILIES["llama3"]
    if "<|im_start|>" in template:
        if "<function=" in template and "<|vision_start|>" in template:  # Qwen3.5: XML tool calls, vision tokens
            return FAMILIES["qwen3.5"]
        if "enable_thinking" in template or "<think>" in template:
            return FAMILIES["qwen3"]
        if QWEN25_DEFAULT_SYSTEM in template:
            return FAMILIES["qwen2.5"]
    return TEMPLATE_ONLY


def get(name: str) -> Family:
    if name not in FAMILIES:
        raise UserError(f"--family {name}: unknown (choose from {', '.join(FAMILIES)})")
    return FAMILIES[name]


def bind(tokenizer, name: str | None = None, thinking: str | None = None) -> Family:
    """Decide the tokenizer's family once (`name` overrides detection) and its thinking mode (`thinking`;
    default: the mode the template was marked with by the training run, else off), pin its template to the
    variables the family's training text fixes, and remember the family on the tokenizer, so every later
    rendering with it agrees."""
    family = get(name) if name else detect(tokenizer)
    family = family.with_thinking(thinking or thinking_mark(_template_text(tokenizer)) or "off")
    if family.name != "template" and not family.meta_renderer:
        family.end_of_turn_id(tokenizer)  # a wrong --family fails here, not in the middle of training
    if not family.meta_renderer and not _template_text(tokenizer):
        raise UserError(f"the tokenizer has no chat template, which the {family.title} format needs")
    if family.pins or family.thinking != "off":
        tokenizer.chat_template = pinned(tokenizer.chat_template, family)
    tokenizer.ftkit_family = family
    return family


def family_of(tokenizer) -> Family:
    family = getattr(tokenizer, "ftkit_family", None)
    return family if family is not None else bind(tokenizer)


def end_of_turn_id(tokenizer) -> int | None:
    family = family_of(tokenizer)
    if family.name == "template":
        return tokenizer.eos_token_id
    return family.end_of_turn_id(tokenizer) if not family.meta_renderer else tokenizer.eos_token_id


def stop_token_ids(tokenizer, generation_eos=None) -> list[int]:
    return family_of(tokenizer).stop_token_ids(tokenizer, generation_eos)
