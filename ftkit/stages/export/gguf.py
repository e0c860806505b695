"""GGUF stage: llama.cpp's own converter and quantizer, then proof that each file is the merged model.

convert_hf_to_gguf.py (from the llama.cpp/ submodule, at the commit llama-cpp-python vendors) runs
as a subprocess — it puts its own gguf-py first on sys.path — and writes the F16 file; each requested
type is quantized from it by the llama-cpp-python binding of llama.cpp's quantizer (byte-identical to
the llama-quantize binary), also in a subprocess so its log can be read. That log reveals k-quant
fallback (tensor rows not a multiple of 256 silently become Q5_0/Q8_0/F16), which is reported.

Each file is then verified by ftkit.verify.gguf_checks: the prompt's token ids in llama.cpp equal the HF
tokenizer's for the same rendered prompt (BOS once); the F16 file's greedy continuation equals the merged HF
model's token for token; each quant's top-1 agreement and mean KL divergence against F16 over test-set positions.
"""
from __future__ import annotations

import logging
import math
import os
import re
import subprocess
import sys
from pathlib import Path

from ftkit import ROOT
from ftkit.core import faults
from ftkit.core.artifacts import merged_digest
from ftkit.core.cli import UserError
from ftkit.core.io import sha256_file, write_json_atomic
from ftkit.verify.gguf_checks import (
    DEFAULT_MARGINS,
    best_within_margin,
    check_files,
    keeps_general_ability,
    within_margin,
)

log = logging.getLogger(__name__)

# the guide's FAQ: sizes of a 7B model's files, in GB
GUIDE_7B_SIZES_GB = {"Q4_K_M": 4, "Q5_K_M": 5, "Q8_0": 8}
KNOWN_QUANTS = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_0", "Q3_K_M", "Q2_K")
_FALLBACK = re.compile(r"(\d+) of (\d+) tensor\(s\) required fallback quantization")
_CONVERTING = re.compile(r"converting to (\w+)")

QUANTIZE_CODE = """
import sys, llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = getattr(llama_cpp, "LLAMA_FTYPE_MOSTLY_" + sys.argv[3])
sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), params))
"""


def llama_cpp_dir() -> Path:
    path = Path(os.environ.get("LLAMA_CPP_DIR", ROOT / "llama.cpp"))
    if not (path / "convert_hf_to_gguf.py").exists():
        raise UserError(f"{path}/convert_hf_to_gguf.py is missing: run `make llama.cpp` first")
    return path


def check_quant_names(quants: list[str]) -> list[str]:
    names = []
    for q in quants:
        q = q.strip().upper()
        if q not in KNOWN_QUANTS:
            raise UserError(f"--quantization {q}: unknown type (choose from {', '.join(KNOWN_QUANTS)})")
        if q not in names:
            names.append(q)
    return names


def gguf_path(out_dir: Path, model_name: str, quant: str) -> Path:
    return out_dir / f"{model_name}-{quant}.gguf"


