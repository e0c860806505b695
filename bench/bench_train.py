#!/usr/bin/env python3
"""Benchmark the training stage against a plain TRL recipe: same model, data, hyperparameters, steps.

Three runs train the same LoRA (r=8, all linear layers) on the same generated Chinese Q&A data whose
answers vary from 20 to 600 characters, for the same number of optimizer steps, in fp32 without
gradient checkpointing:

  baseline  TRL SFTTrainer as a competent user would write it for a CPU: a prompt/completion dataset
            (conversational for a model with its own chat template), the default collator (pads each
            batch to its longest example), random batches, bf16 and gradient checkpointing off
            (SFTConfig's defaults cost 1.5x each on a CPU)
  dense     scripts/train_lora.py's code path with --no-sparse-logits: the output layer at every
            position, as TRL does off CUDA
  ftkit     scripts/train_lora.py's code path as it runs by default (output layer at supervised
            positions only)

Each run is a child process of this command (so each has its own peak memory and none inherits
another's warm caches). It prints useful (non-padding) tokens/s, the ratios, the final eval losses
and each run's peak memory (the whole process's, weights included).

example: python bench/bench_train.py --base-model models/tiny-llama --examples 480
         python bench/bench_train.py --base-model models/tiny-qwen2.5 --examples 240
"""
import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from ftkit.benchmarks import LARGE_VOCAB
from ftkit.core.cli import log, run, setup_logging

RUNS = ("baseline", "dense", "ftkit")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-model", default="models/tiny-llama", help="model to train (default: %(default)s)")
    ap.add_argument("--examples", type=int, default=None,
                    help="training examples (default: 480; 160 for a vocabulary over 100k, whose dense runs are slow)")
    ap.add_argument("--batch-size", type=int, default=8, help="examples per step (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=1, help="epochs (default: %(default)s)")
    ap.add_argument("--learning-rate", type=float, default=1e-3, help="learning rate (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="data and training seed (default: %(default)s)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--runs", default="docs/bench_train.json",
                    help="the project's record of runs this one is appended to; `make docs` makes the docs' training "
                         "table from it ('none': do not record; default: %(default)s)")
    ap.add_argument("--only", choices=RUNS, help=argparse.SUPPRESS)  # one run, in a child
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


def ftkit_run(args, train_path: Path, val_path: Path, out: Path, sparse: bool) -> dict:
    from ftkit.stages.train.train import TrainConfig, run_training

    config = TrainConfig(base_model=args.base_model, train_data=str(train_path), val_data=str(val_path),
                         output_dir=str(out), epochs=args.epochs, batch_size=args.batch_size,
                         learning_rate=args.learning_rate, lora_r=8, lora_alpha=16, seed=args.seed,
                         eval_strategy="no", logging_steps=10, precision="fp32", sparse_logits=sparse)
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
        figures = ftkit_run(args, work / "train.jsonl", work / "val.jsonl", work / args.only, args.only == "ftkit")
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

    vocab = AutoConfig.from_pretrained(args.base_model).vocab_size
    args.examples = args.examples or (160 if vocab > LARGE_VOCAB else 480)
    records = varied_records(args.examples + 64, args.seed)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_jsonl(work / "train.jsonl", records[:args.examples])
        write_jsonl(work / "val.jsonl", records[args.examples:])
        for which, what in zip(RUNS, ("plain TRL recipe", "train_lora.py --no-sparse-logits", "train_lora.py"),
                               strict=True):
            log.info("bench-train: %s (%s)", which, what)
            results[which] = run_child(args, which, work)
    rate = {k: r["tokens"] / r["seconds"] for k, r in results.items()}
    base, dense, ours = results["baseline"], results["dense"], results["ftkit"]
    figures = {"model": args.base_model, "vocab_size": vocab, **results,
               "speedup": rate["ftkit"] / rate["baseline"],
               "eval_loss_gap": (ours["eval_loss"] - base["eval_loss"]) / base["eval_loss"],
               "sparse_speedup": rate["ftkit"] / rate["dense"],
               "sparse_memory_ratio": ours["peak_mib"] / dense["peak_mib"],
               "sparse_eval_loss_gap": (ours["eval_loss"] - dense["eval_loss"]) / dense["eval_loss"]}
    print(f"\ntraining benchmark: {args.base_model} (vocabulary {vocab:,}), {args.examples} examples (answers 20-600 "
          f"chars), batch {args.batch_size}, {args.epochs} epoch(s), fp32, CPU threads {torch.get_num_threads()}")
    print(f"{'':34}{'steps':>6}{'useful tok/s':>14}{'seconds':>9}{'eval loss':>11}{'peak MiB':>10}")
    for name, key in (("plain TRL recipe", "baseline"), ("train_lora.py --no-sparse-logits", "dense"),
                      ("train_lora.py", "ftkit")):
        r = results[key]
        print(f"{name:34}{r['steps']:>6}{rate[key]:>14,.0f}{r['seconds']:>9.1f}{r['eval_loss']:>11.4f}{r['peak_mib']:>10.0f}")
    print(f"vs plain TRL: {figures['speedup']:.2f}x tokens/s (target >= 1.5x), eval loss {figures['eval_loss_gap']:+.1%} "
          f"(target within 3%)")
    target = ">= 1.6x tokens/s, <= 0.6x peak memory" if vocab > LARGE_VOCAB else "no slower"
    print(f"sparse vs dense output layer: {figures['sparse_speedup']:.2f}x tokens/s, {figures['sparse_memory_ratio']:.2f}x "
          f"peak memory, eval loss {figures['sparse_eval_loss_gap']:+.2%} (target {target}, eval loss within 0.5%)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    if args.runs != "none":
        import datetime

        from ftkit.benchmarks import add_run
        from ftkit.stages.train.train_outputs import hardware

        run = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "hardware": hardware(),
               "examples": args.examples, "batch_size": args.batch_size, "epochs": args.epochs,
               "threads": torch.get_num_threads(), "figures": figures}
        log.info("bench-train: %d run(s) now in %s (make docs puts the latest per model in README.md)",
                 len(add_run(args.runs, run, "make bench-train")), args.runs)


if __name__ == "__main__":
    run(main)
