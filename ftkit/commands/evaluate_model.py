"""Evaluate a fine-tuned model against its base: batch metrics on the test split, or interactively.

Batch (--test-data): both models answer every test question with the same prompt (the toolkit's one
renderer) and the same decoding (greedy by default), batched with left padding. Writes
  --output                  one row per record: question, reference, both answers, every metric (UTF-8 BOM CSV)
  <output>.summary.json     aggregates, fine-tuned - base deltas, 95% bootstrap CI of the ROUGE-L delta
  <output>.png              chart of both models on each metric
Metrics: reference loss and perplexity (teacher-forced, answer tokens), ROUGE-1/2/L per character and
ROUGE-L per jieba word (correct for Chinese), BLEU (sacrebleu zh), exact match, length, tokens/s.

Interactive (--interactive): both models answer side by side, streaming, with history; commands
/reset, /system <text>, /both, /base, /finetuned, /quit. --prompt "..." answers once and exits.

Human evaluation: --human-sheet sheet.csv writes a blind A/B sheet (answers shuffled per row; the key stays
beside the results, in <output>.human_key.json); after rating, --import-ratings sheet.csv adds win rates
and mean scores to the summary, only if the sheet rated the answers that summary holds.

The fine-tuned side is --lora-model (adapter on --base-model), --merged-model DIR or --gguf FILE.
--merge-output DIR merges the LoRA adapter into the base (same code as `make merge`) and saves it.

examples:
  python scripts/evaluate_model.py --base-model meta-llama/Llama-2-7b-chat-hf \\
      --lora-model models/finetuned/lora_adapter --interactive
  python scripts/evaluate_model.py --base-model meta-llama/Llama-2-7b-chat-hf \\
      --lora-model models/finetuned/lora_adapter --test-data data/finetune/train_test.jsonl --output evaluation_results.csv
  python scripts/evaluate_model.py --output evaluation_results.csv --import-ratings sheet.csv
"""
import argparse
from pathlib import Path

from ftkit.config import defaults
from ftkit.core.cli import UserError, log, setup_logging
from ftkit.core.families import FAMILIES


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    models = ap.add_argument_group("models")
    models.add_argument("--base-model", default=defaults.TINY_MODEL, help="base model folder or Hub id (default: %(default)s)")
    models.add_argument("--lora-model", help="LoRA adapter folder (models/finetuned/lora_adapter)")
    models.add_argument("--merged-model", help="a merged model folder to evaluate as the fine-tuned side")
    models.add_argument("--gguf", help="a GGUF file to evaluate as the fine-tuned side (llama-cpp-python)")
    models.add_argument("--n-gpu-layers", type=int, default=defaults.N_GPU_LAYERS,
                        help="with --gguf: layers offloaded to the GPU (-1: all; no effect on a CPU build of llama.cpp)")
    models.add_argument("--no-base", action="store_true", help="skip the base model (faster; no comparison)")
    models.add_argument("--family", choices=tuple(FAMILIES),
                        help="chat format family (default: detected from the model's chat template)")
    models.add_argument("--trust-remote-code", action="store_true", help="allow the model repository's own code")
    models.add_argument("--allow-pickle", action="store_true", help="load pickled weights (*.bin) when there are no safetensors")
    mode = ap.add_argument_group("what to do")
    mode.add_argument("--test-data", help="test split JSONL for batch evaluation")
    mode.add_argument("--output", default=defaults.EVAL_OUTPUT, help="results CSV (default: %(default)s)")
    mode.add_argument("--interactive", action="store_true", help="chat with the models in the terminal")
    mode.add_argument("--prompt", help="answer this one question with the models and exit")
    mode.add_argument("--model", choices=("both", "base", "finetuned"), default="both",
                      help="who answers interactively (default: %(default)s)")
    mode.add_argument("--human-sheet", help="also write a blind A/B rating sheet (CSV) from the batch answers")
    mode.add_argument("--import-ratings", help="read a filled rating sheet into <output>.summary.json")
    mode.add_argument("--merge-output", help="merge --lora-model into --base-model and save it here")
    decoding = ap.add_argument_group("decoding (the same for every model)")
    decoding.add_argument("--max-new-tokens", type=int, default=defaults.MAX_NEW_TOKENS, help="answer length limit (default: %(default)s)")
    decoding.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default: %(default)s)")
    decoding.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling when temperature > 0")
    decoding.add_argument("--system", help="system prompt for records (and chats) that have none")
    decoding.add_argument("--batch-size", type=int, default=defaults.EVAL_BATCH, help="prompts generated together (default: %(default)s)")
    decoding.add_argument("--seed", type=int, default=0, help="sampling seed and sheet shuffle seed")
    args = ap.parse_args(argv)
    if not (args.test_data or args.interactive or args.prompt or args.import_ratings or args.merge_output):
        ap.error("nothing to do: give --test-data, --interactive, --prompt, --import-ratings or --merge-output")
    if args.human_sheet and not args.test_data:
        ap.error("--human-sheet needs --test-data (the sheet holds the batch answers)")
    if args.max_new_tokens < 1 or args.batch_size < 1:
        ap.error("--max-new-tokens and --batch-size must be at least 1")
    return args


