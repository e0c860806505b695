"""Merge a LoRA adapter into its base model and save a plain model for GGUF conversion.

The base is loaded in 16/32-bit (never 4-bit, even after QLoRA training); the merged model is saved
as safetensors with tokenizer (tokenizer.model included), chat template and generation config, then
checked against base + adapter: max |logit difference| bounded, greedy outputs identical. The check's
figures go to <output>/../merge_report.json. evaluate_model.py --merge-output calls the same code.

example: python scripts/merge_lora.py --base-model models/tiny-llama \\
             --lora-model models/finetuned/lora_adapter --output models/finetuned/merged_model
"""
from __future__ import annotations

from dataclasses import dataclass

from ftkit.config import defaults
from ftkit.config import schema as options
from ftkit.config.schema import option
from ftkit.core.cli import setup_logging
from ftkit.stages.export.merge import DTYPES


@dataclass
class MergeConfig:
    base_model: str = option(defaults.TINY_MODEL, "base model folder or Hub id")
    lora_model: str = option(defaults.ADAPTER_DIR, "adapter folder")
    output: str = option(defaults.MERGED_DIR, "merged model folder")
    dtype: str = option("auto", "precision to merge and save in (auto: the base's own, fp32 if unstated)", choices=DTYPES)
    check: bool = option(True, "check the merged model against base + adapter (--no-check skips it)")
    trust_remote_code: bool = option(False, "allow the model repository's own code")
    allow_pickle: bool = option(False, "load pickled weights (*.bin) when there are no safetensors")

def main():
    args = options.parse(MergeConfig, options.build_parser(MergeConfig, __doc__))
    setup_logging()
    from ftkit.stages.export.merge import merge_adapter

    merge_adapter(args.base_model, args.lora_model, args.output, args.dtype, args.trust_remote_code, args.check,
                  args.allow_pickle)

