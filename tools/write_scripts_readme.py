#!/usr/bin/env python3
"""Write scripts/README.md: every stage script's purpose, flags, inputs, outputs and an example,
taken from the scripts' own --help so the document cannot drift from the code (a test regenerates it
and compares); and the tables of measured figures (README.md, docs/*.md), from the records in docs/ (benchmarks.json, bench_scale.json,
bench_train.json, bench_eval_general.json, timings.json): no figure in them is typed by hand.

example: python tools/write_scripts_readme.py            (make docs)
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = [*(f"scripts/{name}.py" for name in (
    "create_sample_data", "prepare_data", "train_lora", "evaluate_model", "eval_general", "merge_lora", "convert_to_gguf",
    "ollama_create", "serve", "make_report", "acceptance_check", "build_tiny_model", "render_prompt")),
    *(f"bench/{name}.py" for name in (
        "gpu_check", "bench_all", "bench_data", "bench_train", "bench_eval", "bench_eval_general", "bench_gguf", "bench_scale")),
    "tools/write_scripts_readme.py"]
INTRO = """# scripts/

The stage scripts of the pipeline (the guide's `finetune/` folder). Each is a thin entry point over one
module of `ftkit/commands/`, which `ftkit <stage>` runs too (same flags, same help); `make` targets call them with
the variables shown by `make help`. The benchmarks and the GPU check are in `bench/`, generators in `tools/`. Every
script prints one line per stage, exits 0 only on success, and turns bad input into a one-line error
with exit code 2. This page is generated from the scripts' own `--help` by
`python tools/write_scripts_readme.py` (`make docs`); a test fails when it is out of date.

| script | stage | make target |
|---|---|---|
| `create_sample_data.py` | sample Chinese Q&A data | `make sample` |
| `prepare_data.py` | validate, dedup, split | `make data` |
| `train_lora.py` | LoRA / QLoRA training | `make train` |
| `evaluate_model.py` | base vs fine-tuned, interactive, human sheets, merge door | `make eval`, `make chat` |
| `eval_general.py` | general ability: multiple choice, base vs fine-tuned vs each GGUF type | `make eval-general` |
| `merge_lora.py` | merge the adapter, prove equality | `make merge` |
| `convert_to_gguf.py` | GGUF, quantize, verify, Modelfile, deployment check | `make gguf`, `make gguf-adapter` |
| `ollama_create.py` | `ollama create` + smoke test | `make ollama` |
| `serve.py` | the GGUF behind llama-server's OpenAI API | `make serve` |
| `make_report.py` | training_report.md | `make report` |
| `acceptance_check.py` | the acceptance checklist | `make acceptance` |
| `build_tiny_model.py` | the embedded tiny Llama | `make tiny-model` |
| `render_prompt.py` | show a record as the model sees it | |
| `bench/gpu_check.py` | prove and measure the GPU path (random Llama-2-7B) | `make gpu-check` |
| `bench/bench_*.py` | benchmarks against baselines | `make bench`, `bench-data`, `bench-train`, `bench-eval`, `bench-eval-general`, `bench-gguf`, `bench-scale` |
"""


def help_text(script: str) -> str:
    env = dict(os.environ, COLUMNS="100")  # argparse wraps to the terminal: fix it for a stable page
    result = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True, env=env,
                            check=True)
    return result.stdout.rstrip()


def render() -> str:
    parts = [INTRO]
    for script in ORDER:
        parts.append(f"## {script}\n\n```text\n{help_text(script)}\n```\n")
    return "\n".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", default=str(ROOT / "scripts" / "README.md"), help="where to write (default: scripts/README.md)")
    ap.add_argument("--tables", default=str(ROOT),
                    help="the checkout whose tables of measured figures (README.md, docs/*.md) to regenerate from the "
                         "records in docs/ ('none': skip; default: this one)")
    args = ap.parse_args()
    Path(args.output).write_text(render(), encoding="utf-8")
    print(f"wrote {args.output}")
    if args.tables != "none":
        from ftkit.benchmarks import write_tables

        write_tables(args.tables, ROOT / "docs")
        print(f"wrote the tables of measured figures in {args.tables} (README.md, docs/*.md) from the records in docs/")


if __name__ == "__main__":
    main()
