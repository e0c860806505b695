"""Convert a merged model to GGUF for Ollama/llama.cpp, quantize it, prove it, write the Modelfile.

Runs llama.cpp's own convert_hf_to_gguf.py (from the llama.cpp/ submodule) to an F16 GGUF, then
quantizes to each requested type with llama.cpp's quantizer, reporting any k-quant fallback. Each file
is verified: prompt token ids equal the HF tokenizer's, the F16 greedy continuation equals the merged
HF model's, each quant's top-1 agreement and KL divergence against F16 on test-set positions. All of
it goes to <output-dir>/quant_report.json and a table. The merge must come first (make merge).

With --create-modelfile, the deployment is proven too: on every path Ollama can take (its TEMPLATE, or
from Ollama 0.30 the GGUF's own template in llama-server; OLLAMA_GO_TEMPLATE unset/0/1; think
unset/false/true) and in llama-server alone, four conversation shapes render the training prompt byte
for byte and token for token, and llama-server's greedy chat answers equal the HF model's. This needs
llama.cpp's llama-server (make llama-tools; `make gguf` builds it); without it the check is skipped.

  <output-dir>/<model-name>-<QUANT>.gguf   one file per type, plus the F16 reference
  <output-dir>/quant_report.json           sizes, tensor types, fallback, verification figures
  <output-dir>/Modelfile                   with --create-modelfile: FROM, TEMPLATE, PARSER where needed,
                                           stops, num_ctx, SYSTEM
  <output-dir>/deploy_parity.json          with --create-modelfile: the deployment check

With --lora-adapter (make gguf-adapter) it exports the adapter alone instead, for Ollama's ADAPTER:
llama.cpp's convert_lora_to_gguf.py on the adapter, the base model as an F16 GGUF beside it (or
--base-gguf), verified (base GGUF + adapter in llama.cpp vs the merged F16 GGUF and the HF model):

  <output-dir>/<model-name>-lora-F16.gguf  the adapter (or -Q8_0 with --adapter-type Q8_0)
  <output-dir>/<model-name>-base-F16.gguf  the base model
  <output-dir>/Modelfile.adapter           FROM the base + ADAPTER + the same TEMPLATE, stops, SYSTEM
  <output-dir>/adapter_report.json         sizes, verification figures, the adapter's digest

example:
  python scripts/convert_to_gguf.py --model-path models/finetuned/merged_model --quantization Q4_K_M \\
      --create-modelfile --model-name llama2-finetuned
  python scripts/convert_to_gguf.py --model-path models/finetuned/merged_model --quantization Q4_K_M Q8_0 F16
  python scripts/convert_to_gguf.py --lora-adapter models/finetuned/lora_adapter --base-model models/tiny-llama
"""
from dataclasses import dataclass
from pathlib import Path

from ftkit.config import defaults
from ftkit.config import schema as options
from ftkit.config.schema import option
from ftkit.core.cli import UserError, log, setup_logging
from ftkit.core.families import NAMES
from ftkit.core.ollama import CHECKED_VERSION, MIN_VERSION, PARSER_SINCE, REQUIRES_SINCE
from ftkit.stages.export.gguf import KNOWN_QUANTS
from ftkit.verify.gguf_checks import DEFAULT_MARGINS