def run_tool(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise UserError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result


# architectures whose converter looks for multi-token-prediction layers (conversion/qwen.py, the MTP mixin: from
# mtp_num_hidden_layers, or asserting some exist); transformers neither loads nor saves them, so a model it wrote
# (a merged fine-tune, the tiny one) has none, and the GGUF is made without them
_MTP_ARCHITECTURES = {"Qwen3NextForCausalLM", "Qwen3_5ForCausalLM", "Qwen3_5ForConditionalGeneration",
                      "Qwen3_5MoeForCausalLM", "Qwen3_5MoeForConditionalGeneration"}


def converter_flags(model_path: str) -> list[str]:
    """convert_hf_to_gguf.py's flags this model needs: --no-mtp for an MTP architecture saved without MTP layers."""
    import json

    config_file = Path(model_path) / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    if not _MTP_ARCHITECTURES & set(config.get("architectures") or []):
        return []
    from safetensors import safe_open

    for shard in Path(model_path).glob("*.safetensors"):
        with safe_open(shard, "pt") as f:
            if any(key.startswith("mtp.") for key in f.keys()):  # noqa: SIM118 - a safetensors handle
                return []
    return ["--no-mtp"]


def convert_f16(model_path: str, target: Path) -> None:
    """HF folder -> F16 GGUF, written to a temporary name and renamed when complete."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        run_tool([sys.executable, str(llama_cpp_dir() / "convert_hf_to_gguf.py"), model_path, "--outfile", str(tmp),
                  "--outtype", "f16", *converter_flags(model_path)], f"converting {model_path} to GGUF")
        faults.reached("gguf.convert")  # test hook: a kill here must leave no GGUF behind
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def quantize(source: Path, target: Path, quant: str) -> dict:
    """Quantize; returns the tensor types the quantizer chose and how many fell back."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        result = run_tool([sys.executable, "-c", QUANTIZE_CODE, str(source), str(tmp), quant], f"quantizing to {quant}")
        faults.reached("gguf.quantize")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    log_text = result.stderr + result.stdout
    types: dict[str, int] = {}
    for name in _CONVERTING.findall(log_text):
        types[name] = types.get(name, 0) + 1
    fallback = _FALLBACK.search(log_text)
    return {"tensor_types": types, "fallback_tensors": int(fallback.group(1)) if fallback else 0,
            "fallback_warning": fallback.group(0) if fallback else None}


def convert(model_path: str, out_dir: str, model_name: str, quants: list[str], test_data: str | None = None,
            check: bool = True, n_gpu_layers: int = 0, family: str | None = None, margins: dict | None = None,
            answer_chats: list[list[dict]] | None = None) -> dict:
    """See _convert; holds the output folder's lock (one run per folder)."""
    from ftkit.core.lock import output_lock

    with output_lock(out_dir, "gguf"):
        return _convert(model_path, out_dir, model_name, quants, test_data, check, n_gpu_layers, family, margins,
                        answer_chats)


def _convert(model_path: str, out_dir: str, model_name: str, quants: list[str], test_data: str | None = None,
             check: bool = True, n_gpu_layers: int = 0, family: str | None = None, margins: dict | None = None,
             answer_chats: list[list[dict]] | None = None) -> dict:
    """The whole stage: F16 + each quant, verified, reported in <out_dir>/quant_report.json (with the HF
    model's answers to `answer_chats`, for the deployment check)."""
    from ftkit.stages.export.merge import refuse_quantized

    if not Path(model_path, "config.json").exists():
        raise UserError(f"{model_path}: no config.json (run `make merge` first: the GGUF is made from the merged model)")
    refuse_quantized(model_path, "the model")
    quants = check_quant_names(quants)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    f16 = gguf_path(out, model_name, "F16")
    log.info("gguf: converting %s with llama.cpp's convert_hf_to_gguf.py", model_path)
    convert_f16(model_path, f16)
    files = {"F16": {"path": str(f16), "tensor_types": {}, "fallback_tensors": 0, "fallback_warning": None}}
    for quant in quants:
        if quant == "F16":
            continue
        log.info("gguf: quantizing to %s", quant)
        target = gguf_path(out, model_name, quant)
        files[quant] = {"path": str(target), **quantize(f16, target, quant)}
        if files[quant]["fallback_tensors"]:
            log.warning("gguf: %s: %s — those tensors are not %s (rows not a multiple of 256)", target.name,
                        files[quant]["fallback_warning"], quant)
    for info in files.values():
        info["size_bytes"] = Path(info["path"]).stat().st_size
        info["sha256"] = sha256_file(info["path"])
    # the links of the run's chain acceptance walks: the merged model these files were made from, and each file
    report = {"model_path": model_path, "model_name": model_name, "merged_sha256": merged_digest(model_path),
              "requested": quants, "files": files}
    if check:
        report.update(check_files(model_path, files, test_data, n_gpu_layers, family, margins, answer_chats))
    write_json_atomic(out / "quant_report.json", report)
    return report


def format_task_table(report: dict, general: dict | None = None) -> str:
    """What each type costs against F16 on the task (and, given eval_general.json, in general accuracy), and
    the smallest type within every margin."""
    metrics = report.get("task_metrics")
    if not metrics:
        return ""
    margins = report.get("margins", DEFAULT_MARGINS)
    checked = (general or {}).get("models", {})
    f16 = metrics["types"]["F16"]
    lines = [f"task metrics on {metrics['records']} test records (margins: ROUGE-L -{margins['rougeL_char']:g}, "
             f"loss +{100 * margins['loss']:g}% vs F16)" + (
                 f"; general accuracy on {general['benchmark']['questions']} multiple-choice questions (margin "
                 f"-{100 * general['margins']['warn']:g} points)" if checked else ""),
             f"{'model':<12}{'size':>9}{'vs F16':>8}{'7B size (guide)':>17}{'loss':>9}{'ROUGE-L':>9}{'Δloss':>9}"
             f"{'ΔROUGE-L':>10}" + (f"{'general':>9}{'Δgeneral':>10}" if checked else "") + "  within margin",
             f"{'HF merged':<12}{'':>9}{'':>8}{'':>17}{metrics['hf']['loss']:>9.4f}{metrics['hf']['rougeL_char']:>9.3f}"]
    for quant, figs in metrics["types"].items():
        size = report["files"][quant]["size_bytes"] / 2**20
        guide = f"about {GUIDE_7B_SIZES_GB[quant]} GB" if quant in GUIDE_7B_SIZES_GB else ""
        line = (f"{quant:<12}{size:>7.1f}Mi{figs['size_vs_f16']:>8.2f}{guide:>17}{figs['loss']:>9.4f}"
                f"{figs['rougeL_char']:>9.3f}{figs['delta_vs_f16']['loss']:>+9.4f}{figs['delta_vs_f16']['rougeL_char']:>+10.3f}")
        if checked:
            diff = general["differences"].get(f"{quant} - F16", {"difference": 0.0})
            accuracy = checked.get(quant, {}).get("accuracy")
            line += (f"{100 * accuracy:>8.1f}%" if accuracy is not None else f"{'-':>9}") + f"{100 * diff['difference']:>+9.1f}p"
        fits = within_margin(figs, f16, margins) and keeps_general_ability(quant, general)
        lines.append(f"{line}  {'yes' if fits else 'NO'}")
    best = best_within_margin(report, general)
    lines.append(f"smallest type within the margins: {best or 'none (keep F16 or choose a larger type)'}")
    return "\n".join(lines)


def format_table(report: dict) -> str:
    lines = [f"{'file':<34}{'size MiB':>9}{'ids':>7}{'greedy=HF':>10}{'top1 vs F16':>12}{'KL vs F16':>11}{'fallback':>9}"]
    verification = report.get("verification", {})
    for quant, info in report["files"].items():
        v = verification.get(quant, {})
        ids = f"{v['token_ids']['identical']}/{v['token_ids']['prompts']}" if v else "-"
        greedy = f"{v['greedy_vs_hf']['identical']}/{v['greedy_vs_hf']['prompts']}" if v else "-"
        greedy += f"+{v['greedy_vs_hf']['near_ties']}t" if v and v["greedy_vs_hf"]["near_ties"] else ""
        top1 = f"{v['vs_f16']['top1_agreement']:.3f}" if v else "-"
        kl = f"{v['vs_f16']['mean_kl']:.4f}" if v and not math.isnan(v["vs_f16"]["mean_kl"]) else "-"
        lines.append(f"{Path(info['path']).name:<34}{info['size_bytes'] / 2**20:>9.2f}{ids:>7}{greedy:>10}{top1:>12}"
                     f"{kl:>11}{info['fallback_tensors']:>9}")
    return "\n".join(lines)
