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

from dataclasses import dataclass

from ftkit.config import defaults
from ftkit.config import schema as options
from ftkit.config.schema import option
from ftkit.core.cli import UserError, check_model_source, setup_logging
from ftkit.core.families import NAMES
from ftkit.stages.evaluate.general_eval import FORMATS
from ftkit.stages.evaluate.general_set import SHIPPED
from ftkit.verify.general_margins import DEFAULT_MARGINS


@dataclass
class GeneralConfig:
    benchmark: str | None = option(None, "benchmark folder, C-Eval's layout (none: the shipped set, "
                                   "ftkit/assets/general_zh)")
    base_model: str = option(defaults.TINY_MODEL, "base model folder or Hub id")
    lora_model: str = option(defaults.ADAPTER_DIR, "LoRA adapter")
    quant_report: str | None = option(None, "quant_report.json of `make gguf`: every GGUF type it lists is scored too")
    base: bool = option(True, "score the base model too (--no-base: no fine-tuned - base difference)")
    shots: int = option(defaults.GENERAL_SHOTS, "examples from dev/ before each question", minimum=0)
    format: str = option(defaults.GENERAL_FORMAT, "chat: a user turn in the family's template; plain: C-Eval's text",
                         choices=FORMATS)
    per_subject: int = option(defaults.GENERAL_PER_SUBJECT, "a seeded draw of N questions per subject (0: all)",
                              minimum=0)
    seed: int = option(0, "seed of that draw and of the bootstrap")
    batch_size: int = option(defaults.EVAL_BATCH, "HF prompts per forward pass", minimum=1)
    warn_margin: float = option(100 * DEFAULT_MARGINS["warn"], "accuracy points lost that WARN", minimum=0)
    fail_margin: float = option(100 * DEFAULT_MARGINS["fail"], "accuracy points lost that FAIL", minimum=0)
    family: str | None = option(None, "chat format family (none: detected)", choices=NAMES)
    n_gpu_layers: int = option(defaults.N_GPU_LAYERS, "GGUF layers on the GPU (-1: all)")
    output: str = option(f"{defaults.REPORT_DIR}/eval_general.json", "result JSON")


def parse_args(argv=None) -> GeneralConfig:
    args = options.parse(GeneralConfig, options.build_parser(GeneralConfig, __doc__), argv)
    if args.warn_margin > args.fail_margin:
        raise UserError("margins: --warn-margin must not exceed --fail-margin")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    from ftkit.stages.evaluate import general_eval

    check_model_source(args.base_model)
    result = general_eval.evaluate(args.benchmark or str(SHIPPED), args.base_model, args.lora_model, args.output, args.shots, args.format,
                                   args.per_subject, args.seed, args.batch_size, args.quant_report, args.family,
                                   args.n_gpu_layers, {"warn": args.warn_margin / 100, "fail": args.fail_margin / 100},
                                   with_base=args.base)
    print(general_eval.format_table(result))
    general_eval.log.info("general: written to %s", args.output)
    return 0

