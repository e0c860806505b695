"""Ollama stage: a Modelfile whose TEMPLATE renders exactly the training format, and `ollama create`.

User text that lands in the Modelfile (system prompt, model name) is validated first: a model name
reaches a shell command, and a system prompt must not be able to end its quoted block.
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

from ftkit import families
from ftkit.cli import UserError
from ftkit.io import write_text_atomic

log = logging.getLogger(__name__)

MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}(:[a-zA-Z0-9._-]{1,64})?$")
SAMPLING = ("temperature", "top_p", "top_k", "repeat_penalty", "seed")


def check_model_name(name: str) -> str:
    if not MODEL_NAME.match(name or ""):
        raise UserError(f"model name {name!r}: use lowercase letters, digits, '.', '_', '-' (and an optional :tag)")
    return name


def context_length(model_path: str, cap: int = 4096) -> int:
    """The model's trained context, at most `cap` (Ollama allocates the whole context up front)."""
    import json

    config = Path(model_path) / "config.json"
    trained = json.loads(config.read_text()).get("max_position_embeddings", cap) if config.exists() else cap
    return min(int(trained), cap)


def _triple_quoted(text: str, what: str) -> str:
    if '"""' in text:
        raise UserError(f'{what} must not contain """ (it would end the Modelfile block early)')
    return f'"""{text}"""'


def modelfile_text(gguf_file: str, tokenizer=None, system: str | None = None, num_ctx: int = 4096,
                   sampling: dict | None = None, family: families.Family | None = None,
                   adapter: str | None = None) -> str:
    """The Modelfile. FROM (and ADAPTER, for an adapter-only export) are relative to the Modelfile's
    folder, where the GGUFs lie. The family (from `tokenizer`, or given) supplies TEMPLATE and stops."""
    family = family or (families.family_of(tokenizer) if tokenizer is not None else families.FAMILIES["llama2"])
    name = "Modelfile.adapter" if adapter else "Modelfile"
    lines = [f"# Made by ftkit: ollama create <name> -f {Path(gguf_file).parent}/{name}",
             f"# family: {family.name}", f"FROM ./{Path(gguf_file).name}"]
    if adapter:
        lines.append(f"ADAPTER ./{Path(adapter).name}")
    if family.proven:
        lines.append(f"TEMPLATE {_triple_quoted(family.ollama_template, 'the template')}")
        # an explicit stop list replaces the one Ollama would detect, so it lists every marker
        lines += [f'PARAMETER stop "{stop}"' for stop in family.stops]
    else:
        # Ollama does not run the GGUF's Jinja template: it guesses one of its own, or uses {{ .Prompt }}
        lines.append("# UNPROVEN: no TEMPLATE: this model's chat format is not in ftkit's family registry; Ollama "
                     "will guess a template. Write one that renders exactly the training text before serving.")
        log.warning("ollama: %s: the model's chat format is outside the family registry (%s): the Modelfile has "
                    "no proven TEMPLATE, and Ollama may render prompts differently from training", gguf_file,
                    ", ".join(families.FAMILIES))
    lines.append(f"PARAMETER num_ctx {int(num_ctx)}")
    for key, value in (sampling or {}).items():
        if key not in SAMPLING:
            raise UserError(f"unknown sampling parameter {key!r} (choose from {', '.join(SAMPLING)})")
        if value is not None:
            number = int(value) if key in ("top_k", "seed") else float(value)
            lines.append(f"PARAMETER {key} {number}")
    if system:
        lines.append(f"SYSTEM {_triple_quoted(system, '--system')}")
    return "\n".join(lines) + "\n"


def family_of_modelfile(modelfile: str | Path) -> str | None:
    m = re.search(r"^# family: (\S+)$", Path(modelfile).read_text(encoding="utf-8"), re.M)
    return m.group(1) if m else None


def stops_of(modelfile: str | Path) -> list[str]:
    return re.findall(r'^PARAMETER stop "(.*)"$', Path(modelfile).read_text(encoding="utf-8"), re.M)


def write_modelfile(path: str | Path, gguf_file: str, **kwargs) -> Path:
    path = Path(path)
    for file in (gguf_file, kwargs.get("adapter")):
        if file and Path(file).resolve().parent != path.resolve().parent:
            raise UserError(f"the Modelfile must sit beside {file} (FROM and ADAPTER are relative)")
    write_text_atomic(path, modelfile_text(gguf_file, **kwargs))
    log.info("ollama: wrote %s", path)
    return path


def template_of(modelfile: str | Path) -> str | None:
    """The TEMPLATE block of a Modelfile, as Ollama reads it."""
    m = re.search(r'^TEMPLATE """(.*?)"""', Path(modelfile).read_text(encoding="utf-8"), re.S | re.M)
    return m.group(1) if m else None


def deploy(model_name: str, modelfile: str | Path, smoke_prompt: str = "你好") -> int:
    """`ollama create` + a one-line `ollama run` when ollama is installed; else print the commands."""
    check_model_name(model_name)
    modelfile = Path(modelfile)
    if not modelfile.exists():
        raise UserError(f"{modelfile}: no Modelfile (run `make gguf` first)")
    create = ["ollama", "create", model_name, "-f", str(modelfile)]
    smoke = ["ollama", "run", model_name, smoke_prompt]
    if shutil.which("ollama") is None:
        print("ollama is not installed on this machine; on the machine that serves the model run:")
        print("  " + " ".join(create))
        print("  " + " ".join(smoke))
        return 0
    for cmd in (create, smoke):
        log.info("ollama: %s", " ".join(cmd))
        result = subprocess.run(cmd, timeout=600)
        if result.returncode:
            raise UserError(f"`{' '.join(cmd)}` failed with exit {result.returncode}")
    return 0
