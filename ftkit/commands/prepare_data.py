"""Prepare raw Q&A data for training: validate, deduplicate, split into train/validation/test JSONL.

Reads JSON arrays, JSONL, CSV and TSV (UTF-8 with or without BOM, or GBK/GB18030), in alpaca
(instruction/input/output), sharegpt (conversations from/value) or OpenAI messages (role/content)
form. Every record is kept, rejected with a reason, or counted as a duplicate of an earlier question:

  <output-dir>/<output-name>_{train,validation,test}.jsonl   the splits (rendered prompt text included)
  <output-dir>/<output-name>_rejected.jsonl                  each dropped record with file, line and reason
  <output-dir>/<output-name>_stats.json                      counts, reasons, token-length percentiles

Duplicates (exact, and after normalising whitespace, punctuation and full-width characters) are
removed before splitting, so no test question appears in train.

Reasoning traces (a reasoning_content / reasoning / thinking / think field beside an answer, or an
answer that starts with <think>…</think>) are kept apart from the answer with --thinking on|mixed
(families that think: qwen3, qwen3.5), and dropped, counted, with --thinking off.

example:
  python scripts/prepare_data.py --input data/sample/sample_data.json --input-format json \\
      --format-type alpaca --output-dir data/finetune --output-name train
  python scripts/prepare_data.py --input qa.csv --columns instruction=问题,output=答案 --encoding gbk
  python scripts/prepare_data.py --input distilled.jsonl --tokenizer models/tiny-qwen3 --thinking mixed
"""
import os
from dataclasses import dataclass
from pathlib import Path

from ftkit.config import defaults
from ftkit.config import schema as options
from ftkit.config.schema import option
from ftkit.core.cli import UserError, log, setup_logging
from ftkit.core.families import NAMES, THINKING_MODES
from ftkit.core.readers import ENCODINGS, FORMATS
from ftkit.stages.data.prepare import FORMAT_TYPES, percentiles

DEFAULT_TOKENIZER = defaults.TINY_MODEL


@dataclass
class DataConfig:
    input: list[str] = option(None, "raw data file(s); repeat or list several to combine them", required=True,
                              metavar="FILE")
    input_format: str = option("auto", "file format (auto: from the extension)", choices=("auto", *FORMATS))
    format_type: str = option("auto", "record layout (auto: detected per record)", choices=FORMAT_TYPES)
    columns: str | None = option(None, "map the file's field names, e.g. instruction=question,output=answer",
                                 metavar="NAME=COLUMN,...")
    encoding: str = option("auto", "text encoding (auto: UTF-8/UTF-8-BOM, else GB18030)", choices=ENCODINGS)
    output_dir: str = option(defaults.DATA_DIR, "where to write")
    output_name: str = option(defaults.DATA_NAME, "prefix of the output files")
    val_ratio: float = option(defaults.VAL_RATIO, "validation share", minimum=0, maximum=0.99)
    test_ratio: float = option(defaults.TEST_RATIO, "test share", minimum=0, maximum=0.99)
    seed: int = option(defaults.SEED, "split seed")
    max_length: int = option(defaults.MAX_LENGTH, "reject records whose prompt + answer exceed this many tokens",
                             minimum=1)
    family: str | None = option(None, "chat format family of the tokenizer's model (none: detected from its chat "
                                "template)", choices=NAMES)
    thinking: str = option(defaults.THINKING, "off: train answers only, traces dropped (counted); on: every answer "
                           "after a think block (empty when a record has no trace); mixed: records with a trace "
                           "think, the others answer directly", choices=THINKING_MODES)
    tokenizer: str | None = option(None, "model folder or Hub id whose tokenizer measures lengths (none: $BASE_MODEL, "
                                   f"else {DEFAULT_TOKENIZER} if built; 'none' skips token lengths)")
    min_records: int = option(defaults.MIN_RECORDS, "warn when the train split holds fewer records (the acceptance "
                              "checklist's minimum, checked there the same way)", minimum=0)