def batch(args, tokenizer, base, candidate, decoding) -> None:
    from ftkit.core.io import sha256_file
    from ftkit.stages.evaluate import evaluation, human_eval
    from ftkit.verify.task import load_test_cases

    models = [m for m in (base, candidate) if m is not None]
    from ftkit.core.artifacts import adapter_digest

    describe = {"base": args.base_model if base else None,
                "finetuned": args.lora_model or args.merged_model or args.gguf,
                "finetuned_kind": "lora" if args.lora_model else "merged" if args.merged_model else "gguf" if args.gguf else None,
                "adapter_sha256": adapter_digest(Path(args.lora_model)) if args.lora_model else None}
    summary = evaluation.evaluate(args.test_data, args.output, models, tokenizer, decoding, args.batch_size,
                                  args.system, describe)
    print(evaluation.format_table(summary))
    log.info("eval: wrote %s, %s, %s", args.output, evaluation.summary_path(args.output), evaluation.chart_path(args.output))
    if args.human_sheet:
        import csv

        with open(args.output, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
        cases = load_test_cases(args.test_data, tokenizer, args.system)
        answers = {name: [r[f"{name}_answer"] for r in rows] for name in ("base", "finetuned")}
        key = human_eval.write_sheet(args.human_sheet, cases, answers, sha256_file(args.test_data), args.output,
                                     describe["adapter_sha256"], args.seed)
        log.info("eval: blind rating sheet %s for the rater (the key stays in %s)", args.human_sheet, key)


def main():
    args = parse_args()
    setup_logging()
    from ftkit.core.inference import Decoding, load_models

    if args.merge_output:
        if not args.lora_model:
            raise UserError("--merge-output needs --lora-model")
        from ftkit.stages.export.merge import merge_adapter

        merge_adapter(args.base_model, args.lora_model, args.merge_output, trust_remote_code=args.trust_remote_code,
                      allow_pickle=args.allow_pickle)
    if args.import_ratings:
        from ftkit.stages.evaluate import human_eval

        ratings = human_eval.import_ratings(args.import_ratings, args.output)
        log.info("eval: %d ratings: mean score base %.2f / fine-tuned %.2f, fine-tuned preferred in %.0f%% (ties %.0f%%)",
                 ratings["rows"], ratings["mean_score"]["base"], ratings["mean_score"]["finetuned"],
                 100 * ratings["win_rate"]["finetuned"], 100 * ratings["tie_rate"])
    if not (args.test_data or args.interactive or args.prompt):
        return
    decoding = Decoding(args.max_new_tokens, args.temperature, args.top_p, args.seed)
    want_base = not args.no_base and (args.model != "finetuned" or args.test_data)
    tokenizer, base, candidate = load_models(args.base_model, args.lora_model, args.merged_model, args.gguf,
                                             args.trust_remote_code, with_base=want_base, allow_pickle=args.allow_pickle,
                                             family=args.family, n_gpu_layers=args.n_gpu_layers,
                                             gguf_losses=bool(args.test_data))
    if args.test_data:
        batch(args, tokenizer, base, candidate, decoding)
    if args.interactive or args.prompt:
        from ftkit.stages.evaluate.chat import ChatSession

        models = {m.name: m for m in (base, candidate) if m is not None}
        mode = args.model if args.model in models or args.model == "both" else next(iter(models))
        session = ChatSession(models, tokenizer, decoding, mode=mode, system=args.system)
        if args.prompt:
            session.ask(args.prompt)
        else:
            session.repl()