@dataclass
class ExportConfig:
    model_path: str = option(defaults.MERGED_DIR, "merged HF model")
    quantization: list[str] = option(defaults.GGUF_TYPES, f"one or more of {', '.join(KNOWN_QUANTS)}; commas "
                                     "work too. Q4_K_M: smallest with little loss; Q5_K_M: better; Q8_0: near the "
                                     "original", metavar="TYPE")
    output_dir: str = option(defaults.GGUF_DIR, "where the GGUF files go")
    model_name: str = option(defaults.MODEL_NAME, "file name prefix and Ollama model name")
    create_modelfile: bool = option(False, "also write <output-dir>/Modelfile for Ollama")
    modelfile_only: bool = option(False, "write and prove the Modelfile alone, for the GGUFs already in --output-dir "
                                  "(a new --system or --ollama-version: no conversion; the merged model answers the "
                                  "check's questions again)")
    system: str | None = option(None, "SYSTEM prompt for the Modelfile")
    family: str | None = option(None, "chat format family: the Modelfile's TEMPLATE and stops (none: detected from "
                                "the model)", choices=NAMES)
    ollama_version: str | None = option(None, f"write the Modelfile for this Ollama version (none: the newest checked, "
                                        f"{CHECKED_VERSION}; PARSER from {PARSER_SINCE}, REQUIRES from "
                                        f"{REQUIRES_SINCE}; older than {MIN_VERSION}: refused)", metavar="X.Y.Z")
    num_ctx: int | None = option(None, "Modelfile context length (none: the model's max_position_embeddings, at most "
                                 "4096)", minimum=1)
    temperature: float | None = option(None, "Modelfile sampling temperature (only written when given)", minimum=0)
    top_p: float | None = option(None, "Modelfile top_p (only written when given)", minimum=0, maximum=1)
    top_k: int | None = option(None, "Modelfile top_k (only written when given)", minimum=1)
    test_data: str = option(f"{defaults.DATA_DIR}/{defaults.DATA_NAME}_test.jsonl",
                            "test split for the quantization agreement figures")
    check: bool = option(True, "verify the files (--no-check skips it)")
    lora_adapter: str | None = option(None, "export this LoRA adapter alone (for Ollama's ADAPTER), not a merged model")
    base_model: str | None = option(None, "with --lora-adapter: the base it was trained on (folder or Hub id in the "
                                    "cache)")
    base_gguf: str | None = option(None, "with --lora-adapter: an existing GGUF of the base, in --output-dir (none: "
                                   "convert the base to <model-name>-base-F16.gguf)")
    adapter_type: str = option("F16", "adapter GGUF type", choices=("F16", "Q8_0"))
    max_rouge_drop: float = option(DEFAULT_MARGINS["rougeL_char"], "ROUGE-L (char) a type may lose against F16 on "
                                   "the test split before acceptance warns (absolute)", minimum=0)
    max_loss_rise: float = option(DEFAULT_MARGINS["loss"], "answer loss a type may gain against F16 before acceptance "
                                  "warns (0.02: 2%)", minimum=0)
    n_gpu_layers: int = option(defaults.N_GPU_LAYERS, "layers to offload in the checks (-1: all)")


def parse_args(argv=None) -> ExportConfig:
    args = options.parse(ExportConfig, options.build_parser(ExportConfig, __doc__), argv)
    args.quantization = [q for part in args.quantization for q in part.split(",") if q.strip()]
    return args


def main():
    args = parse_args()
    setup_logging()
    from ftkit.core import ollama
    from ftkit.stages.export import gguf
    from ftkit.verify import deploy_parity

    if args.modelfile_only and args.lora_adapter:
        raise UserError("--modelfile-only writes the merged model's Modelfile; --lora-adapter exports the adapter")
    ollama.check_model_name(args.model_name)  # before any work: it becomes file names and a shell argument
    ollama.check_version(args.ollama_version)
    if args.lora_adapter:
        return export_adapter(args)
    if args.modelfile_only:
        return modelfile_only(args)
    parity_check = args.create_modelfile and args.check
    report = gguf.convert(args.model_path, args.output_dir, args.model_name, args.quantization, args.test_data,
                          check=args.check, n_gpu_layers=args.n_gpu_layers, family=args.family,
                          margins={"rougeL_char": args.max_rouge_drop, "loss": args.max_loss_rise},
                          answer_chats=deploy_parity.questions(args.test_data, args.system) if parity_check else None)
    print(gguf.format_table(report))
    if report.get("task_metrics"):
        print(gguf.format_task_table(report))
    log.info("gguf: report in %s/quant_report.json", args.output_dir)
    parity = write_modelfile(args, report.get("deploy_answers"), report["files"]["F16"]["path"]) \
        if args.create_modelfile else None
    if report.get("verification") and not report["verification"]["passed"]:
        log.error("gguf: verification FAILED (see quant_report.json): the GGUF does not reproduce the merged model")
        return 1
    return parity_exit(parity)


