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
import argparse
import re
import signal
from pathlib import Path

from ftkit.config import defaults
from ftkit.core.cli import UserError, log, setup_logging


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modelfile", default=f"{defaults.GGUF_DIR}/Modelfile",
                    help="the Modelfile whose FROM (and ADAPTER, num_ctx) to serve (default: %(default)s)")
    ap.add_argument("--gguf", help="serve this GGUF instead of the Modelfile's FROM")
    ap.add_argument("--lora", help="with --gguf: a LoRA adapter GGUF to apply (as Ollama's ADAPTER)")
    ap.add_argument("--host", default=defaults.SERVE_HOST, help="address to listen on (default: %(default)s, this machine "
                                                         "only; 0.0.0.0 for every interface)")
    ap.add_argument("--port", type=int, default=defaults.SERVE_PORT, help="port (default: %(default)s)")
    ap.add_argument("--n-ctx", type=int, default=None, help="context length (default: the Modelfile's num_ctx, or 4096)")
    ap.add_argument("--n-gpu-layers", type=int, default=defaults.N_GPU_LAYERS, help="layers offloaded to the GPU (-1: all; default: "
                                                                   "%(default)s; no effect on a CPU build)")
    ap.add_argument("--alias", default=None, help="the model name clients see (default: the GGUF's file name)")
    return ap.parse_args(argv)


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
    args = parse_args()
    setup_logging()
    from ftkit.verify.llama_server import LlamaServer

    gguf, lora, n_ctx = resolve(args)
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port}: not a port number")
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

