#!/usr/bin/env python3
"""Benchmark deployment decode speed: the GGUF through llama.cpp vs the merged HF model (fp32 on the CPU, bf16 on a GPU).

Both decode the same rendered prompt greedily for the same number of new tokens (EOS does not stop
the count), one sequence at a time as a chat server would, in this one process on the CPU. Prints
decode tokens/s for both and the ratio.

example: python bench/bench_gguf.py --merged-model models/finetuned/merged_model \\
             --gguf models/gguf/llama2-finetuned-Q4_K_M.gguf
"""
import argparse
import json
import time
from pathlib import Path

from ftkit.core.cli import run, setup_logging


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--merged-model", default="models/finetuned/merged_model", help="HF model (default: %(default)s)")
    ap.add_argument("--gguf", default="models/gguf/llama2-finetuned-Q4_K_M.gguf", help="GGUF file (default: %(default)s)")
    ap.add_argument("--new-tokens", type=int, default=128, help="tokens to decode (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs each, best kept (default: %(default)s)")
    ap.add_argument("--n-gpu-layers", type=int, default=0,
                    help="layers llama.cpp offloads to the GPU (-1: all; no effect on a CPU build)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return ap.parse_args(argv)


def main():
    args = parse_args()
    setup_logging()
    import torch
    from llama_cpp import Llama

    from ftkit.core import prompts
    from ftkit.core.loading import load_hf, load_tokenizer

    tokenizer = load_tokenizer(args.merged_model)
    ids = prompts.render_ids(prompts.from_alpaca({"instruction": "请介绍一下北京。"}), tokenizer).prompt_ids
    model = load_hf(args.merged_model)
    llm = Llama(model_path=args.gguf, n_ctx=len(ids) + args.new_tokens + 8, n_gpu_layers=args.n_gpu_layers,
                verbose=False, seed=0)

    def hf_decode():
        x = torch.tensor([ids], device=model.device)  # on the model's device: a GPU model takes no CPU tensor
        with torch.no_grad():
            model.generate(x, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                           pad_token_id=tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)

    def gguf_decode():
        llm.reset()
        for n, _ in enumerate(llm.generate(ids, temp=0.0, top_k=1, reset=True), start=1):
            if n == args.new_tokens:
                break

    timings = {}
    hf_name = f"HF {str(model.dtype).replace('torch.', '')} {model.device.type} (transformers)"
    for name, fn in ((hf_name, hf_decode), (f"GGUF {Path(args.gguf).stem.rsplit('-', 1)[-1]} (llama.cpp)", gguf_decode)):
        fn()  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            started = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - started)
        timings[name] = best
    names = list(timings)
    rates = {n: args.new_tokens / timings[n] for n in names}
    print(f"\ndecode benchmark: {args.new_tokens} new tokens after a {len(ids)}-token prompt, one sequence, CPU "
          f"threads {torch.get_num_threads()}, best of {args.repeats}")
    for n in names:
        print(f"{n:34}{rates[n]:>10.1f} tokens/s")
    ratio = rates[names[1]] / rates[names[0]]
    print(f"speed-up: {ratio:.1f}x (target >= 5x)")
    if args.json:
        Path(args.json).write_text(json.dumps({"hf_tokens_per_s": rates[names[0]], "hf": names[0],
                                               "gguf_tokens_per_s": rates[names[1]], "speedup": ratio,
                                               "gguf": args.gguf}, indent=2))


if __name__ == "__main__":
    run(main)