def write_modelfile(args, reference: dict | None, f16: str) -> dict | None:
    """The Modelfile for the first non-F16 type asked for, and (unless --no-check) its deployment check against
    the HF model's answers in `reference`."""
    from ftkit.core import ollama
    from ftkit.core.loading import load_tokenizer
    from ftkit.stages.export import gguf
    from ftkit.verify import deploy_parity

    tokenizer = load_tokenizer(args.model_path, family=args.family)
    chosen = modelfile_quant(args.quantization)
    target = gguf.gguf_path(Path(args.output_dir), args.model_name, chosen)
    sampling = {"temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k}
    num_ctx = args.num_ctx or ollama.context_length(args.model_path)
    modelfile = ollama.write_modelfile(Path(args.output_dir) / "Modelfile", str(target), tokenizer=tokenizer,
                                       system=args.system, num_ctx=num_ctx, sampling=sampling,
                                       ollama_version=args.ollama_version)
    if not args.check:
        return None
    return deploy_parity.check_and_record(modelfile, tokenizer, reference, f16, args.n_gpu_layers)


def modelfile_only(args) -> int:
    """A new SYSTEM or Ollama version: the Modelfile again, proven again, from the GGUFs already made."""
    from ftkit.stages.export import gguf
    from ftkit.verify import deploy_parity, gguf_checks

    out = Path(args.output_dir)
    f16 = gguf.gguf_path(out, args.model_name, "F16")
    chosen = modelfile_quant(args.quantization)
    missing = [p for p in (f16, gguf.gguf_path(out, args.model_name, chosen)) if not p.is_file()]
    if missing:
        raise UserError(f"{missing[0]} is missing: run the whole export first (make gguf)")
    reference = None
    if args.check:
        reference = gguf_checks.hf_chat_answers(args.model_path, deploy_parity.questions(args.test_data, args.system),
                                         args.family)
    return parity_exit(write_modelfile(args, reference, str(f16)))


def modelfile_quant(quantization: list[str]) -> str:
    """The type the Modelfile points at: the first one asked for beyond F16 (F16 when none)."""
    from ftkit.stages.export import gguf

    return next((q for q in gguf.check_quant_names(quantization) if q != "F16"), "F16")


def parity_exit(parity: dict | None) -> int:
    if parity and "skipped" not in parity and not parity["passed"]:
        log.error("gguf: deployment check FAILED (see deploy_parity.json): a chat path does not render the training "
                  "prompt, or llama-server answers otherwise than the HF model")
        return 1
    return 0


def export_adapter(args) -> int:
    from ftkit.stages.export.adapter_export import export

    if not args.base_model:
        raise UserError("--lora-adapter needs --base-model (the model the adapter was trained on)")
    report = export(args.lora_adapter, args.base_model, args.output_dir, args.model_name, args.adapter_type,
                    args.base_gguf, args.test_data, args.family, args.check, args.n_gpu_layers, args.system,
                    args.num_ctx, args.ollama_version)
    v = report.get("verification")
    print(f"adapter {Path(report['lora_gguf']).name}: {report['size_bytes'] / 2**20:.2f} MiB on "
          f"{Path(report['base_gguf']).name} ({report['base_size_bytes'] / 2**20:.2f} MiB)")
    if v:
        def greedy(g):
            return f"{g['identical']}/{g['prompts']}" + (f" (+{g['near_ties']} near-tie)" if g["near_ties"] else "")

        line = f"prompt ids {v['token_ids']['identical']}/{v['token_ids']['prompts']}, greedy = HF {greedy(v['greedy_vs_hf'])}"
        if "vs_merged_f16" in v:
            m = v["vs_merged_f16"]
            line += (f", greedy = merged F16 GGUF {greedy(m)}, max |logit difference| {m['max_abs_logit_diff']:.4f}, "
                     f"top-1 {m['top1_agreement']:.3f}")
        print(line)
    log.info("gguf-adapter: Modelfile.adapter, adapter_report.json and deploy_parity.json in %s", args.output_dir)
    if v and not v["passed"]:
        log.error("gguf-adapter: verification FAILED: base + adapter does not reproduce the fine-tuned model")
        return 1
    parity = report.get("deploy_parity")
    if parity and "skipped" not in parity and not parity["passed"]:
        log.error("gguf-adapter: deployment check FAILED (see deploy_parity.json)")
        return 1
    return 0

