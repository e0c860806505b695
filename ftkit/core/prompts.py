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

Other families (Llama-3, Qwen, DeepSeek-R1, Gemma 4: one file each in ftkit.core.families) are rendered with
the model's own chat template, pinned to the variables its family fixes (Llama-3.1's date, Qwen3's thinking off):
the prompt is the template's generation prompt, and the answer runs up to and including the family's end-of-turn
token. Where the template writes a past answer otherwise than the model writes it after that prompt (DeepSeek-R1
and Gemma 4 drop its reasoning), the answer is written as the family file says (`answer_after_prompt`).

Reasoning. An answer may carry a reasoning trace (a `reasoning_content` field, or `<think>…</think>`
before the answer). A run that trains thinking (THINKING=on|mixed, families that think) renders it as
the model's own template renders a reasoning turn: the final turn's trace inside its think block,
supervised; earlier turns as the template renders history (Qwen3 drops their reasoning). Which
generation prompt a record gets — thinking (`enable_thinking` true: the prompt ends at the
assistant header) or not (false: the empty think block ends the prompt) — is `thinks()`; it is the
prompt Ollama's think=true / think=false renders, so each record trains the case it stands for.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from ftkit.core import families

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
    empty_field, empty_answer, bad_role_order, unclosed_think, reasoning_without_answer, two_traces,
    chat_template, unsplittable, ...) that the data stage counts rejections by."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class Turn(NamedTuple):  # named tuples: cheap to build for a million records
    user: str
    answer: str | None = None  # None: the open turn the model is asked to answer
    reasoning: str | None = None  # the answer's reasoning trace, without its think tags


class Conversation(NamedTuple):
    turns: tuple[Turn, ...]
    system: str | None = None
    think: bool | None = None  # an open chat's think request (None: the run's default, as Ollama's)

    @property
    def is_open(self) -> bool:
        return self.turns[-1].answer is None

    @property
    def has_reasoning(self) -> bool:
        return any(turn.reasoning for turn in self.turns)

    def to_messages(self, reasoning: bool = True) -> list[dict]:
        """OpenAI-style messages; a trace goes in `reasoning_content`, where chat templates read it."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        for turn in self.turns:
            messages.append({"role": "user", "content": turn.user})
            if turn.answer is not None:
                messages.append({"role": "assistant", "content": turn.answer})
                if reasoning and turn.reasoning:
                    messages[-1]["reasoning_content"] = turn.reasoning
        return messages

    def without_last_answer(self) -> Conversation:
        last = self.turns[-1]
        return Conversation(self.turns[:-1] + (Turn(last.user),), self.system, self.think)

    def without_reasoning(self) -> Conversation:
        return self._replace(turns=tuple(Turn(t.user, t.answer) for t in self.turns))


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


# --- reasoning traces ------------------------------------------------------------------------------
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
# where data sets put an answer's trace: Qwen's/DeepSeek's API field, LLaMA-Factory's and others' names, Ollama's
REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking", "think")


def split_reasoning(text: str, what: str) -> tuple[str | None, str]:
    """An answer that carries its trace inline -> (trace or None, answer), split as Qwen3's template splits
    it: the trace is what precedes `</think>` (after `<think>`, which a Qwen3-thinking output may lack, its
    template having written it), the answer what follows. An empty trace is no trace."""
    if THINK_CLOSE not in text:
        if text.lstrip().startswith(THINK_OPEN):
            raise PromptError("unclosed_think", f"{what} opens {THINK_OPEN} and never closes it")
        return None, text
    head, _, answer = text.partition(THINK_CLOSE)
    before, opened, trace = head.partition(THINK_OPEN)
    if opened and before.strip():
        raise PromptError("text_before_think", f"{what} has text before {THINK_OPEN}")
    if THINK_OPEN in answer or THINK_CLOSE in answer:
        raise PromptError("two_think_blocks", f"{what} holds more than one think block")
    trace, answer = (trace if opened else before).strip(), answer.strip()
    if not answer:
        raise PromptError("reasoning_without_answer", f"{what} has a reasoning trace and no answer after {THINK_CLOSE}")
    return trace or None, answer


def think_tags(tokenizer) -> tuple[str, str]:
    """What opens and closes a trace in what this tokenizer's model writes (<think>…</think>; Gemma 4: its
    thought channel)."""
    return families.family_of(tokenizer).think_tags


def opens_thinking(tokenizer, prompt_ids: list[int]) -> bool:
    """The prompt itself opens the think block (Qwen3.5's thinking prompt ends "<think>\n"): what the model
    generates starts inside it."""
    return tokenizer.decode(prompt_ids[-4:]).rstrip().endswith(think_tags(tokenizer)[0].rstrip())


def split_generation(text: str, opened: bool = False, tags: tuple[str, str] = (THINK_OPEN, THINK_CLOSE)
                     ) -> tuple[str | None, str]:
    """What a model generated -> (trace or None, answer); never fails: an unclosed trace (the token budget ran
    out while thinking) leaves an empty answer. `opened`: the prompt opened the think block. `tags`: the model's
    own (think_tags)."""
    start, end = tags
    text = start + text if opened else text.lstrip()
    if text.startswith(start) and end not in text:
        return text[len(start):].strip() or None, ""
    head, closed, answer = text.partition(end)
    if not closed:
        return None, text.strip()
    return head.partition(start)[2].strip() or head.strip() or None, answer.strip()


def _field_reasoning(holder: dict, what: str) -> str | None:
    for key in REASONING_FIELDS:
        value = holder.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise PromptError("not_string", f"{what} {key} must be a string, got {type(value).__name__}")
        return value.strip() or None
    return None


def _answer_turn(user: str, answer: str, field_trace: str | None, what: str) -> Turn:
    """A turn whose answer may hold its trace inline, or name it in a field (not both)."""
    inline, answer = split_reasoning(answer, what)
    if inline and field_trace:
        raise PromptError("two_traces", f"{what} has a reasoning field and a {THINK_OPEN} block")
    return Turn(user, answer, inline or field_trace)


def from_alpaca(record: dict) -> Conversation:
    """instruction/input/output (+ optional system, history [[user, answer], ...] and a reasoning field)
    -> Conversation.

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
    turns = [_answer_turn(_clean(u, "history question"), _clean(a, "history answer", "empty_answer"), None,
                          "history answer") for u, a in history]
    output = record.get("output")
    if output is None:
        turns.append(Turn(user))
    else:
        turns.append(_answer_turn(user, _clean(output, "output", "empty_answer"), _field_reasoning(record, "output"),
                                  "output"))
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
            what = f"message {i}"
            turns[-1] = _answer_turn(turns[-1].user, content, _field_reasoning(message, what), what)
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
        raise PromptError("unsplittable", f"{what}: the prompt does not tokenize as a prefix of prompt + answer "
                                          "(the template renders this answer apart from its prompt)")
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


def thinks(conv: Conversation, family: families.Family) -> bool:
    """Whether the conversation's final turn is rendered in thinking mode (the generation prompt without the
    empty think block). A run without thinking: never. An open chat: its think request, else yes (the
    template's default, and Ollama's for a model that declares thinking). An answer: in THINKING=on always
    (a record without a trace learns the empty block as part of its answer); in mixed, when it has a trace
    (one without learns to answer at once after the empty block, which sits in its prompt, with no loss)."""
    if family.thinking == "off":
        return False
    if conv.think is not None:
        return conv.think
    if conv.is_open:
        return True
    return family.thinking == "on" or conv.turns[-1].reasoning is not None


def _template_input(conv: Conversation, family: families.Family) -> tuple[Conversation, dict]:
    """The conversation as the template receives it (traces only in a thinking run) and its kwargs."""
    if family.thinking == "off":
        return conv.without_reasoning(), {}  # the pinned template: no kwargs can change it
    return conv, {"enable_thinking": thinks(conv, family)}


def _apply_template(tokenizer, messages: list[dict], generation_prompt: bool, kwargs: dict | None = None) -> str:
    from jinja2 import TemplateError

    families.family_of(tokenizer)  # binds the family, which pins the template's variables the training fixes
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt,
                                             **(kwargs or {}))
    except TemplateError as err:  # the template's own raise_exception, or a message shape it cannot render
        raise PromptError("chat_template", f"the chat template cannot render it: {err}") from None


