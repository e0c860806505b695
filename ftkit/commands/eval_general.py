"""Did fine-tuning cost general ability? Multiple-choice accuracy of the base model, the fine-tuned model and
each GGUF type, on C-Eval, CMMLU or the shipped Chinese set, with 95% bootstrap intervals.

Each question is scored the standard way: the log-likelihood of each option letter right after C-Eval's
prompt ("以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。"), the highest wins; one forward pass per
question, no generation. The same prompt ids go to the HF models and to llama.cpp, so the accuracies compare.

--benchmark is a folder, read as it is (nothing is downloaded):
  C-Eval   val/<subject>_val.csv (scored), dev/<subject>_dev.csv (shots), optional subject_mapping.json
  CMMLU    test/<subject>.csv (scored), dev/<subject>.csv (shots)
  any      <subject>.csv files with question, A, B, C, D, answer columns
The default is the shipped set: 254 questions in 9 subjects (arithmetic, units, calendar, geography, ...).

Writes --output (eval_general.json): each model's answers, accuracy overall and per subject with intervals,
the paired differences fine-tuned - base and each GGUF type - F16, and the forgetting verdict (WARN beyond
--warn-margin points lost, FAIL beyond --fail-margin, each only when the interval excludes 0).

examples:
  python scripts/eval_general.py --base-model models/tiny-llama --lora-model models/finetuned/lora_adapter
  python scripts/eval_general.py --base-model Qwen/Qwen2.5-7B-Instruct --lora-model models/finetuned/lora_adapter \\
      --benchmark ~/data/ceval-exam --per-subject 20 --shots 5 --quant-report models/gguf/quant_report.json
"""
import argparse

from ftkit.config import defaults
from ftkit.core.cli import check_model_source, setup_logging
from ftkit.core.families import FAMILIES
from ftkit.stages.evaluate.general_eval import FORMATS
from ftkit.stages.evaluate.general_set import SHIPPED


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmark", default=str(SHIPPED), help="benchmark folder (default: the shipped set, ftkit/assets/general_zh)")
    ap.add_argument("--base-model", default=defaults.TINY_MODEL, help="base model folder or Hub id (default: %(default)s)")
    ap.add_argument("--lora-model", default=f"{defaults.MODEL_DIR}/lora_adapter", help="LoRA adapter (default: %(default)s)")
    ap.add_argument("--quant-report", help="quant_report.json of `make gguf`: every GGUF type it lists is scored too")
    ap.add_argument("--no-base", action="store_true", help="skip the base model (no fine-tuned - base difference)")
    ap.add_argument("--shots", type=int, default=defaults.GENERAL_SHOTS, help="examples from dev/ before each question (default: %(default)s)")
    ap.add_argument("--format", choices=FORMATS, default=defaults.GENERAL_FORMAT,
                    help="chat: a user turn in the family's template; plain: C-Eval's text (default: %(default)s)")
    ap.add_argument("--per-subject", type=int, default=defaults.GENERAL_PER_SUBJECT, help="a seeded draw of N questions per subject (0: all)")
    ap.add_argument("--seed", type=int, default=0, help="seed of that draw and of the bootstrap (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=defaults.EVAL_BATCH, help="HF prompts per forward pass (default: %(default)s)")
    ap.add_argument("--warn-margin", type=float, default=2.0, help="points lost that WARN (default: %(default)s)")
    ap.add_argument("--fail-margin", type=float, default=5.0, help="points lost that FAIL (default: %(default)s)")
    ap.add_argument("--family", choices=tuple(FAMILIES), help="chat format family (default: detected)")
    ap.add_argument("--n-gpu-layers", type=int, default=defaults.N_GPU_LAYERS, help="GGUF layers on the GPU (-1: all; default: %(default)s)")
    ap.add_argument("--output", default=f"{defaults.REPORT_DIR}/eval_general.json", help="result JSON (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.shots < 0 or args.per_subject < 0 or args.batch_size < 1:
        ap.error("--shots and --per-subject must be 0 or more, --batch-size at least 1")
    if not 0 <= args.warn_margin <= args.fail_margin:
        ap.error("margins: 0 <= --warn-margin <= --fail-margin")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    from ftkit.stages.evaluate import general_eval

    check_model_source(args.base_model)
    result = general_eval.evaluate(args.benchmark, args.base_model, args.lora_model, args.output, args.shots, args.format,
                                   args.per_subject, args.seed, args.batch_size, args.quant_report, args.family,
                                   args.n_gpu_layers, {"warn": args.warn_margin / 100, "fail": args.fail_margin / 100},
                                   with_base=not args.no_base)
    print(general_eval.format_table(result))
    general_eval.log.info("general: written to %s", args.output)
    return 0

