"""llama.cpp's own llama-server, built from the llama.cpp/ submodule: the engine Ollama >= 0.30 runs for
every GGUF model, the one that renders a GGUF's Jinja chat template there, and the one `make serve`
puts behind an OpenAI-compatible API.

`LlamaServer` starts it on a GGUF (with a LoRA adapter GGUF, as Ollama's ADAPTER does) with the flags
Ollama gives it (ollama/ollama llm/llama_server.go at fb30760: --model --port --host --no-webui --offline
-c -np, --lora per adapter; Jinja left on, its default), waits until it answers /health, and speaks
to it over plain HTTP: /apply-template (the prompt its chat path renders), /tokenize (the ids it feeds
the model) and /v1/chat/completions. Stopped on exit, killed if it does not stop.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ftkit import ROOT
from ftkit.core.cli import UserError
from ftkit.core.threads import compute_threads

log = logging.getLogger(__name__)

BINARY = "llama-server"
# where `make llama-tools` puts it (FLAVOUR=cpu or cuda)
HOST_BUILDS = tuple(ROOT / "build" / f"llama.cpp-{flavour}" / "bin" / BINARY for flavour in ("cuda", "cpu"))


def find_binary() -> Path:
    """$LLAMA_SERVER, else a host build (`make llama-tools`), else llama-server on PATH (the container's)."""
    def runnable(path) -> bool:
        return bool(path) and Path(path).is_file() and os.access(path, os.X_OK)

    named = os.environ.get("LLAMA_SERVER")
    if named:
        if not runnable(named):
            raise UserError(f"LLAMA_SERVER={named}: not an executable file")
        return Path(named)
    for candidate in (*HOST_BUILDS, shutil.which(BINARY)):
        if runnable(candidate):
            return Path(candidate)
    raise UserError(f"{BINARY} is not built: run `make llama-tools` (it builds {BINARY} from the llama.cpp/ submodule "
                    f"into {HOST_BUILDS[-1].parent}), or set LLAMA_SERVER=/path/to/{BINARY}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LlamaServer:
    """One llama-server process on one GGUF. Use as a context manager."""

    def __init__(self, gguf: str | Path, lora: str | Path | None = None, n_ctx: int = 2048, n_gpu_layers: int = 0,
                 host: str = "127.0.0.1", port: int | None = None, alias: str | None = None, quiet: bool = True):
        self.gguf, self.lora, self.n_ctx, self.n_gpu_layers = Path(gguf), lora, n_ctx, n_gpu_layers
        self.host, self.port, self.alias, self.quiet = host, port, alias, quiet
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [str(find_binary()), "--model", str(self.gguf), "--host", self.host, "--port", str(self.port),
               "--no-webui", "--offline", "-c", str(self.n_ctx), "-np", "1", "--n-gpu-layers", str(self.n_gpu_layers)]
        if self.lora:
            cmd += ["--lora", str(self.lora)]
        if self.alias:
            cmd += ["--alias", self.alias]
        threads = compute_threads()
        if threads:
            cmd += ["--threads", str(threads), "--threads-batch", str(threads)]
        return cmd

    def start(self, timeout: float = 180) -> LlamaServer:
        if not self.gguf.is_file():
            raise UserError(f"{self.gguf}: no such GGUF file (run `make gguf` first)")
        self.port = self.port or free_port(self.host)
        # its log goes to a file: a pipe nobody reads would fill and stall the server
        self._log = tempfile.TemporaryFile(mode="w+b") if self.quiet else None
        log.info("llama-server: starting on %s (%s)", self.gguf.name, self.url)
        self.process = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT if self.quiet else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise UserError(f"llama-server exited with {self.process.returncode} on {self.gguf.name}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise UserError(f"llama-server did not become ready within {timeout:.0f} s on {self.gguf.name}")

    def log_tail(self, lines: int = 8) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return "\n".join(self._log.read().decode("utf-8", "replace").strip().splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- its HTTP API --------------------------------------------------------------------------------
    def post(self, path: str, body: dict, timeout: float = 300) -> dict:
        request = urllib.request.Request(f"{self.url}{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise UserError(f"llama-server {path}: HTTP {err.code}: {err.read().decode('utf-8', 'replace')[:500]}") from None

    def apply_template(self, messages: list[dict], template_kwargs: dict | None = None) -> str:
        """The prompt llama-server's chat path renders from the GGUF's own Jinja template."""
        body = {"messages": messages, **({"chat_template_kwargs": template_kwargs} if template_kwargs else {})}
        return self.post("/apply-template", body)["prompt"]

    def tokenize(self, text: str) -> list[int]:
        """The ids its chat and completion paths feed the model for `text` (special tokens parsed, BOS added
        where the model adds one: tools/server's tokenize_input_prompts(..., true, true))."""
        return self.post("/tokenize", {"content": text, "add_special": True, "parse_special": True})["tokens"]

    def chat(self, messages: list[dict], max_tokens: int, template_kwargs: dict | None = None,
             top_logprobs: int = 2) -> dict:
        """A greedy chat completion: {"content", "token_ids", "top" (per position: [(id, logprob), ...]),
        "finish_reason"}."""
        body = {"messages": messages, "max_tokens": max_tokens, "temperature": 0.0, "top_k": 1, "seed": 0,
                "logprobs": True, "top_logprobs": top_logprobs,
                **({"chat_template_kwargs": template_kwargs} if template_kwargs else {})}
        choice = self.post("/v1/chat/completions", body)["choices"][0]
        positions = (choice.get("logprobs") or {}).get("content") or []
        return {"content": choice["message"].get("content") or "", "finish_reason": choice.get("finish_reason"),
                "token_ids": [p["id"] for p in positions],
                "top": [[(t["id"], t["logprob"]) for t in p.get("top_logprobs", [])] for p in positions]}
