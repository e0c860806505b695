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
from dataclasses import dataclass
from pathlib import Path

from ftkit.config import defaults
from ftkit.config import schema as options
from ftkit.config.schema import option
from ftkit.core.cli import UserError, log, setup_logging
from ftkit.core.families import NAMES


@dataclass
class EvalConfig:
    # the models
    base_model: str = option(defaults.TINY_MODEL, "base model folder or Hub id")
    lora_model: str | None = option(None, f"LoRA adapter folder ({defaults.ADAPTER_DIR})")
    merged_model: str | None = option(None, "a merged model folder to evaluate as the fine-tuned side")
    gguf: str | None = option(None, "a GGUF file to evaluate as the fine-tuned side (llama-cpp-python)")
    n_gpu_layers: int = option(defaults.N_GPU_LAYERS, "with --gguf: layers offloaded to the GPU (-1: all; no effect on "
                               "a CPU build of llama.cpp)")
    base: bool = option(True, "evaluate the base model too (--no-base: faster, no comparison)")
    family: str | None = option(None, "chat format family (none: detected from the model's chat template)",
                                choices=NAMES)
    trust_remote_code: bool = option(False, "allow the model repository's own code")
    allow_pickle: bool = option(False, "load pickled weights (*.bin) when there are no safetensors")
    # what to do
    test_data: str | None = option(None, "test split JSONL for batch evaluation")
    output: str = option(defaults.EVAL_OUTPUT, "results CSV")
    interactive: bool = option(False, "chat with the models in the terminal")
    prompt: str | None = option(None, "answer this one question with the models and exit")
    model: str = option("both", "who answers interactively", choices=("both", "base", "finetuned"))
    human_sheet: str | None = option(None, "also write a blind A/B rating sheet (CSV) from the batch answers")
    import_ratings: str | None = option(None, "read a filled rating sheet into <output>.summary.json")
    merge_output: str | None = option(None, "merge --lora-model into --base-model and save it here")
    # decoding, the same for every model
    max_new_tokens: int = option(defaults.MAX_NEW_TOKENS, "answer length limit", minimum=1)
    temperature: float = option(0.0, "0 = greedy", minimum=0)
    top_p: float = option(1.0, "nucleus sampling when temperature > 0", minimum=0, maximum=1)
    system: str | None = option(None, "system prompt for records (and chats) that have none")
    batch_size: int = option(defaults.EVAL_BATCH, "prompts generated together", minimum=1)
    seed: int = option(0, "sampling seed and sheet shuffle seed")


def parse_args(argv=None) -> EvalConfig:
    args = options.parse(EvalConfig, options.build_parser(EvalConfig, __doc__), argv)
    if not (args.test_data or args.interactive or args.prompt or args.import_ratings or args.merge_output):
        raise UserError("nothing to do: give --test-data, --interactive, --prompt, --import-ratings or --merge-output")
    if args.human_sheet and not args.test_data:
        raise UserError("--human-sheet needs --test-data (the sheet holds the batch answers)")
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
    want_base = args.base and (args.model != "finetuned" or args.test_data)
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

