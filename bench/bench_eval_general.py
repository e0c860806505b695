#!/usr/bin/env python3
"""Benchmark the general check: questions/s of its scoring (one forward pass per question scores all four
letters, prompts batched in sorted order with their shared prefix computed once, only the positions read
projected onto the vocabulary) against the plain way, in the same
run on the same model: one question at a time, one forward pass per option over prompt + letter, every
position's logits, the option's log-likelihood summed from them. Both must choose the same letters.

Then the time of 1,000 questions for a 7B model on a GPU, estimated from `make gpu-check`'s measured training
throughput (--gpu-check; a forward pass is 2 of the 4 * N FLOPs per token its LoRA figure counts) or, without
one, from the published anchor of 2,392 tokens/s (LLaMA-Factory, Llama-2-7B LoRA on one A100).

example:
  python bench/bench_eval_general.py --base-model models/tiny-llama --baseline-questions 64
"""
import argparse
import time
from pathlib import Path

from ftkit.core.cli import run, setup_logging
from ftkit.core.families import FAMILIES
from ftkit.stages.evaluate.general_eval import FORMATS
from ftkit.stages.evaluate.general_set import SHIPPED

PUBLISHED_7B_LORA_TOKENS_PER_S = 2392  # LLaMA-Factory's table: Llama-2-7B, LoRA, one A100


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-model", default="models/tiny-llama", help="model to score with (default: %(default)s)")
    ap.add_argument("--benchmark", default=str(SHIPPED), help="benchmark folder (default: the shipped set)")
    ap.add_argument("--per-subject", type=int, default=0, help="a seeded draw of N questions per subject (0: all)")
    ap.add_argument("--shots", type=int, default=0, help="examples before each question (default: %(default)s)")
    ap.add_argument("--format", choices=FORMATS, default="chat", help="prompt format (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=16, help="prompts per forward pass (default: %(default)s)")
    ap.add_argument("--baseline-questions", type=int, default=64,
                    help="questions the one-at-a-time loop answers (it is slow; default: %(default)s)")
    ap.add_argument("--family", choices=tuple(FAMILIES), help="chat format family (default: detected)")
    ap.add_argument("--gpu-check", default="reports/gpu_check.json", help="make gpu-check's result (default: %(default)s)")
    ap.add_argument("--runs", default="docs/bench_eval_general.json",
                    help="the record this run is appended to; `make docs` makes the docs' table from it (default: "
                         "%(default)s; 'none' to leave it alone)")
    return ap.parse_args(argv)


def gpu_estimate(gpu_check: Path, mean_tokens: float) -> tuple[float, str]:
    """Seconds for 1,000 questions of `mean_tokens` prompt tokens with a 7B model on a GPU, and its source."""
    import json

    source, tokens_per_s = f"the published anchor ({PUBLISHED_7B_LORA_TOKENS_PER_S:,} tokens/s LoRA training, A100)", None
    if gpu_check.is_file():
        document = json.loads(gpu_check.read_text())
        runs = [r for r in document.get("training", []) if r.get("mode") == "lora"]
        if runs and not document.get("dry_run"):
            tokens_per_s = runs[0]["tokens_per_s"]
            source = f"{gpu_check} ({tokens_per_s:,.0f} tokens/s LoRA training on {runs[0].get('device')})"
    training = tokens_per_s or PUBLISHED_7B_LORA_TOKENS_PER_S
    forward = 2 * training  # LoRA training counts 4 * N FLOPs per token, a forward pass 2 * N
    return 1000 * mean_tokens / forward, f"forward ≈ 2 × training throughput, from {source}"


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    from ftkit.core.inference import load_models
    from ftkit.stages.evaluate import general_eval

    benchmark = general_eval.read_benchmark(args.benchmark, args.per_subject)
    tokenizer, base, _ = load_models(args.base_model, family=args.family)
    built = general_eval.build_prompts(benchmark, tokenizer, args.shots, args.format)
    general_eval.score_model(base, built[: args.batch_size], args.batch_size)  # warm-up, outside both timings
    ours = general_eval.score_model(base, built, args.batch_size)
    subset = built[: args.baseline_questions]
    started = time.perf_counter()
    plain = general_eval.choices_of(general_eval.option_logprobs_one_at_a_time(base, subset))
    plain_s = time.perf_counter() - started
    ours_rate, plain_rate = len(built) / ours.seconds, len(subset) / plain_s
    same = sum(a == b for a, b in zip(plain, ours.choices, strict=False))
    print(f"general check on {args.base_model}, {len(built)} questions ({args.shots}-shot, {args.format}):")
    print(f"  one pass per question, batched {args.batch_size}: {ours_rate:8.1f} questions/s")
    print(f"  one pass per option, one at a time:    {plain_rate:8.1f} questions/s ({len(subset)} questions)")
    print(f"  speed-up {ours_rate / plain_rate:.1f}x; the same letter chosen for {same}/{len(subset)} questions")
    mean_tokens = sum(len(p.context) for p in built) / len(built)
    estimate, source = gpu_estimate(Path(args.gpu_check), mean_tokens)
    print(f"7B estimate: 1,000 questions of {mean_tokens:.0f} prompt tokens ≈ {estimate:.0f} s on one GPU ({source})")
    if args.runs != "none":
        from datetime import datetime, timezone

        from ftkit.benchmarks import add_run
        from ftkit.stages.train.train_outputs import hardware

        figures = {"model": args.base_model, "questions": len(built), "shots": args.shots, "format": args.format,
                   "batch_size": args.batch_size, "questions_per_s": ours_rate, "baseline_questions_per_s": plain_rate,
                   "baseline_questions": len(subset), "speedup": ours_rate / plain_rate, "same_choices": same,
                   "mean_prompt_tokens": mean_tokens, "estimate_7b_1000_s": estimate, "estimate_source": source}
        add_run(args.runs, {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "hardware": hardware(),
                            "figures": figures}, "make bench-eval-general")
    return 0 if same == len(subset) else 1


if __name__ == "__main__":
    run(main)
