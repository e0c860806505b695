#!/usr/bin/env python3
"""Benchmark the training stage: against a plain TRL recipe, and its output layer against the full logits.

The runs train the same LoRA (r=8, all linear layers) on the same data, by default generated Chinese Q&A
whose answers vary from 20 to 600 characters, for the same number of optimizer steps, in fp32 without
gradient checkpointing:

  baseline      TRL SFTTrainer as a competent user would write it for a CPU: a prompt/completion dataset
                (conversational for a model with its own chat template), the default collator (pads each
                batch to its longest example), random batches, bf16 and gradient checkpointing off
                (SFTConfig's defaults cost 1.5x each on a CPU)
  dense         scripts/train_lora.py with --no-sparse-logits: the full logits at every position, then
                torch's cross-entropy, as transformers' own loss (and LLaMA-Factory) computes it
  ftkit         scripts/train_lora.py as it runs by default (the output layer at supervised positions only)
  padding_free  the same with --padding-free: each batch one row, sequences kept apart by position ids

Each run is a child process of this command (so each has its own peak memory and none inherits
another's warm caches). It prints useful (non-padding) tokens/s, the ratios, the final eval losses
and each run's peak memory (the whole process's, weights included).

example: python bench/bench_train.py --base-model models/tiny-llama --examples 480
         python bench/bench_train.py --base-model models/tiny-qwen2.5 --variants dense,ftkit --runs none
         python bench/bench_train.py --base-model models/tiny-qwen2.5 --train-data data/finetune/train_train.jsonl \
             --val-data data/finetune/train_validation.jsonl --variants dense,ftkit --runs none
"""
import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ftkit.benchmarks import LARGE_VOCAB
from ftkit.core.cli import log, run, setup_logging

