"""The one prompt renderer of the toolkit.

Training, evaluation, the GGUF check and the Ollama Modelfile all go through this module, so the
model sees at inference exactly the text it was trained on.

Llama-2 chat format (Meta's reference `chat_completion`, which llama.cpp reproduces), per turn:

    <s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST] {answer} </s>

The system block appears only in the first turn and only when there is a system prompt. Token ids
are built the way Meta builds them: for each completed turn
`[BOS] + encode(f"[INST] {user} [/INST] {answer} ") + [EOS]`, for the open turn
`[BOS] + encode(f"[INST] {user} [/INST]")`, where `encode` applies sentencepiece's dummy prefix (the
first piece is "▁["). BOS/EOS are ids, never text, so BOS is never duplicated.

Other families (Llama-3, Qwen2.5, Qwen3, or a model outside the registry that ships a chat template)
are rendered with the model's own chat template, pinned to the variables its family fixes
(ftkit.families: Llama-3.1's date, Qwen3's thinking off): the prompt is the template's generation
prompt, and the answer runs up to and including the family's end-of-turn token.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from ftkit import families

B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"
BOS_TEXT, EOS_TEXT = "<s>", "</s>"

# The Llama-2 chat template as shipped with Meta's checkpoints. The tiny model carries it, and a
# tokenizer whose template contains these markers is rendered by this module rather than by Jinja.
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)


class PromptError(ValueError):
    """A record that cannot be rendered. `reason` is a stable code (missing_field, not_string,
    empty_field, empty_answer, bad_role_order) that the data stage counts rejections by."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class Turn(NamedTuple):  # named tuples: cheap to build for a million records
    user: str
    answer: str | None = None  # None: the open turn the model is asked to answer


class Conversation(NamedTuple):
    turns: tuple[Turn, ...]
    system: str | None = None

    @property
    def is_open(self) -> bool:
        return self.turns[-1].answer is None

    def to_messages(self) -> list[dict]:
        messages = [{"role": "system", "content": self.system}] if self.system else []
        for turn in self.turns:
            messages.append({"role": "user", "content": turn.user})
            if turn.answer is not None:
                messages.append({"role": "assistant", "content": turn.answer})
        return messages

    def without_last_answer(self) -> Conversation:
        last = self.turns[-1]
        return Conversation(self.turns[:-1] + (Turn(last.user),), self.system)


@dataclass(frozen=True)
class RenderedIds:
    """Token ids of one conversation: the loss covers `answer_ids` (final answer + EOS) only."""

    prompt_ids: list[int]
    answer_ids: list[int] = field(default_factory=list)

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.answer_ids


def _clean(text, what: str, empty_reason: str = "empty_field") -> str:
    if text is None:
        raise PromptError("missing_field", f"{what} is missing")
    if not isinstance(text, str):
        raise PromptError("not_string", f"{what} must be a string, got {type(text).__name__}")
    text = text.strip()
    if not text:
        raise PromptError(empty_reason, f"{what} is empty")
    return text


def from_alpaca(record: dict) -> Conversation:
    """instruction/input/output (+ optional system and history [[user, answer], ...]) -> Conversation.

    `input` is joined to `instruction` with a newline; a record without `output` gives an open turn.
    """
    user = _clean(record.get("instruction"), "instruction")
    extra = record.get("input")
    if extra is not None and not isinstance(extra, str):
        raise PromptError("not_string", f"input must be a string, got {type(extra).__name__}")
    if extra and extra.strip():
        user = f"{user}\n{extra.strip()}"
    history = record.get("history") or []
    if not isinstance(history, list) or not all(isinstance(pair, list | tuple) and len(pair) == 2 for pair in history):
        raise PromptError("bad_history", "history must be a list of [question, answer] pairs")
    turns = [Turn(_clean(u, "history question"), _clean(a, "history answer", "empty_answer")) for u, a in history]
    output = record.get("output")
    turns.append(Turn(user, None if output is None else _clean(output, "output", "empty_answer")))
    system = record.get("system")
    return Conversation(tuple(turns), _clean(system, "system") if system and str(system).strip() else None)


def from_messages(messages: list[dict]) -> Conversation:
    """OpenAI-style messages (optional leading system, then user/assistant alternating) -> Conversation."""
    if not isinstance(messages, list) or not messages:
        raise PromptError("bad_role_order", "messages must be a non-empty list")
    if not all(isinstance(m, dict) for m in messages):
        raise PromptError("bad_role_order", "every message must be an object with role and content")
    system = None
    if messages[0].get("role") == "system":
        system = _clean(messages[0].get("content"), "system content")
        messages = messages[1:]
    turns: list[Turn] = []
    for i, message in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        role = message.get("role")
        if role != expected:
            raise PromptError("bad_role_order", f"message {i}: role {role!r} where {expected!r} was expected")
        content = _clean(message.get("content"), f"message {i} content",
                         "empty_answer" if expected == "assistant" else "empty_field")
        if expected == "user":
            turns.append(Turn(content))
        else:
            turns[-1] = Turn(turns[-1].user, content)
    if not turns:
        raise PromptError("bad_role_order", "no user message")
    return Conversation(tuple(turns), system)