def _text_after(tokenizer, prompt_text: str, full_text: str) -> list[int]:
    """The answer's ids where the prompt ends inside a token of the whole text: Qwen3.5's thinking prompt ends
    "<think>\n", and "\n\n" is one token of "<think>\n\n</think>". The model is given the prompt's ids and
    must generate the rest, so the rest is encoded on its own, as it will be generated."""
    if not full_text.startswith(prompt_text):
        raise PromptError("unsplittable", "chat template: the prompt is not the beginning of prompt + answer (the "
                                          "template renders this answer apart from its prompt)")
    return _encode(tokenizer, full_text[len(prompt_text):])


def _full_text(conv: Conversation, tokenizer, family: families.Family, prompt_text: str, kwargs: dict) -> str:
    """The whole answered conversation as text: the template's rendering, or, for a family whose template
    renders a past answer otherwise than the model writes it (DeepSeek-R1 drops its reasoning), the prompt and
    the final answer as the model writes it after that prompt."""
    if family.answer_after_prompt is None:
        return _apply_template(tokenizer, conv.to_messages(), False, kwargs)
    last = conv.turns[-1]
    return prompt_text + family.answer_after_prompt(last.reasoning, last.answer, kwargs.get("enable_thinking", False))


def _render_template_ids(conv: Conversation, tokenizer) -> RenderedIds:
    family = families.family_of(tokenizer)
    conv, kwargs = _template_input(conv, family)
    prompt_text = _apply_template(tokenizer, conv.without_last_answer().to_messages(), True, kwargs)
    prompt = _encode(tokenizer, prompt_text)
    if conv.is_open:
        return RenderedIds(prompt)  # the template writes its special tokens (and any BOS) as text
    full_text = _full_text(conv, tokenizer, family, prompt_text, kwargs)
    full = _encode(tokenizer, full_text)
    answer = full[len(prompt):] if full[: len(prompt)] == prompt else _text_after(tokenizer, prompt_text, full_text)
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
    family = families.family_of(tokenizer)
    conv, kwargs = _template_input(conv, family)
    if conv.is_open or family.answer_after_prompt is None:
        return _apply_template(tokenizer, conv.to_messages(), conv.is_open, kwargs)
    prompt_text = _apply_template(tokenizer, conv.without_last_answer().to_messages(), True, kwargs)
    return _full_text(conv, tokenizer, family, prompt_text, kwargs) + family.end_of_turn
