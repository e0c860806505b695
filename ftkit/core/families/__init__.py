"""Model families: the only place that knows chat formats. One file per family, collected here.

A family file (llama2.py, qwen3.py, deepseek_r1.py, ...) declares one `FAMILY`: how it is recognised (`detects`,
from the chat template and config.json), how a conversation is rendered (Meta's Llama-2 construction, or the
model's own Jinja chat template with the variables the training pins), which token ends an assistant turn (it is
supervised in training and stops generation), which default system prompt the template injects, the Ollama
TEMPLATE (Go text/template) and stop list that reproduce the training text byte for byte, the Ollama PARSER that
keeps Ollama on that TEMPLATE where the GGUF's own template would otherwise win, the pre-tokenizer llama.cpp's
converter must recognise, and the tiny models it builds (`TinyModel`). Files whose name starts with `_` hold what
several families share. Adding a family is adding a file: every generic test then runs it.

Thinking: a family that thinks (Qwen3, Qwen3.5, DeepSeek-R1, Gemma 4) trains with THINKING=off (the default: thinking
pinned off), on or mixed, as its template allows (`Family.with_thinking`): then enable_thinking stays the
caller's, the saved template is marked with the mode instead of pinned, and the Ollama TEMPLATE declares thinking.

Every stage asks `family_of(tokenizer)` once and stays ignorant of formats. A chat template no family claims, or one
that renders a chat otherwise than its family's real template (llama.cpp/models/templates/), is refused when the
tokenizer is first loaded: in the first second of the data stage, not after training. The Ollama templates are
proven against the real templates by tests/test_families.py and ftkit.verify.deploy_parity, through
tests/go/ollama_chat.go, which fills a template the way Ollama does; the pinned templates by llama-server itself.
"""
from __future__ import annotations

import importlib
import json
import logging
import pkgutil
from pathlib import Path

from ftkit.core.cli import UserError
from ftkit.core.families._family import THINKING_MODES, Family, TinyModel, VocabSource
from ftkit.core.families._pinning import (
    ORIGINAL_TEMPLATE_FILE,
    is_pinned_for,
    original_template,
    pin_template,
    pinned,
    template_text,
    thinking_mark,
    write_original_template,
)

__all__ = ["FAMILIES", "NAMES", "ORIGINAL_TEMPLATE_FILE", "THINKERS", "THINKING_MODES", "Family", "TinyModel",
           "VocabSource", "bind", "detect", "end_of_turn_id", "family_of", "get", "is_pinned_for", "original_template",
           "pin_template", "pinned", "stop_token_ids", "thinking_mark", "tiny_model", "write_original_template"]

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).resolve().parents[3] / "llama.cpp" / "models" / "templates"


def _collect() -> dict[str, Family]:
    """Every family file's FAMILY, by name (files in this package whose name does not start with `_`)."""
    found = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
        family = importlib.import_module(f"{__name__}.{module}").FAMILY
        if family.name in found:
            raise RuntimeError(f"two family files name the family {family.name}")
        found[family.name] = family
    return dict(sorted(found.items(), key=lambda item: item[0] != "llama2"))  # the embedded default first


FAMILIES: dict[str, Family] = _collect()
ALIASES: dict[str, str] = {alias: f.name for f in FAMILIES.values() for alias in f.aliases}
NAMES = (*FAMILIES, *ALIASES)  # what FAMILY= and --family accept
THINKERS = tuple(f.name for f in FAMILIES.values() if f.thinks)


def get(name: str) -> Family:
    """A family by its name or one of its aliases (FAMILY=qwen3.8 is qwen3.5)."""
    key = name.lower()
    if key in ALIASES:
        log.info("family: %s is an alias of %s (same architecture and chat template)", name, ALIASES[key])
        key = ALIASES[key]
    if key not in FAMILIES:
        raise UserError(f"--family {name}: unknown (choose from {', '.join(FAMILIES)}; aliases: "
                        f"{', '.join(f'{a}={n}' for a, n in ALIASES.items())})")
    return FAMILIES[key]


def tiny_model(name: str) -> tuple[Family, TinyModel]:
    """A tiny model by its name (llama, qwen3-moe, ...) or its family's name (llama2: the tiny Llama)."""
    for family in FAMILIES.values():
        for tiny in family.tiny_models:
            if name in (tiny.name, tiny.folder):
                return family, tiny
    if name in FAMILIES or name in ALIASES:
        family = get(name)
        return family, family.tiny_models[0]
    names = [t.name for f in FAMILIES.values() for t in f.tiny_models]
    raise UserError(f"tiny model {name}: unknown (choose from {', '.join(names)})")


TABLE_START = "<!-- family-table:start (make docs writes this from the family files, ftkit/core/families/) -->"
TABLE_END = "<!-- family-table:end -->"


def markdown_table(_records=None) -> str:
    """README's family table, made from the family files by `make docs`."""
    def code(items) -> str:
        return ", ".join(f"`{item}`" for item in items)

    rows = ["| `FAMILY=` (aliases) | pass as `BASE_MODEL` | chat format; end of turn | `THINKING=` | tiny models "
            "(`make demo FAMILY=…`) | Ollama Modelfile | presets |", "|---|---|---|---|---|---|---|"]
    for f in FAMILIES.values():
        tiny = "; ".join(f"`{t.folder}`" + (f" ({t.note})" if t.note else "") for t in f.tiny_models)
        ollama = "TEMPLATE, stops" + (f", `PARSER {f.ollama_parser}` (thinking off)" if f.ollama_parser else "")
        cells = [f"`{f.name}`{f' ({code(f.aliases)})' if f.aliases else ''}", code(f.examples), f.format_note,
                 ", ".join(f.thinking_modes("")), tiny, ollama, code(f.presets) or "by size"]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")  # a | inside a cell
    return "\n".join(rows)