def _inst_bodies(conv: Conversation) -> list[str]:
    """The text between [INST] and [/INST] of each turn (system block folded into the first)."""
    bodies = [turn.user.strip() for turn in conv.turns]
    if conv.system:
        bodies[0] = f"{B_SYS}{conv.system.strip()}{E_SYS}{bodies[0]}"
    return bodies


def _turn_texts(conv: Conversation) -> list[str]:
    """Each turn without BOS/EOS, exactly as Meta encodes it."""
    texts = []
    for body, turn in zip(_inst_bodies(conv), conv.turns, strict=True):
        if turn.answer is None:
            texts.append(f"{B_INST} {body} {E_INST}")
        else:
            texts.append(f"{B_INST} {body} {E_INST} {turn.answer.strip()} ")
    return texts


def render_llama2_text(conv: Conversation) -> str:
    """The conversation as Llama-2 chat text, with <s>/</s> written out (for display and data files)."""
    parts = []
    for text, turn in zip(_turn_texts(conv), conv.turns, strict=True):
        parts.append(BOS_TEXT + text + (EOS_TEXT if turn.answer is not None else ""))
    return "".join(parts)


def llama2_prompt_chars(conv: Conversation, text: str) -> int:
    """Length of the prompt part of `text` (= render_llama2_text(conv) of an answered conversation):
    everything before the space that opens the final answer."""
    return len(text) - len(f" {conv.turns[-1].answer.strip()} {EOS_TEXT}")


def uses_llama2_format(tokenizer) -> bool:
    """True when the tokenizer's family is Llama-2 (no chat template of its own, or Meta's)."""
    return families.family_of(tokenizer).meta_renderer


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def _split_answer(full: list[int], prompt: list[int], what: str) -> list[int]:
    if full[: len(prompt)] != prompt:
        raise PromptError("tokenizer", f"{what}: the prompt does not tokenize as a prefix of prompt + answer")
    return full[len(prompt):]


def _render_llama2_ids(conv: Conversation, tokenizer) -> RenderedIds:
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if bos is None or eos is None:
        raise PromptError("tokenizer", "the tokenizer has no BOS/EOS token, which the Llama-2 format needs")
    texts = _turn_texts(conv)
    ids: list[int] = []
    for text in texts[:-1]:
        ids += [bos] + _encode(tokenizer, text) + [eos]
    if conv.is_open:
        return RenderedIds(ids + [bos] + _encode(tokenizer, texts[-1]))
    prompt_text = _turn_texts(conv.without_last_answer())[-1]
    prompt = [bos] + _encode(tokenizer, prompt_text)
    full = [bos] + _encode(tokenizer, texts[-1])
    return RenderedIds(ids + prompt, _split_answer(full, prompt, "final turn") + [eos])


def _apply_template(tokenizer, messages: list[dict], generation_prompt: bool) -> str:
    families.family_of(tokenizer)  # binds the family, which pins the template's variables the training fixes
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def _render_template_ids(conv: Conversation, tokenizer) -> RenderedIds:
    prompt = _encode(tokenizer, _apply_template(tokenizer, conv.without_last_answer().to_messages(), True))
    if conv.is_open:
        return RenderedIds(prompt)  # the template writes its special tokens (and any BOS) as text
    full = _encode(tokenizer, _apply_template(tokenizer, conv.to_messages(), False))
    answer = _split_answer(full, prompt, "chat template")
    # supervise the answer and the token that ends the turn; what the template writes after it
    # (ChatML's newline) belongs to the next turn
    end = families.end_of_turn_id(tokenizer)
    if end is not None:
        answer = answer[: answer.index(end) + 1] if end in answer else answer + [end]
    return RenderedIds(prompt, answer)


def render_ids(conv: Conversation, tokenizer) -> RenderedIds:
    """Token ids of a conversation for this tokenizer: prompt ids and (if answered) answer ids + end of turn."""
    if uses_llama2_format(tokenizer):
        return _render_llama2_ids(conv, tokenizer)
    return _render_template_ids(conv, tokenizer)


def render_text(conv: Conversation, tokenizer=None) -> str:
    """The conversation as text: the Llama-2 format, or the family's rendering with the model's template."""
    if tokenizer is None or uses_llama2_format(tokenizer):
        return render_llama2_text(conv)
    return _apply_template(tokenizer, conv.to_messages(), conv.is_open)
