#!/usr/bin/env python3
"""Run every stage benchmark and put each figure beside its baseline: reports/bench.json, a table, and a
record appended to docs/benchmarks.json (docs/benchmarks.md's table is generated from those records by make docs).

Each benchmark measures its own baseline in the same run (same process or same command):
  data   prepare_data records/s vs a bare JSON parse-and-write pass          target >= 20,000 records/s
  train  train_lora.py useful tokens/s vs a plain TRL recipe                  target >= 1.5x at eval loss within 3%
  train  on the 152k-vocabulary tiny Qwen2.5: the output layer at supervised positions only vs the full
         logits at every position (transformers' own loss), on generated answers of 20-600 characters
         and on the demo's training split                                    target >= 2x at <= 0.6x peak memory
  eval   batched generation tokens/s vs one prompt at a time, on the demo's test split and on a
         longer-answer set (160 new tokens)                                  target >= 10x, identical outputs
  gguf   GGUF Q4_K_M decode tokens/s vs the merged HF model in fp32           target >= 5x

Needs a finished `make gguf` (adapter, merged model, GGUF) and the tiny Qwen2.5. example: make bench
"""
import argparse
import json
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from ftkit.core.cli import UserError, log, run, setup_logging

HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-model", default="models/tiny-llama", help="base model (default: %(default)s)")
    ap.add_argument("--model-dir", default="models/finetuned", help="training output folder (default: %(default)s)")
    ap.add_argument("--gguf", default="models/gguf/llama2-finetuned-Q4_K_M.gguf", help="GGUF file (default: %(default)s)")
    ap.add_argument("--test-data", default="data/finetune/train_test.jsonl", help="test split (default: %(default)s)")
    ap.add_argument("--train-data", default="data/finetune/train_train.jsonl",
                    help="training split for the output layer's second measurement (default: %(default)s)")
    ap.add_argument("--val-data", default="data/finetune/train_validation.jsonl",
                    help="its validation split (default: %(default)s)")
    ap.add_argument("--large-vocab-model", default="models/tiny-qwen2.5",
                    help="the 152k-vocabulary model whose output layer is measured (default: %(default)s)")
    ap.add_argument("--records", type=int, default=1_000_000, help="records for the data benchmark (default: %(default)s)")
    ap.add_argument("--n-gpu-layers", type=int, default=0,
                    help="layers llama.cpp offloads to the GPU in the GGUF benchmark (-1: all)")
    ap.add_argument("--output", default="reports/bench.json", help="where to write the figures (default: %(default)s)")
    ap.add_argument("--runs", default="docs/benchmarks.json",
                    help="the project's record of runs this one is appended to; `make docs` makes the docs' table "
                         "from it (default: %(default)s; 'none' to leave it alone)")
    return ap.parse_args(argv)


