"""`ftkit <stage> [--config FILE] [--flag value ...]`: every stage of the pipeline from one command.

The stages are the guide's scripts (`scripts/train_lora.py` is `ftkit train`): the same code, flags and help.
`ftkit <stage> --help` shows a stage's flags; `make` runs the same commands with the settings you gave it.
"""
from __future__ import annotations

import importlib
import sys

# stage -> (module under ftkit.commands, what it does), in pipeline order
STAGES = {
    "sample": ("create_sample_data", "create sample Chinese Q&A data (alpaca JSON)"),
    "data": ("prepare_data", "validate, dedup and split raw data into train/validation/test JSONL"),
    "train": ("train_lora", "LoRA / QLoRA fine-tuning on the prepared data"),
    "eval": ("evaluate_model", "base vs fine-tuned on the test split; interactive chat; human sheets"),
    "eval-general": ("eval_general", "general ability: multiple choice, base vs fine-tuned vs each GGUF type"),
    "merge": ("merge_lora", "merge the adapter into the base and prove equality"),
    "gguf": ("convert_to_gguf", "GGUF with llama.cpp, quantize, verify, Modelfile, deployment check"),
    "ollama": ("ollama_create", "ollama create + smoke test"),
    "serve": ("serve", "the GGUF behind llama-server's OpenAI-compatible API"),
    "report": ("make_report", "fill training_report.md from the artifacts"),
    "acceptance": ("acceptance_check", "check every item of the acceptance checklist from the artifacts"),
    "tiny-model": ("build_tiny_model", "build an embedded tiny model of a family (offline)"),
    "render-prompt": ("render_prompt", "print a chat as the training format renders it, with its token ids"),
}


def usage() -> str:
    width = max(map(len, STAGES))
    lines = [__doc__.strip(), "", "stages:"]
    lines += [f"  {name:<{width}}  {what}" for name, (_, what) in STAGES.items()]
    lines += ["", f"  {'settings':<{width}}  every setting make uses, its value and where it comes from "
              "(ftkit settings EPOCHS=1: as `make settings EPOCHS=1`)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from ftkit.core.cli import run

    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if args else 2)
    stage, rest = args[0], args[1:]
    if stage == "settings":
        from ftkit.config.make import main as resolve

        sys.exit(resolve(["--show", "--", *rest]))
    if stage not in STAGES:
        print(f"error: ftkit {stage}: no such stage (one of: {', '.join(STAGES)})", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(f"ftkit.commands.{STAGES[stage][0]}")
    sys.argv = [f"ftkit {stage}", *rest]  # argparse names the program after argv[0]
    run(module.main)


if __name__ == "__main__":
    main()
