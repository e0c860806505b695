"""Model families: the only place that knows chat formats.

A family answers, for one kind of chat model: how a conversation is rendered (Meta's Llama-2
construction, or the model's own Jinja chat template with fixed arguments), which token ends an
assistant turn (it is supervised in training and stops generation), which default system prompt the
template injects, the Ollama TEMPLATE (Go text/template) and stop list that reproduce the training
text byte for byte, and the pre-tokenizer llama.cpp's converter must recognise.

Every stage asks `family_of(tokenizer)` once and stays ignorant of formats. The Ollama templates
are proven against the real Hugging Face templates (llama.cpp/models/templates/) by
tests/test_families.py, through tests/go/ollama_template.go, which fills a template the way
Ollama does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ftkit.cli import UserError

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
    template_kwargs: dict = field(default_factory=dict)  # extra Jinja variables, fixed for reproducibility
    bos_text: str | None = None           # BOS as text in the rendering; llama.cpp (and Ollama) add it as an id
    llama_cpp_pre: str | None = None      # tokenizer.ggml.pre that llama.cpp's converter must write
    template_file: str | None = None      # the real chat template, under llama.cpp/models/templates/
    tiny_model: str = ""                  # the embedded tiny model of this family, under models/
    extra_stop_tokens: tuple[str, ...] = ()  # other tokens that end generation (e.g. end of text)

    @property
    def meta_renderer(self) -> bool:
        """Llama-2 is rendered by Meta's construction in ftkit.prompts, not by Jinja."""
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
           LLAMA3_OLLAMA_TEMPLATE, template_kwargs={"date_string": LLAMA3_DATE}, bos_text="<|begin_of_text|>",
           llama_cpp_pre="llama-bpe", template_file="meta-llama-Llama-3.1-8B-Instruct.jinja",
           tiny_model="models/tiny-llama3", extra_stop_tokens=("<|end_of_text|>", "<|eom_id|>")),
    Family("qwen2.5", "Qwen2.5 Instruct (ChatML)", "<|im_end|>", ("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
           QWEN25_OLLAMA_TEMPLATE, default_system=QWEN25_DEFAULT_SYSTEM, llama_cpp_pre="qwen2",
           template_file="Qwen-Qwen2.5-7B-Instruct.jinja", tiny_model="models/tiny-qwen2.5",
           extra_stop_tokens=("<|endoftext|>",)),
    Family("qwen3", "Qwen3 (ChatML, thinking off)", "<|im_end|>", ("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
           QWEN3_OLLAMA_TEMPLATE, template_kwargs={"enable_thinking": False}, llama_cpp_pre="qwen2",
           template_file="Qwen-Qwen3-0.6B.jinja", tiny_model="models/tiny-qwen3", extra_stop_tokens=("<|endoftext|>",)),
)}

# a model outside the registry that ships a chat template: trained and evaluated with that template;
# its Ollama template is unproven
TEMPLATE_ONLY = Family("template", "the model's own chat template (not in the registry)", "", (), None)


def _template_text(tokenizer) -> str:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    return template or ""


def detect(tokenizer) -> Family:
    """The family of a tokenizer, from its chat template and special tokens."""
    template = _template_text(tokenizer)
    if not template or ("[INST]" in template and "<<SYS>>" in template):
        return FAMILIES["llama2"]
    if "<|start_header_id|>" in template and "<|eot_id|>" in template:
        return FAMILIES["llama3"]
    if "<|im_start|>" in template:
        if "enable_thinking" in template or "<think>" in template:
            return FAMILIES["qwen3"]
        if QWEN25_DEFAULT_SYSTEM in template:
            return FAMILIES["qwen2.5"]
    return TEMPLATE_ONLY


def get(name: str) -> Family:
    if name not in FAMILIES:
        raise UserError(f"--family {name}: unknown (choose from {', '.join(FAMILIES)})")
    return FAMILIES[name]


def bind(tokenizer, name: str | None = None) -> Family:
    """Decide the tokenizer's family once (`name` overrides detection) and remember it on the tokenizer,
    so every later rendering with it agrees."""
    family = get(name) if name else detect(tokenizer)
    if family.name != "template" and not family.meta_renderer:
        family.end_of_turn_id(tokenizer)  # a wrong --family fails here, not in the middle of training
    if not family.meta_renderer and not _template_text(tokenizer):
        raise UserError(f"the tokenizer has no chat template, which the {family.title} format needs")
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
