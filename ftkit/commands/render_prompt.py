"""Show exactly what the model sees: a record rendered by the toolkit's one prompt renderer.

Prints the chat text, then the prompt and answer token ids with their pieces. The loss covers the
answer ids (answer + EOS) only.

examples:
  python scripts/render_prompt.py --model models/tiny-llama --data data/sample/sample_data.json --index 0
  python scripts/render_prompt.py --model models/tiny-llama --instruction "你好" --system "你是助手"
"""
import argparse
import json

from ftkit.core.cli import UserError


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model folder (or Hub id) whose tokenizer to use")
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="alpaca JSON array or JSONL file to take a record from")
    source.add_argument("--instruction", help="a question to render as an open turn")
    ap.add_argument("--index", type=int, default=0, help="which record of --data (default: %(default)s)")
    ap.add_argument("--system", help="system prompt to add")
    return ap.parse_args(argv)


def load_record(path: str, index: int) -> dict:
    from ftkit.core.readers import InputError, read_records

    try:
        for record in read_records(path):
            if record.index == index:
                return record.data
    except InputError as err:
        raise UserError(str(err)) from None
    raise UserError(f"{path}: no record with --index {index}")


def main():
    args = parse_args()
    from transformers import AutoTokenizer

    from ftkit.core import prompts

    record = load_record(args.data, args.index) if args.data else {"instruction": args.instruction}
    if args.system:
        record = dict(record, system=args.system)
    try:
        conv = prompts.from_messages(record["messages"]) if "messages" in record else prompts.from_alpaca(record)
    except prompts.PromptError as err:
        raise UserError(f"record {args.index}: {err}") from err
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    ids = prompts.render_ids(conv, tokenizer)
    print("text:", json.dumps(prompts.render_text(conv, tokenizer), ensure_ascii=False))
    for name, part in (("prompt", ids.prompt_ids), ("answer", ids.answer_ids)):
        print(f"{name} ids ({len(part)}):", part)
        print(f"{name} pieces:", tokenizer.convert_ids_to_tokens(part))