def _model_config(tokenizer) -> dict:
    """config.json beside the tokenizer, when it is a model folder ({} for an adapter or a tokenizer alone)."""
    path = Path(str(getattr(tokenizer, "name_or_path", "") or "")) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _model_label(tokenizer) -> str:
    return str(getattr(tokenizer, "name_or_path", "") or "the model")


HOW_TO_ADD = ("If it is one of them, set FAMILY=<name>; otherwise add a family file under ftkit/core/families/ "
              "(docs/models.md, 'Adding a family') - ftkit will not train a format it cannot serve as trained")


def unsupported_message(tokenizer) -> str:
    return f"{_model_label(tokenizer)}: its chat template is of no family ftkit knows ({', '.join(FAMILIES)}). {HOW_TO_ADD}"


def detect(tokenizer) -> Family:
    """The family of a tokenizer, from its chat template (and config.json, where one is beside it); the most
    specific of the families whose rule matches. Refused when none does."""
    template = original_template(template_text(tokenizer))
    config = _model_config(tokenizer)
    matches = [f for f in FAMILIES.values() if f.detects(template, config)]
    if not matches:
        raise UserError(unsupported_message(tokenizer))
    return max(matches, key=lambda f: f.priority)


def _named_alias(tokenizer, family: Family) -> str | None:
    """The alias the model's name or config names (Qwen3.8 for qwen3.5), to say so in the log."""
    config = _model_config(tokenizer)
    text = " ".join([_model_label(tokenizer), str(config.get("_name_or_path", "")), *config.get("architectures", [])])
    squeezed = text.lower().replace("-", "").replace("_", "")
    return next((a for a in family.aliases if a.replace("-", "") in squeezed), None)


def _probe_conversations() -> list[list[dict]]:
    return [[{"role": "user", "content": "你好"}],
            [{"role": "system", "content": "你是助手。"}, {"role": "user", "content": "1+1=?"},
             {"role": "assistant", "content": "2"}, {"role": "user", "content": "2+2=?"}]]


def _probe_variables(family: Family, template: str) -> list[dict]:
    """The template variables a run of `family` renders with: its pins; in a thinking run each think value."""
    if family.thinking == "off":
        return [family.pins]
    switch = len(family.thinking_modes(template)) > 1  # a template without the switch always thinks
    return [{**family.pins, "enable_thinking": think} for think in ((True, False) if switch else (True,))]


def renders_as_family(tokenizer, family: Family) -> str | None:
    """None when the tokenizer's own template renders chats as the family's real template does (with the
    training's pins, or each think value of a thinking run); else the first difference. A family without a real
    template file is not compared."""
    if family.meta_renderer or not family.template_file:
        return None
    real = TEMPLATES / family.template_file
    if not real.is_file():
        log.warning("family: %s is missing (llama.cpp submodule not checked out?): the chat template of %s is not "
                    "compared with %s's", real, _model_label(tokenizer), family.name)
        return None
    own, real_text = original_template(template_text(tokenizer)), real.read_text(encoding="utf-8")
    for variables in _probe_variables(family, own):
        for messages in _probe_conversations():
            kwargs = {"tokenize": False, "add_generation_prompt": True, **variables}
            mine = tokenizer.apply_chat_template(messages, chat_template=own, **kwargs)
            theirs = tokenizer.apply_chat_template(messages, chat_template=real_text, **kwargs)
            if mine != theirs:
                at = next((i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b),
                          min(len(mine), len(theirs)))
                return f"{mine[max(0, at - 20):at + 30]!r} where {family.name}'s has {theirs[max(0, at - 20):at + 30]!r}"
    return None


def bind(tokenizer, name: str | None = None, thinking: str | None = None) -> Family:
    """Decide the tokenizer's family once (`name` overrides detection) and its thinking mode (`thinking`;
    default: the mode the template was marked with by the training run, else off), check that its template
    renders as the family's, pin its template to the variables the family's training text fixes, and remember
    the family on the tokenizer, so every later rendering with it agrees."""
    family = get(name) if name else detect(tokenizer)
    template = template_text(tokenizer)
    if not name:
        alias = _named_alias(tokenizer, family)
        log.info("family: %s (%s), detected from the chat template of %s%s", family.name, family.title,
                 _model_label(tokenizer), f"; {alias} is an alias of {family.name}" if alias else "")
    if not family.meta_renderer and not template:
        raise UserError(f"the tokenizer has no chat template, which the {family.title} format needs")
    family = family.with_thinking(thinking or thinking_mark(template) or "off", original_template(template))
    if not family.meta_renderer:
        family.end_of_turn_id(tokenizer)  # a wrong --family fails here, not in the middle of training
        difference = renders_as_family(tokenizer, family)
        if difference:
            raise UserError(f"{_model_label(tokenizer)}: its chat template renders a chat otherwise than "
                            f"{family.title}'s ({difference}); ftkit would train one format and Ollama would be "
                            f"given another. {HOW_TO_ADD}")
    if family.pins or family.thinking != "off":
        tokenizer.chat_template = pinned(tokenizer.chat_template, family)
    tokenizer.ftkit_family = family
    return family


def family_of(tokenizer) -> Family:
    family = getattr(tokenizer, "ftkit_family", None)
    return family if family is not None else bind(tokenizer)


def end_of_turn_id(tokenizer) -> int | None:
    family = family_of(tokenizer)
    return family.end_of_turn_id(tokenizer) if not family.meta_renderer else tokenizer.eos_token_id


def stop_token_ids(tokenizer, generation_eos=None) -> list[int]:
    return family_of(tokenizer).stop_token_ids(tokenizer, generation_eos)
