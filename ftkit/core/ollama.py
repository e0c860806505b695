"""Ollama stage: a Modelfile that keeps every chat on a path proven to render the training text, and
`ollama create`.

Which path renders a chat depends on the Ollama version (read in ollama/ollama at fb30760, v0.33.0-rc2;
tests/go/ollama_chat.go follows it):
- before 0.30 the Modelfile TEMPLATE (Go text/template) renders every chat;
- from 0.30 (llama-server serves every GGUF) the GGUF's own Jinja template renders it in llama-server
  instead, when that template declares more capabilities (tools, thinking) than the TEMPLATE and the
  Modelfile names no PARSER or RENDERER (and OLLAMA_GO_TEMPLATE is unset).
Both are made right: the TEMPLATE is the family's proven Go template, and the GGUF carries the family's
template pinned to the training choices (ftkit.core.families). A family whose GGUF template would turn on a
capability the model was not trained for (Qwen3: thinking) gets a PARSER that keeps the TEMPLATE in
charge, and `REQUIRES` the version that knows it; a run trained with thinking (THINKING=on|mixed) gets a
TEMPLATE that declares it, and no PARSER. OLLAMA_VERSION writes the file for an older Ollama.

User text that lands in the Modelfile (system prompt, model name) is validated first: a model name
reaches a shell command, and a system prompt must not be able to end its quoted block.
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ftkit.core import families
from ftkit.core.cli import UserError
from ftkit.core.io import sha256_file, write_text_atomic

log = logging.getLogger(__name__)

MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}(:[a-zA-Z0-9._-]{1,64})?$")
SAMPLING = ("temperature", "top_p", "top_k", "repeat_penalty", "seed")

# Ollama versions the Modelfile depends on (ollama/ollama commits in tests/go/ollama_chat.go's header)
CHECKED_VERSION = "0.33.0"   # the source tests/go/ollama_chat.go follows (fb30760, v0.33.0-rc2)
MIN_VERSION = "0.3.0"        # TEMPLATE with .Messages, collated messages and the json function
PARSER_SINCE = "0.12.0"      # PARSER and RENDERER commands
REQUIRES_SINCE = "0.14.0"    # REQUIRES command (shown by `ollama show`, not enforced by Ollama)
LAST_GO_ONLY_VERSION = "0.29.0"  # the last version where the TEMPLATE renders every chat (0.30: llama-server)


def parse_version(text: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+][0-9A-Za-z.-]*)?", (text or "").strip())
    if not m:
        raise UserError(f"Ollama version {text!r}: expected a version like 0.33.0")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def at_least(version: str, minimum: str) -> bool:
    return parse_version(version) >= parse_version(minimum)


def check_version(version: str | None) -> str:
    """The Ollama version a Modelfile is written for (default: the one checked), refused below MIN_VERSION."""
    version = version or CHECKED_VERSION
    if not at_least(version, MIN_VERSION):
        raise UserError(f"Ollama {version} is too old: ftkit's Modelfile needs Ollama >= {MIN_VERSION} (a TEMPLATE "
                        "over .Messages); upgrade Ollama (https://ollama.com/download)")
    return ".".join(map(str, parse_version(version)))


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


def minimum_version(parser: str | None, requires: str | None, renderer: str | None = None) -> str:
    """The oldest Ollama that reads a Modelfile with these commands (an older one refuses the file)."""
    needs = [MIN_VERSION] + ([PARSER_SINCE] if parser or renderer else []) + ([REQUIRES_SINCE, requires] if requires else [])
    return max(needs, key=parse_version)


def directives_for(family: families.Family, version: str) -> tuple[str | None, str | None]:
    """(PARSER, REQUIRES) of the family's Modelfile for Ollama `version`: the parser where the version knows
    the command, and REQUIRES only where the file needs more than MIN_VERSION and the version knows REQUIRES
    (the line itself would make an older Ollama refuse the file)."""
    parser = family.ollama_parser if at_least(version, PARSER_SINCE) else None
    requires = REQUIRES_SINCE if parser and at_least(version, REQUIRES_SINCE) else None
    return parser, requires


def modelfile_text(gguf_file: str, tokenizer=None, system: str | None = None, num_ctx: int = 4096,
                   sampling: dict | None = None, family: families.Family | None = None,
                   adapter: str | None = None, ollama_version: str | None = None,
                   digests: dict[str, str] | None = None) -> str:
    """The Modelfile. FROM (and ADAPTER, for an adapter-only export) are relative to the Modelfile's
    folder, where the GGUFs lie. The family (from `tokenizer`, or given) supplies TEMPLATE, stops and
    PARSER; `ollama_version` (default: the version checked) decides PARSER and REQUIRES. `digests` (file
    name -> sha256) records which files it was written for: acceptance walks that link of the chain."""
    family = family or (families.family_of(tokenizer) if tokenizer is not None else families.FAMILIES["llama2"])
    version = check_version(ollama_version)
    parser, requires = directives_for(family, version)
    name = "Modelfile.adapter" if adapter else "Modelfile"
    lines = [f"# Made by ftkit: ollama create <name> -f {Path(gguf_file).parent}/{name}",
             f"# family: {family.name}",
             f"# ollama: written for Ollama {version}; needs >= {minimum_version(parser, requires)}; checked against the "
             f"source of {CHECKED_VERSION} (make gguf OLLAMA_VERSION=x.y.z writes it for another)",
             *(f"# sha256 ./{name}: {digest}" for name, digest in (digests or {}).items()),
             f"FROM ./{Path(gguf_file).name}"]
    if adapter:
        lines.append(f"ADAPTER ./{Path(adapter).name}")
    # every family has a TEMPLATE proven to render the training text (a model of no family is refused at the
    # first stage)
    lines.append(f"TEMPLATE {_triple_quoted(family.ollama_template, 'the template')}")
    if parser:
        lines.append(f"PARSER {parser}")
    if requires:
        lines.append(f"REQUIRES {requires}")
    # an explicit stop list replaces the one Ollama would detect, so it lists every marker
    lines += [f'PARAMETER stop "{stop}"' for stop in family.stops]
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


@dataclass
class Modelfile:
    """What a Modelfile written by ftkit says, as Ollama's parser reads it (the commands ftkit writes)."""

    family: str | None = None
    written_for: str | None = None
    source: str | None = None    # FROM
    adapter: str | None = None
    template: str | None = None
    system: str | None = None
    parser: str | None = None
    renderer: str | None = None
    requires: str | None = None
    stops: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of the GGUFs it was written for