def bench(name: str, script: str, args: list[str], work: Path) -> dict:
    out = work / f"{name}.json"
    log.info("bench: %s (%s)", name, script)
    result = subprocess.run([sys.executable, str(HERE / script), *args, "--json", str(out)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    print(result.stdout.strip().split("\n\n")[-1], flush=True)  # the benchmark's own table
    if result.returncode:
        raise UserError(f"{script} failed:\n{result.stdout[-2000:]}")
    return json.loads(out.read_text())


def output_layer_row(what: str, figures: dict) -> tuple:
    """The sparse output layer against the full logits (tokens/s of both), with the peak memory ratio."""
    from ftkit.benchmarks import SPARSE_MEMORY_TARGET, sparse_targets_met

    rate = {k: figures[k]["tokens"] / figures[k]["seconds"] for k in ("ftkit", "dense")}
    met, target = sparse_targets_met(figures)
    return (f"train 152k vocab, sparse vs full logits ({what}): tokens/s", rate["ftkit"], rate["dense"], met,
            f">= {target:g}x at <= {SPARSE_MEMORY_TARGET:g}x memory (measured {figures['sparse_memory_ratio']:.2f}x)")


def eval_row(what: str, figures: dict) -> tuple:
    return (f"eval: generated tokens/s ({what})",
            figures["batched_tokens_per_s"], figures["one_by_one_tokens_per_s"],
            figures["speedup"] >= 10 and figures["identical"] == figures["prompts"], ">= 10x, identical outputs")


def main():
    args = parse_args()
    setup_logging()
    from ftkit.core.io import write_json_atomic
    from ftkit.stages.train.train_outputs import hardware

    for path in (Path(args.model_dir) / "lora_adapter", Path(args.model_dir) / "merged_model", Path(args.gguf)):
        if not path.exists():
            raise UserError(f"{path} is missing: run `make gguf` first")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = bench("data", "bench_data.py", ["--records", str(args.records), "--tokenizer", args.base_model], work)
        train = bench("train", "bench_train.py", ["--base-model", args.base_model, "--variants", "baseline,ftkit",
                                                  "--runs", "none"], work)
        output_layer = {split: bench(f"train-{split}", "bench_train.py", [
            "--base-model", args.large_vocab_model, "--variants", "dense,ftkit", "--runs", "none", *extra], work)
            for split, extra in (("generated", []), ("demo", ["--train-data", args.train_data,
                                                              "--val-data", args.val_data]))}
        evals = {name: bench(f"eval-{name}", "bench_eval.py", ["--base-model", args.base_model, "--test-data",
                                                               args.test_data, *extra], work)
                 for name, extra in (("test", []), ("long", ["--max-new-tokens", "160"]))}
        gguf = bench("gguf", "bench_gguf.py", ["--merged-model", str(Path(args.model_dir) / "merged_model"),
                                               "--gguf", args.gguf, "--n-gpu-layers", str(args.n_gpu_layers)], work)
    rows = [
        ("data: records/s", data["records_per_s"], data["baseline_records_per_s"], data["records_per_s"] >= 20_000,
         ">= 20,000 records/s"),
        ("train: useful tokens/s", train["ftkit"]["tokens"] / train["ftkit"]["seconds"],
         train["baseline"]["tokens"] / train["baseline"]["seconds"],
         train["speedup"] >= 1.5 and abs(train["eval_loss_gap"]) <= 0.03, ">= 1.5x, eval loss within 3%"),
        *(output_layer_row(what, output_layer[split]) for split, what in (
            ("generated", "answers 20-600 chars"), ("demo", "demo training split"))),
        *(eval_row(what, evals[name]) for name, what in (("test", "demo test split"),
                                                          ("long", "answers up to 160 tokens"))),
        ("gguf: decode tokens/s", gguf["gguf_tokens_per_s"], gguf["hf_tokens_per_s"], gguf["speedup"] >= 5, ">= 5x"),
    ]
    machine = hardware()
    print(f"\nbenchmarks on {machine['cpu']}, {machine['cpu_count']} CPUs, {'GPU' if machine['cuda'] else 'no GPU'}")
    print(f"{'benchmark':<26}{'ftkit':>12}{'baseline':>12}{'ratio':>8}  {'target':<32}met")
    for name, ours, base, met, target in rows:
        print(f"{name:<26}{ours:>12,.0f}{base:>12,.0f}{ours / base:>7.1f}x  {target:<32}{'yes' if met else 'NO'}")
    document = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": {**machine, "python": platform.python_version()},
                "summary": [{"benchmark": n, "ftkit": o, "baseline": b, "ratio": o / b, "target": t, "met": m}
                            for n, o, b, m, t in rows]}
    write_json_atomic(args.output, {**document, "data": data, "train": train, "output_layer": output_layer,
                                    "eval": evals, "gguf": gguf})
    log.info("bench: wrote %s", args.output)
    if args.runs != "none":
        from ftkit.benchmarks import add_run

        log.info("bench: %d run(s) now in %s (make docs puts them in README.md)", len(add_run(args.runs, document)),
                 args.runs)


if __name__ == "__main__":
    run(main)