RUNS = {"baseline": "plain TRL recipe", "dense": "train_lora.py --no-sparse-logits",
        "ftkit": "train_lora.py", "padding_free": "train_lora.py --padding-free"}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-model", default="models/tiny-llama", help="model to train (default: %(default)s)")
    ap.add_argument("--examples", type=int, default=None,
                    help="training examples (default: 480; 160 for a vocabulary over 100k, whose dense runs are slow)")
    ap.add_argument("--batch-size", type=int, default=8, help="examples per step (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=1, help="epochs (default: %(default)s)")
    ap.add_argument("--learning-rate", type=float, default=1e-3, help="learning rate (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="data and training seed (default: %(default)s)")
    ap.add_argument("--variants", default=",".join(RUNS),
                    help="which runs, of " + ", ".join(RUNS) + " (default: all; ftkit is always run)")
    ap.add_argument("--train-data", default=None,
                    help="a training split to use instead of the generated data (with --val-data)")
    ap.add_argument("--val-data", default=None, help="its validation split")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--runs", default="docs/bench_train.json",
                    help="the project's record of runs this one is appended to; `make docs` makes the docs' training "
                         "table from it ('none': do not record; default: %(default)s)")
    ap.add_argument("--only", choices=list(RUNS), help=argparse.SUPPRESS)  # one run, in a child
    ap.add_argument("--work-dir", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def varied_records(n: int, seed: int) -> list[dict]:
    """Distinct questions with answers of 20-600 characters, as real data vary."""
    from ftkit.stages.data import sample_data
    from ftkit.tiny.tiny_model import CORPUS_FILE

    rng = random.Random(seed)
    sentences = [s for s in CORPUS_FILE.read_text(encoding="utf-8").splitlines() if len(s) > 8 and "[" not in s]
    questions = sample_data.generate(sample_data.pool_size(), seed=seed)
    records = []
    for i in range(n):
        target = rng.randint(20, 600)
        answer = ""
        while len(answer) < target:
            answer += rng.choice(sentences)
        q = questions[i % len(questions)]
        records.append({"messages": [{"role": "user", "content": f"{q['instruction']}（{i}）"},
                                     {"role": "assistant", "content": answer[:target]}]})
    return records


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def plain_trl(args, train: list[dict], val: list[dict], out: Path) -> dict:
    """The baseline: TRL's documented prompt/completion route with its defaults, fp32 on the CPU."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from ftkit.stages.train.train import has_fused_experts

    tokenizer = AutoTokenizer.from_pretrained(args.base_model)

    def as_prompt_completion(records):
        if getattr(tokenizer, "chat_template", None) and "[INST]" not in tokenizer.chat_template:
            return Dataset.from_list([{"prompt": r["messages"][:1], "completion": r["messages"][1:]} for r in records])
        return Dataset.from_list([{"prompt": f"[INST] {r['messages'][0]['content']} [/INST]",
                                   "completion": f" {r['messages'][1]['content']} "} for r in records])

    model = AutoModelForCausalLM.from_pretrained(args.base_model, dtype=torch.float32)
    config = SFTConfig(output_dir=str(out), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
                       per_device_eval_batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed,
                       bf16=False, gradient_checkpointing=False, use_cpu=True, report_to=[], save_strategy="no",
                       eval_strategy="no", logging_steps=10, lr_scheduler_type="cosine", warmup_steps=0.03,
                       include_num_input_tokens_seen="non_padding", disable_tqdm=True)
    # the same LoRA as ftkit's runs: no dropout on a mixture of experts (PEFT's expert adapters allow none)
    dropout = 0.0 if has_fused_experts(model) else 0.05
    peft = LoraConfig(r=8, lora_alpha=16, lora_dropout=dropout, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=config, train_dataset=as_prompt_completion(train),
                         eval_dataset=as_prompt_completion(val), processing_class=tokenizer, peft_config=peft)
    result = trainer.train()
    return {"tokens": trainer.state.num_input_tokens_seen, "seconds": result.metrics["train_runtime"],
            "steps": trainer.state.global_step, "eval_loss": trainer.evaluate()["eval_loss"]}


def ftkit_run(args, train_path: Path, val_path: Path, out: Path, which: str) -> dict:
    from ftkit.stages.train.train import TrainConfig, run_training

    config = TrainConfig(base_model=args.base_model, train_data=str(train_path), val_data=str(val_path),
                         output_dir=str(out), epochs=args.epochs, batch_size=args.batch_size,
                         learning_rate=args.learning_rate, lora_r=8, lora_alpha=16, seed=args.seed,
                         eval_strategy="no", logging_steps=10, precision="fp32", sparse_logits=which != "dense",
                         padding_free=which == "padding_free")
    metrics = run_training(config)
    return {"tokens": metrics["tokens_seen"], "seconds": metrics["train_runtime_s"], "steps": metrics["optimizer_steps"],
            "eval_loss": metrics["final_eval_loss"]}


def child(args) -> None:
    """One run; prints its figures as the last line of JSON."""
    import torch

    from ftkit.stages.train.train_outputs import peak_memory_mib

    work = Path(args.work_dir)
    torch.manual_seed(args.seed)
    if args.only == "baseline":
        records = {name: [json.loads(x) for x in (work / name).read_text(encoding="utf-8").splitlines()]
                   for name in ("train.jsonl", "val.jsonl")}
        figures = plain_trl(args, records["train.jsonl"], records["val.jsonl"], work / "baseline")
    else:
        figures = ftkit_run(args, work / "train.jsonl", work / "val.jsonl", work / args.only, args.only)
    print(json.dumps(dict(figures, peak_mib=peak_memory_mib())))


def run_child(args, which: str, work: Path) -> dict:
    cmd = [sys.executable, __file__, "--only", which, "--work-dir", str(work), "--base-model", args.base_model,
           "--examples", str(args.examples), "--batch-size", str(args.batch_size), "--epochs", str(args.epochs),
           "--learning-rate", str(args.learning_rate), "--seed", str(args.seed)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"bench-train: the {which} run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    args = parse_args()
    setup_logging()
    if args.only:
        return child(args)
    import torch
    from transformers import AutoConfig

    variants = [v for v in RUNS if v in {x.strip() for x in args.variants.split(",")} | {"ftkit"}]
    vocab = AutoConfig.from_pretrained(args.base_model).vocab_size
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.train_data:
            shutil.copy(args.train_data, work / "train.jsonl")
            shutil.copy(args.val_data or args.train_data, work / "val.jsonl")
            args.examples = sum(1 for _ in open(args.train_data, encoding="utf-8"))
            data = args.train_data
        else:
            args.examples = args.examples or (160 if vocab > LARGE_VOCAB else 480)
            records = varied_records(args.examples + 64, args.seed)
            write_jsonl(work / "train.jsonl", records[:args.examples])
            write_jsonl(work / "val.jsonl", records[args.examples:])
            data = "generated, answers 20-600 chars"
        for which in variants:
            log.info("bench-train: %s (%s)", which, RUNS[which])
            results[which] = run_child(args, which, work)
    figures = compare(args.base_model, vocab, results)
    print(f"\ntraining benchmark: {args.base_model} (vocabulary {vocab:,}), {args.examples} examples ({data}), "
          f"batch {args.batch_size}, {args.epochs} epoch(s), fp32, CPU threads {torch.get_num_threads()}")
    print(f"{'':34}{'steps':>6}{'useful tok/s':>14}{'seconds':>9}{'eval loss':>11}{'peak MiB':>10}")
    for key, r in results.items():
        print(f"{RUNS[key]:34}{r['steps']:>6}{r['tokens'] / r['seconds']:>14,.0f}{r['seconds']:>9.1f}"
              f"{r['eval_loss']:>11.4f}{r['peak_mib']:>10.0f}")
    for line in summary_lines(figures):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    if args.runs != "none":
        import datetime

        from ftkit.benchmarks import add_run
        from ftkit.stages.train.train_outputs import hardware

        if set(variants) != set(RUNS) or args.train_data:
            log.warning("bench-train: not recorded in %s: the record holds runs of every variant on the generated "
                        "data (use --runs none for a partial run)", args.runs)
            return
        run = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "hardware": hardware(),
               "examples": args.examples, "batch_size": args.batch_size, "epochs": args.epochs,
               "threads": torch.get_num_threads(), "figures": figures}
        log.info("bench-train: %d run(s) now in %s (make docs puts the latest per model in docs/train.md)",
                 len(add_run(args.runs, run, "make bench-train")), args.runs)


def compare(model: str, vocab: int, results: dict) -> dict:
    """The runs' figures and their ratios: ftkit against each other run that was made."""
    rate = {k: r["tokens"] / r["seconds"] for k, r in results.items()}
    ours = results["ftkit"]
    figures = {"model": model, "vocab_size": vocab, "dense_path": "full logits", **results}
    if "baseline" in results:
        base = results["baseline"]
        figures.update(speedup=rate["ftkit"] / rate["baseline"],
                       eval_loss_gap=(ours["eval_loss"] - base["eval_loss"]) / base["eval_loss"])
    if "dense" in results:
        dense = results["dense"]
        figures.update(sparse_speedup=rate["ftkit"] / rate["dense"],
                       sparse_memory_ratio=ours["peak_mib"] / dense["peak_mib"],
                       sparse_eval_loss_gap=(ours["eval_loss"] - dense["eval_loss"]) / dense["eval_loss"])
    if "padding_free" in results:
        figures["padding_free_speedup"] = rate["padding_free"] / rate["ftkit"]
    return figures


def summary_lines(figures: dict) -> list[str]:
    from ftkit.benchmarks import SPARSE_MEMORY_TARGET, SPARSE_SPEEDUP_TARGET

    lines = []
    if "speedup" in figures:
        lines.append(f"vs plain TRL: {figures['speedup']:.2f}x tokens/s (target >= 1.5x), eval loss "
                     f"{figures['eval_loss_gap']:+.1%} (target within 3%)")
    if "sparse_speedup" in figures:
        target = (f">= {SPARSE_SPEEDUP_TARGET}x tokens/s, <= {SPARSE_MEMORY_TARGET}x peak memory" if figures["vocab_size"] > LARGE_VOCAB
                  else "no slower")
        lines.append(f"sparse output layer vs full logits: {figures['sparse_speedup']:.2f}x tokens/s, "
                     f"{figures['sparse_memory_ratio']:.2f}x peak memory, eval loss {figures['sparse_eval_loss_gap']:+.2%} "
                     f"(target {target}, eval loss within 0.5%)")
    if "padding_free_speedup" in figures:
        lines.append(f"padding-free vs padded batches (both sparse): {figures['padding_free_speedup']:.2f}x tokens/s")
    return lines


if __name__ == "__main__":
    run(main)
