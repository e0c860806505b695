"""Adapter-only export: the LoRA adapter as a GGUF for Ollama's `ADAPTER`, applied to a base GGUF.

A team that already serves the base model ships tens of megabytes per fine-tune instead of a new
model. llama.cpp's own `convert_lora_to_gguf.py` converts the PEFT adapter (the base's config and
tokenizer tell it the architecture); the base model is converted once with `convert_hf_to_gguf.py`
(or a GGUF the user has is named). Then proof, as for the merged export: base GGUF + adapter in
llama.cpp must give the HF tokenizer's prompt ids and the same greedy answers as the merged F16 GGUF
and as the HF fine-tuned model, and the logits must agree with the merged F16 GGUF. The Modelfile
beside it (`Modelfile.adapter`) has `FROM` + `ADAPTER` and the family's TEMPLATE, PARSER, stops and
SYSTEM. The base GGUF carries the family's pinned chat template (Ollama >= 0.30 and llama-server render
it, not the TEMPLATE, for some families): the base is converted from a view of its folder whose chat
template is the pinned one, and a GGUF the user names must already carry it.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ftkit.core.artifacts import ADAPTER_REPORT
from ftkit.core.cli import UserError
from ftkit.core.io import write_json_atomic

log = logging.getLogger(__name__)

ADAPTER_TYPES = ("F16", "Q8_0")
# llama.cpp's LoRA loader applies adapters to the model's linear layers only
_UNCONVERTIBLE = ("embed_tokens", "lm_head", "wte", "output")


def adapter_path(out_dir: Path, model_name: str, adapter_type: str) -> Path:
    return out_dir / f"{model_name}-lora-{adapter_type}.gguf"


def base_path(out_dir: Path, model_name: str) -> Path:
    return out_dir / f"{model_name}-base-F16.gguf"


def check_convertible(adapter: Path, base_model_dir: Path) -> list[str]:
    """Refuse what llama.cpp cannot convert; return warnings for what it converts with a caveat."""
    from safetensors import safe_open

    config = json.loads((adapter / "adapter_config.json").read_text())
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else list(targets)
    trained_whole = list(config.get("modules_to_save") or [])
    with safe_open(adapter / "adapter_model.safetensors", "pt") as f:
        trained_whole += [k for k in f.keys() if ".lora_" not in k and any(n in k for n in _UNCONVERTIBLE)]  # noqa: SIM118
    embedding_lora = [t for t in targets if t in ("embed_tokens", "lm_head")]
    if trained_whole or embedding_lora:
        raise UserError(f"{adapter}: the adapter trains {', '.join(sorted(set(trained_whole + embedding_lora)))} "
                        "(the embeddings or the output layer), which llama.cpp's adapter converter cannot carry; "
                        "export the merged model instead (make gguf)")
    if config.get("target_parameters"):  # PEFT's LoRA on weight tensors: a mixture of experts' experts and router
        raise UserError(f"{adapter}: the adapter adapts weight tensors ({', '.join(config['target_parameters'])}: a "
                        "mixture of experts' experts or router), which llama.cpp's adapter converter cannot carry; "
                        "export the merged model instead (make gguf)")
    base_vocab = json.loads((base_model_dir / "config.json").read_text()).get("vocab_size")
    tokenizer_file = adapter / "tokenizer.json"
    if base_vocab and tokenizer_file.is_file():
        added = json.loads(tokenizer_file.read_text(encoding="utf-8")).get("added_tokens", [])
        top = max([t["id"] for t in added] + [0])
        if top >= base_vocab:
            raise UserError(f"{adapter}: its tokenizer has tokens past the base model's vocabulary ({top} >= "
                            f"{base_vocab}): added tokens cannot travel in an adapter GGUF; export the merged model")
    warnings = []
    manifest = adapter.parent / "run_manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("arguments", {}).get("use_quantization"):
        warnings.append("this adapter was trained with QLoRA on a 4-bit base; Ollama advises against applying it to a "
                        "base of another precision (this F16 base, or a quantized one): expect small differences")
    return warnings


def local_model_dir(model: str) -> Path:
    """A local folder for a model given as a folder or a Hub id (from the Hugging Face cache)."""
    if Path(model).is_dir():
        return Path(model)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1"))
    except Exception as err:  # noqa: BLE001 - any failure to find the files is the user's to fix
        raise UserError(f"{model}: not a local folder and not found in the Hugging Face cache ({err})") from None


@contextmanager
def pinned_view(model_dir: Path, tokenizer):
    """A temporary folder that links every file of `model_dir` but carries the tokenizer's (pinned) chat
    template: what llama.cpp's converter then writes into the GGUF. The converter prefers
    tokenizer_config.json's chat_template to chat_template.jinja, so the config is rewritten without it."""
    from ftkit.core import families

    with tempfile.TemporaryDirectory(prefix="ftkit-pinned-base-") as tmp:
        view = Path(tmp)
        for item in model_dir.iterdir():
            if item.name not in ("tokenizer_config.json", "chat_template.jinja", "chat_template.json"):
                (view / item.name).symlink_to(item.resolve())
        config_file = model_dir / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        config.pop("chat_template", None)
        template = families.pinned(tokenizer.chat_template, families.family_of(tokenizer))
        if isinstance(template, dict):  # named templates: the converter reads them from tokenizer_config.json
            config["chat_template"] = [{"name": k, "template": v} for k, v in template.items()]
        elif template:
            (view / "chat_template.jinja").write_text(template, encoding="utf-8")
        (view / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
        yield view


def check_base_template(base_gguf: Path, tokenizer) -> None:
    """A base GGUF the user names must carry the pinned chat template: Ollama >= 0.30 and llama-server
    render the GGUF's template, and an unpinned one renders another prompt than the training one."""
    from ftkit.core import families
    from ftkit.verify.deploy_parity import gguf_template_and_architecture

    family = families.family_of(tokenizer)
    template, _ = gguf_template_and_architecture(base_gguf)
    if not families.is_pinned_for(template, family):
        what = ", ".join(family.pins) or f"THINKING={family.thinking}"
        raise UserError(f"--base-gguf {base_gguf}: its chat template is the model's own, not pinned to the training "
                        f"format ({what}): Ollama >= 0.30 and llama-server would render another "
                        "prompt; leave --base-gguf out and ftkit converts the base with the pinned template")


def convert_lora(adapter: Path, base_model_dir: Path, target: Path, adapter_type: str) -> None:
    from ftkit.stages.export.gguf import llama_cpp_dir, run_tool

    tmp = target.with_name(f".{target.name}.tmp")
    try:
        run_tool([sys.executable, str(llama_cpp_dir() / "convert_lora_to_gguf.py"), "--base", str(base_model_dir),
              "--outfile", str(tmp), "--outtype", adapter_type.lower(), str(adapter)],
             f"converting the adapter {adapter} to GGUF")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def verify(base_gguf: Path, lora_gguf: Path, merged_f16: Path | None, base_model: str, adapter: Path, tokenizer,
           test_data: str | None, n_gpu_layers: int = 0, answer_chats: list[list[dict]] | None = None) -> dict:
    """Base GGUF + adapter against the merged F16 GGUF and the HF fine-tuned model (whose answers to
    `answer_chats` are recorded for the deployment check)."""
    from ftkit.core.inference import GGUFChatModel, load_models
    from ftkit.core.loading import dtype_name
    from ftkit.verify import gguf_checks

    with_adapter = GGUFChatModel(str(base_gguf), tokenizer, "base+adapter", n_gpu_layers=n_gpu_layers,
                                 lora_path=str(lora_gguf), logits_all=True)
    result = {"token_ids": gguf_checks.token_ids_match(with_adapter, tokenizer)}
    _, _, hf = load_models(base_model, str(adapter), with_base=False)
    result["greedy_vs_hf"] = gguf_checks.greedy_agreement(with_adapter, hf, tokenizer)
    if answer_chats:
        result["deploy_answers"] = gguf_checks.record_chat_answers(hf, tokenizer, answer_chats, dtype_name(hf.model.dtype))
    if merged_f16 is not None and merged_f16.is_file():
        merged = GGUFChatModel(str(merged_f16), tokenizer, "merged F16", n_gpu_layers=n_gpu_layers, logits_all=True)
        sequences = gguf_checks.eval_sequences(tokenizer, test_data, positions=120)
        a, b = ([rows.copy() for rows in gguf_checks.position_logits(model, sequences)] for model in (with_adapter, merged))
        result["vs_merged_f16"] = {**gguf_checks.greedy_agreement(with_adapter, merged, tokenizer),
                                   "max_abs_logit_diff": gguf_checks.max_abs_difference(a, b), **gguf_checks.agreement(b, a)}
        del merged
    del with_adapter
    ids_ok = result["token_ids"]["identical"] == result["token_ids"]["prompts"]
    greedy_ok = result["greedy_vs_hf"]["agree"]
    merged_ok = "vs_merged_f16" not in result or result["vs_merged_f16"]["agree"]
    result["passed"] = ids_ok and greedy_ok and merged_ok
    return result


def export(adapter: str, base_model: str, out_dir: str, model_name: str, adapter_type: str = "F16",
           base_gguf: str | None = None, test_data: str | None = None, family: str | None = None,
           check: bool = True, n_gpu_layers: int = 0, system: str | None = None, num_ctx: int | None = None,
           ollama_version: str | None = None) -> dict:
    """The adapter GGUF (+ the base GGUF unless one is given), verified, Modelfile.adapter, and the
    deployment check of Modelfile.adapter."""
    from ftkit.core import ollama
    from ftkit.core.loading import load_tokenizer
    from ftkit.stages.export import gguf
    from ftkit.verify import deploy_parity

    adapter_dir, out = Path(adapter), Path(out_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise UserError(f"{adapter_dir}: no adapter_config.json (run `make train` first)")
    if adapter_type not in ADAPTER_TYPES:
        raise UserError(f"--adapter-type {adapter_type}: choose from {', '.join(ADAPTER_TYPES)}")
    base_dir = local_model_dir(base_model)
    warnings = check_convertible(adapter_dir, base_dir)
    for warning in warnings:
        log.warning("gguf-adapter: %s", warning)
    tokenizer = load_tokenizer(str(adapter_dir), family=family)  # its template: pinned when it was saved
    out.mkdir(parents=True, exist_ok=True)
    if base_gguf:
        base = Path(base_gguf)
        if not base.is_file():
            raise UserError(f"--base-gguf {base}: no such file")
        check_base_template(base, tokenizer)
    else:
        base = base_path(out, model_name)
        log.info("gguf-adapter: converting the base model %s with llama.cpp's convert_hf_to_gguf.py (chat template "
                 "pinned to the training format)", base_model)
        with pinned_view(base_dir, tokenizer) as view:
            gguf.convert_f16(str(view), base)
    lora = adapter_path(out, model_name, adapter_type)
    log.info("gguf-adapter: converting %s with llama.cpp's convert_lora_to_gguf.py (%s)", adapter_dir, adapter_type)
    convert_lora(adapter_dir, base_dir, lora, adapter_type)
    from ftkit.core.artifacts import adapter_digest

    # adapter_sha256: the link of the run's chain acceptance walks (which adapter this GGUF was made from)
    report = {"adapter": str(adapter_dir), "adapter_sha256": adapter_digest(Path(adapter_dir)), "base_model": base_model,
              "base_gguf": str(base), "lora_gguf": str(lora),
              "adapter_type": adapter_type, "size_bytes": lora.stat().st_size,
              "base_size_bytes": base.stat().st_size, "warnings": warnings}
    if check:
        log.info("gguf-adapter: verifying base GGUF + adapter against the merged F16 GGUF and the HF model")
        report["verification"] = verify(base, lora, gguf.gguf_path(out, model_name, "F16"), base_model, adapter_dir,
                                        tokenizer, test_data, n_gpu_layers, deploy_parity.questions(test_data, system))
    # its own record: the full export rewrites quant_report.json, and must not drop this stage's digests
    write_json_atomic(out / ADAPTER_REPORT, report)
    modelfile = out / "Modelfile.adapter"
    if base.resolve().parent != out.resolve():
        raise UserError(f"--base-gguf {base}: put it in {out} (the Modelfile's FROM is relative)")
    ollama.write_modelfile(modelfile, str(base), tokenizer=tokenizer, system=system,
                           num_ctx=num_ctx or ollama.context_length(str(base_dir)), adapter=str(lora),
                           ollama_version=ollama_version)
    if check:
        report["deploy_parity"] = deploy_parity.check_and_record(
            modelfile, tokenizer, report["verification"].get("deploy_answers"), n_gpu_layers=n_gpu_layers)
    return report
