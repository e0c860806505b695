"""Merge a LoRA adapter into its base model and save a plain model for GGUF conversion.

The base is loaded in 16/32-bit (never 4-bit, even after QLoRA training); the merged model is saved
as safetensors with tokenizer (tokenizer.model included), chat template and generation config, then
checked against base + adapter: max |logit difference| bounded, greedy outputs identical. The check's
figures go to <output>/../merge_report.json. evaluate_model.py --merge-output calls the same code.

example: python scripts/merge_lora.py --base-model models/tiny-llama \\
             --lora-model models/finetuned/lora_adapter --output models/finetuned/merged_model
"""
import argparse

from ftkit.config import defaults
from ftkit.core.cli import setup_logging
from ftkit.stages.export.merge import DTYPES


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-model", default=defaults.TINY_MODEL, help="base model folder or Hub id (default: %(default)s)")
    ap.add_argument("--lora-model", default=f"{defaults.MODEL_DIR}/lora_adapter", help="adapter folder (default: %(default)s)")
    ap.add_argument("--output", default=defaults.MERGED_DIR, help="merged model folder (default: %(default)s)")
    ap.add_argument("--dtype", choices=DTYPES, default="auto",
                    help="precision to merge and save in (default: %(default)s = the base's own, fp32 if unstated)")
    ap.add_argument("--no-check", action="store_true", help="skip the merged vs base+adapter check")
    ap.add_argument("--trust-remote-code", action="store_true", help="allow the model repository's own code")
    ap.add_argument("--allow-pickle", action="store_true", help="load pickled weights (*.bin) when there are no safetensors")
    return ap.parse_args(argv)


def main():
    args = parse_args()
    setup_logging()
    from ftkit.stages.export.merge import merge_adapter

    merge_adapter(args.base_model, args.lora_model, args.output, args.dtype, args.trust_remote_code, not args.no_check,
                  args.allow_pickle)