def read_modelfile(path: str | Path) -> Modelfile:
    text = Path(path).read_text(encoding="utf-8")

    def line(pattern):
        m = re.search(pattern, text, re.M)
        return m.group(1).strip() if m else None

    def block(command):
        m = re.search(rf'^{command} """(.*?)"""', text, re.S | re.M)
        return m.group(1) if m else line(rf"^{command} (?!\"\"\")(.+)$")

    return Modelfile(family=line(r"^# family: (\S+)$"), written_for=line(r"^# ollama: written for Ollama (\S+);"),
                     source=line(r"^FROM (.+)$"), adapter=line(r"^ADAPTER (.+)$"), template=block("TEMPLATE"),
                     system=block("SYSTEM"), parser=line(r"^PARSER (.+)$"), renderer=line(r"^RENDERER (.+)$"),
                     requires=line(r"^REQUIRES (.+)$"), stops=re.findall(r'^PARAMETER stop "(.*)"$', text, re.M),
                     digests=dict(re.findall(r"^# sha256 \./(\S+): ([0-9a-f]{64})$", text, re.M)))


def family_of_modelfile(modelfile: str | Path) -> str | None:
    return read_modelfile(modelfile).family


def stops_of(modelfile: str | Path) -> list[str]:
    return read_modelfile(modelfile).stops


def write_modelfile(path: str | Path, gguf_file: str, **kwargs) -> Path:
    path = Path(path)
    for file in (gguf_file, kwargs.get("adapter")):
        if file and Path(file).resolve().parent != path.resolve().parent:
            raise UserError(f"the Modelfile must sit beside {file} (FROM and ADAPTER are relative)")
    digests = {Path(f).name: sha256_file(f) for f in (gguf_file, kwargs.get("adapter")) if f and Path(f).is_file()}
    write_text_atomic(path, modelfile_text(gguf_file, digests=digests, **kwargs))
    log.info("ollama: wrote %s", path)
    return path


def template_of(modelfile: str | Path) -> str | None:
    """The TEMPLATE block of a Modelfile, as Ollama reads it."""
    return read_modelfile(modelfile).template


def installed_version() -> str | None:
    """The installed Ollama's version (`ollama --version`: "ollama version is 0.33.0"), or None."""
    try:
        out = subprocess.run(["ollama", "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"(\d+\.\d+\.\d+)", out)
    return m.group(1) if m else None


def check_installed_version(modelfile: Path, installed: str | None) -> None:
    """Refuse, with the way out, a Modelfile that needs a newer Ollama than the one installed (Ollama itself
    only shows REQUIRES; an Ollama that predates a command refuses the file with a terse parse error)."""
    written = read_modelfile(modelfile)
    needs = minimum_version(written.parser, written.requires, written.renderer)
    if installed and not at_least(installed, needs):
        raise UserError(f"{modelfile} needs Ollama >= {needs}; this machine has {installed}: upgrade Ollama, or "
                        f"write the Modelfile for it: make gguf OLLAMA_VERSION={installed}")


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
        written = read_modelfile(modelfile)
        print(f"  ({modelfile} needs Ollama >= {minimum_version(written.parser, written.requires, written.renderer)})")
        return 0
    check_installed_version(modelfile, installed_version())
    for cmd in (create, smoke):
        log.info("ollama: %s", " ".join(cmd))
        result = subprocess.run(cmd, timeout=600)
        if result.returncode:
            raise UserError(f"`{' '.join(cmd)}` failed with exit {result.returncode}")
    return 0