def parse_args(argv=None) -> DataConfig:
    args = options.parse(DataConfig, options.build_parser(DataConfig, __doc__), argv)
    if args.val_ratio + args.test_ratio >= 1:
        raise UserError("--val-ratio + --test-ratio must leave records for training")
    return args


def choose_tokenizer(requested: str | None) -> str | None:
    if requested:
        return None if requested.lower() == "none" else requested
    if os.environ.get("BASE_MODEL"):
        return os.environ["BASE_MODEL"]
    if Path(DEFAULT_TOKENIZER, "tokenizer_config.json").exists():
        return DEFAULT_TOKENIZER
    log.warning("no tokenizer (pass --tokenizer or build models/tiny-llama): token lengths are not checked")
    return None


def print_summary(summary, out_dir: str, name: str) -> None:
    dup = sum(summary.duplicates.values())
    rejected = sum(summary.rejected.values())
    print(f"\n{'input records':<24}{summary.input_records:>8}")
    print(f"{'kept':<24}{summary.kept:>8}")
    for split in ("train", "validation", "test"):
        print(f"  {split:<22}{summary.splits.get(split, 0):>8}   {out_dir}/{name}_{split}.jsonl")
    print(f"{'rejected':<24}{rejected:>8}   {out_dir}/{name}_rejected.jsonl")
    for reason, count in sorted(summary.rejected.items()):
        print(f"  {reason:<22}{count:>8}")
    print(f"{'duplicates':<24}{dup:>8}")
    for kind, count in sorted(summary.duplicates.items()):
        print(f"  {kind:<22}{count:>8}")
    reasoning = summary.reasoning
    if reasoning["with_reasoning"] or reasoning["traces_dropped"]:
        print(f"{'kept with reasoning':<24}{reasoning['with_reasoning']:>8}")
        print(f"{'kept without':<24}{reasoning['without_reasoning']:>8}")
    if reasoning["traces_dropped"]:
        print(f"{'traces dropped':<24}{reasoning['traces_dropped']:>8}   (--thinking off trains the answers alone)")
    p = percentiles(summary.total_tokens)
    measured = f"{p['p50']}/{p['p95']}/{p['max']}" if p and p["max"] else "not measured"
    print(f"{'tokens p50/p95/max':<24}{measured:>8}")


def main():
    args = parse_args()
    setup_logging()
    from tqdm import tqdm

    from ftkit.core.readers import InputError
    from ftkit.stages.data.prepare import (
        PrepareConfig,
        parse_columns,
        prepare,
        too_few_training_records,
    )

    try:
        columns = parse_columns(args.columns)
    except ValueError as err:
        raise UserError(str(err)) from err
    tokenizer = choose_tokenizer(args.tokenizer)
    config = PrepareConfig(inputs=args.input, output_dir=args.output_dir, output_name=args.output_name,
                           input_format=args.input_format, format_type=args.format_type, encoding=args.encoding,
                           columns=columns, val_ratio=args.val_ratio, test_ratio=args.test_ratio, seed=args.seed,
                           max_length=args.max_length, tokenizer=tokenizer,
                           family=args.family, thinking=args.thinking)
    log.info("data: reading %s (tokenizer: %s)", ", ".join(args.input), tokenizer or "none")
    with tqdm(unit="rec", desc="prepare", disable=None, mininterval=1) as bar:
        try:
            summary = prepare(config, progress=bar.update)
        except InputError as err:
            raise UserError(str(err)) from None
    log.info("data: %d kept (%d with a reasoning trace), %d rejected, %d duplicates of %d input records", summary.kept,
             summary.reasoning["with_reasoning"], sum(summary.rejected.values()), sum(summary.duplicates.values()),
             summary.input_records)
    if summary.reasoning["traces_dropped"]:
        log.warning("data: %d reasoning traces dropped: --thinking off trains the answers alone (THINKING=mixed "
                    "keeps them, for a family that thinks)", summary.reasoning["traces_dropped"])
    print_summary(summary, args.output_dir, args.output_name)
    shortfall = too_few_training_records(summary.splits["train"], args.min_records)
    if shortfall:
        log.warning("data: %s: the acceptance checklist will fail (more data, or a smaller --val-ratio/--test-ratio)",
                    shortfall)

