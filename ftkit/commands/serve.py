"""Serve the fine-tuned GGUF behind llama-server's OpenAI-compatible API, without Ollama.

llama-server (llama.cpp's own, built from the llama.cpp/ submodule by `make llama-tools`) is the engine
Ollama >= 0.30 runs. It renders the GGUF's chat template, which `make gguf` pinned to the training
format and `make acceptance` checks (deploy.parity), stops at the end of a turn, and streams. This
script starts it, waits until it answers, prints how to reach it, and stops it on Ctrl-C (or SIGTERM).
The GGUF, an ADAPTER and the context length come from the Modelfile unless given.

Clients send their own system prompt: the Modelfile's SYSTEM is Ollama's, and llama-server has none.

example:
  make serve                                      # http://127.0.0.1:8080/v1, the Modelfile's GGUF
  make serve SERVE_PORT=9000 SERVE_GGUF=models/gguf/llama2-finetuned-F16.gguf
  python scripts/serve.py --modelfile models/gguf/Modelfile --port 8080
  curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\
      -d '{"messages": [{"role": "user", "content": "你好"}]}'
"""
import re
import signal
from dataclasses import dataclass
from pathlib import Path

from ftkit.config import defaults
from ftkit.config import schema as options
from ftkit.config.schema import option
from ftkit.core.cli import UserError, log, setup_logging


@dataclass
class ServeConfig:
    modelfile: str = option(f"{defaults.GGUF_DIR}/Modelfile", "the Modelfile whose FROM (and ADAPTER, num_ctx) to serve")
    gguf: str | None = option(None, "serve this GGUF instead of the Modelfile's FROM")
    lora: str | None = option(None, "with --gguf: a LoRA adapter GGUF to apply (as Ollama's ADAPTER)")
    host: str = option(defaults.SERVE_HOST, "address to listen on (this machine only; 0.0.0.0 for every interface)")
    port: int = option(defaults.SERVE_PORT, "port", minimum=1, maximum=65535)
    n_ctx: int | None = option(None, "context length (none: the Modelfile's num_ctx, or 4096)", minimum=1)
    n_gpu_layers: int = option(defaults.N_GPU_LAYERS, "layers offloaded to the GPU (-1: all; no effect on a CPU build)")
    alias: str | None = option(None, "the model name clients see (none: the GGUF's file name)")


def resolve(args) -> tuple[Path, Path | None, int]:
    """(GGUF, adapter, context) from the flags, else from the Modelfile."""
    from ftkit.core.ollama import read_modelfile

    if args.gguf:
        return Path(args.gguf), Path(args.lora) if args.lora else None, args.n_ctx or 4096
    modelfile = Path(args.modelfile)
    if not modelfile.is_file():
        raise UserError(f"{modelfile}: no Modelfile (run `make gguf`, or name a GGUF with --gguf)")
    written = read_modelfile(modelfile)
    num_ctx = re.search(r"^PARAMETER num_ctx (\d+)$", modelfile.read_text(encoding="utf-8"), re.M)
    adapter = modelfile.parent / written.adapter if written.adapter else None
    return modelfile.parent / written.source, adapter, args.n_ctx or (int(num_ctx.group(1)) if num_ctx else 4096)


def main():
    args = options.parse(ServeConfig, options.build_parser(ServeConfig, __doc__))
    setup_logging()
    from ftkit.verify.llama_server import LlamaServer

    gguf, lora, n_ctx = resolve(args)
    server = LlamaServer(gguf, lora=lora, n_ctx=n_ctx, n_gpu_layers=args.n_gpu_layers, host=args.host, port=args.port,
                         alias=args.alias or gguf.stem, quiet=False)

    def stop(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with server:
        log.info("serve: %s%s at %s/v1 (OpenAI API: /v1/chat/completions, /v1/models; model %r); Ctrl-C stops it",
                 gguf.name, f" + {lora.name}" if lora else "", server.url, server.alias)
        print(f"serving {gguf.name} at {server.url}/v1", flush=True)
        try:
            code = server.process.wait()
        except KeyboardInterrupt:
            log.info("serve: stopping llama-server")
            return 0
    raise UserError(f"llama-server stopped by itself (exit {code})")

