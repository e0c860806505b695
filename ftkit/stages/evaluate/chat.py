"""Interactive evaluation: ask both models (or one) and watch the answers stream, with history.

Commands: /reset (forget the conversation), /system <text> (set or, empty, clear the system prompt),
/both, /base, /finetuned (who answers), /think on|off (a model trained with thinking: think first, or
answer at once, as Ollama's think), /help, /quit. Ctrl-D and Ctrl-C leave cleanly.

A model's reasoning is shown apart from its answer, under "(thinking)", and is not kept in the history
(the model's own template drops past reasoning).
"""
from __future__ import annotations

import sys

from ftkit.core import families, prompts
from ftkit.core.inference import Decoding

HELP = ("commands: /reset  /system <text>  /both  /base  /finetuned  /think on|off  /help  /quit   "
        "(Ctrl-D or Ctrl-C also quit)")


class ThinkingPrinter:
    """Prints a streamed answer, its think block set apart: "(thinking) …" on its own lines, then the answer.
    `opened`: the prompt itself opened the think block (Qwen3.5's thinking prompt ends with "<think>\n")."""

    def __init__(self, say_piece, opened: bool = False,
                 tags: tuple[str, str] = (prompts.THINK_OPEN, prompts.THINK_CLOSE)):
        self.say_piece, self.shown = say_piece, 0
        self.tags = tags  # the model's own (prompts.think_tags)
        self.text = tags[0] if opened else ""

    def feed(self, piece: str) -> None:
        self.text += piece
        self._show(final=False)

    def close(self) -> None:
        self._show(final=True)

    def _show(self, final: bool) -> None:
        text, (start, end) = self.text, self.tags
        opening = text.lstrip().startswith(start) or start.startswith(text.lstrip())
        if not final and opening and text.strip() and end not in text:
            # inside a think block (or maybe starting one): show the trace as it comes, after a label
            trace = text.lstrip()[len(start):] if text.lstrip().startswith(start) else ""
            self._emit("(thinking) " + trace.strip())  # trailing whitespace waits: the answer may follow it
            return
        if not final and not text.strip():
            return
        reasoning, answer = prompts.split_generation(text, tags=self.tags)
        shown = (f"(thinking) {reasoning}\n" if reasoning else "") + (answer if reasoning or final else text)
        self._emit(shown)

    def _emit(self, shown: str) -> None:
        # what is on screen only grows: print the part not printed yet (a label is never taken back)
        if len(shown) > self.shown:
            self.say_piece(shown[self.shown:])
            self.shown = len(shown)


class ChatSession:
    def __init__(self, models: dict, tokenizer, decoding: Decoding, mode: str = "both", system: str | None = None,
                 out=None, max_context: int | None = None):
        self.models, self.tokenizer, self.decoding = models, tokenizer, decoding
        self.out = out or sys.stdout
        self.system = system
        self.history: dict[str, list[prompts.Turn]] = {name: [] for name in models}
        self.max_context = max_context or getattr(tokenizer, "model_max_length", 4096)
        self.mode = mode if mode != "both" or len(models) > 1 else next(iter(models))
        self.think: bool | None = None  # None: the model's default (a thinking run thinks)

    def active(self) -> list[str]:
        return list(self.models) if self.mode == "both" else [self.mode]

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def command(self, line: str) -> bool:
        """Handle a /command; returns False when the session should end."""
        name, _, arg = line[1:].partition(" ")
        name = name.lower()
        if name in ("quit", "exit", "q"):
            return False
        if name == "reset":
            self.history = {n: [] for n in self.models}
            self.say("(conversation cleared)")
        elif name == "system":
            self.system = arg.strip() or None
            self.history = {n: [] for n in self.models}  # a new system prompt starts a new conversation
            self.say(f"(system prompt: {self.system!r}; conversation cleared)" if self.system else "(system prompt cleared)")
        elif name in ("both", "base", "finetuned"):
            if name != "both" and name not in self.models:
                self.say(f"(no {name} model loaded)")
            elif name == "both" and len(self.models) < 2:
                self.say("(only one model is loaded)")
            else:
                self.mode = name
                self.say(f"(answering: {', '.join(self.active())})")
        elif name == "think":
            if families.family_of(self.tokenizer).thinking == "off":
                self.say("(this model was trained without thinking)")
            elif arg.strip() in ("on", "off"):
                self.think = arg.strip() == "on"
                self.say(f"(think {arg.strip()}: {'reasoning first' if self.think else 'answers at once'})")
            else:
                self.say("(/think on or /think off)")
        elif name == "help":
            self.say(HELP)
        else:
            self.say(f"(unknown command /{name}; {HELP})")
        return True

    def _prompt_ids(self, name: str, question: str) -> list[int]:
        turns = self.history[name] + [prompts.Turn(question)]
        while True:
            ids = prompts.render_ids(prompts.Conversation(tuple(turns), self.system, self.think), self.tokenizer).prompt_ids
            if len(ids) + self.decoding.max_new_tokens <= self.max_context or len(turns) == 1:
                return ids
            turns = turns[1:]  # forget the oldest turn rather than overflow the context

    def ask(self, question: str) -> dict[str, str]:
        answers = {}
        for name in self.active():
            model = self.models[name]
            print(f"[{name}] ", end="", file=self.out, flush=True)
            prompt_ids = self._prompt_ids(name, question)
            printer = ThinkingPrinter(lambda text: print(text, end="", file=self.out, flush=True),
                                      prompts.opens_thinking(self.tokenizer, prompt_ids),
                                      prompts.think_tags(self.tokenizer))
            for piece in model.stream(prompt_ids, self.decoding):
                printer.feed(piece)
            printer.close()
            self.say()
            answer = prompts.split_generation(printer.text, tags=printer.tags)[1]
            self.history[name].append(prompts.Turn(question, answer or "…"))
            answers[name] = answer
        return answers

    def repl(self, stdin=None) -> None:
        stdin = stdin or sys.stdin
        self.say(f"interactive evaluation — {', '.join(self.models)} loaded. {HELP}")
        while True:
            print("\n你> ", end="", file=self.out, flush=True)
            try:
                line = stdin.readline()
            except KeyboardInterrupt:
                self.say()
                break
            if not line:  # Ctrl-D / end of input
                self.say()
                break
            line = line.strip()
            if not line:
                continue
            try:
                if line.startswith("/"):
                    if not self.command(line):
                        break
                else:
                    self.ask(line)
            except KeyboardInterrupt:
                self.say("\n(interrupted)")
                break
        self.say("bye")
