#!/usr/bin/env python3
"""Benchmark evaluation's generation: batched (left padding, length-sorted) vs one prompt at a time.

Both runs use the same model, prompts (the test split, topped up with sample questions to --prompts)
and greedy decoding, in this one process. Prints generated tokens/s for both, the ratio, how long the
answers were, and how many outputs are identical (greedy decoding must not change with batching).

The batched run sorts prompts by length, drops each row from the batch at its end of turn, projects only
the prompt's last position onto the vocabulary, and decodes a batch into a key/value cache allocated once.
A longer-answer set: --max-new-tokens 160 on the tiny random base, whose answers rarely end early.

example: python bench/bench_eval.py --base-model models/tiny-llama --lora-model models/finetuned/lora_adapter
         python bench/bench_eval.py --base-model models/tiny-llama --max-new-tokens 160
"""
import argparse
import json
import time
from pathlib import Path

from ftkit.core.cli import log, run, setup_logging

LONG_ANSWER = 128  # tokens: an answer this long counts towards the longer-answer set


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-model", default="models/tiny-llama", help="base model (default: %(default)s)")
    ap.add_argument("--lora-model", default=None, help="adapter to apply (default: the base alone)")
    ap.add_argument("--test-data", default="data/finetune/train_test.jsonl", help="test split (default: %(default)s)")
    ap.add_argument("--prompts", type=int, default=64, help="number of prompts (default: %(default)s)")
    ap.add_argument("--max-new-tokens", type=int, default=32, help="tokens per answer (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=64, help="batched run's batch size (default: %(default)s)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return ap.parse_args(argv)


def prompt_ids(args, tokenizer) -> list[list[int]]:
    from ftkit.core import prompts
    from ftkit.core.loading import conversation_of, read_jsonl
    from ftkit.stages.data import sample_data

    convs = [conversation_of(r).without_last_answer() for r in read_jsonl(args.test_data)] if Path(args.test_data).exists() else []
    for record in sample_data.generate(sample_data.pool_size(), seed=1):
        if len(convs) >= args.prompts:
            break
        convs.append(prompts.from_alpaca({k: v for k, v in record.items() if k != "output"}))
    return [prompts.render_ids(c, tokenizer).prompt_ids for c in convs[: args.prompts]]


def main():
    args = parse_args()
    setup_logging()
    from ftkit.core.inference import Decoding, load_models

    tokenizer, base, candidate = load_models(args.base_model, args.lora_model, with_base=args.lora_model is None)
    model = candidate or base
    ids = prompt_ids(args, tokenizer)
    decoding = Decoding(max_new_tokens=args.max_new_tokens)
    model.generate(ids[:2], decoding, batch_size=2)  # warm-up: first calls pay one-off initialisation
    timings = {}
    outputs = {}
    for name, batch_size in (("one by one", 1), (f"batched ({args.batch_size})", args.batch_size)):
        log.info("bench-eval: %s", name)
        started = time.perf_counter()
        outputs[name] = model.generate(ids, decoding, batch_size=batch_size)
        timings[name] = time.perf_counter() - started
    names = list(timings)
    tokens = {n: sum(len(g.token_ids) for g in outputs[n]) for n in names}
    same = sum(a.token_ids == b.token_ids for a, b in zip(outputs[names[0]], outputs[names[1]], strict=True))
    lengths = [len(g.token_ids) for g in outputs[names[0]]]
    long_answers = sum(n >= LONG_ANSWER for n in lengths)
    print(f"\neval generation benchmark: {args.lora_model or args.base_model}, {len(ids)} prompts, greedy, "
          f"{args.max_new_tokens} new tokens max")
    print(f"{'':22}{'tokens':>8}{'seconds':>9}{'tokens/s':>10}")
    for n in names:
        print(f"{n:22}{tokens[n]:>8}{timings[n]:>9.2f}{tokens[n] / timings[n]:>10.1f}")
    ratio = (tokens[names[1]] / timings[names[1]]) / (tokens[names[0]] / timings[names[0]])
    print(f"answers: {tokens[names[0]] / len(ids):.1f} tokens on average, the longest {max(lengths)}, "
          f"{long_answers} of {len(ids)} of {LONG_ANSWER} tokens or more")
    print(f"speed-up: {ratio:.1f}x (target >= 10x); identical outputs: {same}/{len(ids)}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": args.lora_model or args.base_model, "prompts": len(ids), "identical": same,
            "max_new_tokens": args.max_new_tokens, "mean_answer_tokens": tokens[names[0]] / len(ids),
            "longest_answer": max(lengths), "long_answers": long_answers,
            "batched_tokens_per_s": tokens[names[1]] / timings[names[1]],
            "one_by_one_tokens_per_s": tokens[names[0]] / timings[names[0]], "speedup": ratio}, indent=2))


if __name__ == "__main__":
    run(main)
