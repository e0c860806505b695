"""Merge stage: fold the LoRA adapter into the base weights, save a plain model, and prove it equal.

The base is reloaded in 16/32-bit — never 4-bit, even when training used QLoRA — because merging
into quantized weights would round the adapter away. The merged model is then checked against
base + adapter on rendered prompts: logits within a bound, greedy outputs identical.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ftkit import faults, prompts
from ftkit.cli import UserError, check_model_source
from ftkit.io import atomic_dir, write_json_atomic

log = logging.getLogger(__name__)

DTYPES = ("auto", "fp32", "fp16", "bf16")
# max |logit difference| allowed between merged and base + adapter, by the dtype the check runs in
TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2, "bf16": 2e-1}
CHECK_QUESTIONS = ["中国的首都是哪里？", "请计算：12 + 30 等于多少？", "什么是微调？", "Translate 'apple' into Chinese."]


def refuse_quantized(path: str | Path, what: str) -> None:
    config = Path(path) / "config.json"
    if config.exists() and "quantization_config" in json.loads(config.read_text(encoding="utf-8")):
        raise UserError(f"{what} {path} holds a bitsandbytes-quantized model (quantization_config in config.json); "
                        "merge into the original 16/32-bit base model instead")


def _dtype(name: str, base_model: str):
    import torch

    if name == "auto":  # the base's own precision (Llama-2 ships fp16); fp32 when it says nothing
        from transformers import AutoConfig

        try:  # a local folder or a Hub id (its config.json from the Hugging Face cache)
            config = AutoConfig.from_pretrained(base_model)
        except (OSError, ValueError) as err:
            raise UserError(f"cannot read the config of {base_model} ({str(err).splitlines()[0]})") from None
        declared = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
        name = {"float16": "fp16", "bfloat16": "bf16"}.get(str(declared).replace("torch.", ""), "fp32")
    return name, {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def _check_prompts(tokenizer) -> list[list[int]]:
    return [prompts.render_ids(prompts.from_alpaca({"instruction": q}), tokenizer).prompt_ids for q in CHECK_QUESTIONS]


def verify(reference, merged, tokenizer, tolerance: float, new_tokens: int = 16) -> dict:
    """Logits and greedy tokens of `merged` against `reference` (base + adapter) on rendered prompts."""
    import torch

    max_diff = 0.0
    identical = 0
    ids_list = _check_prompts(tokenizer)
    for ids in ids_list:
        x = torch.tensor([ids], device=next(merged.parameters()).device)
        with torch.no_grad():
            a = reference(x).logits.float()
            b = merged(x).logits.float()
            max_diff = max(max_diff, (a - b).abs().max().item())
            greedy = {"do_sample": False, "max_new_tokens": new_tokens, "min_new_tokens": new_tokens,
                      "pad_token_id": tokenizer.pad_token_id, "temperature": None, "top_p": None, "top_k": None}
            same = torch.equal(reference.generate(x, **greedy), merged.generate(x, **greedy))
        identical += same
    return {"prompts": len(ids_list), "max_abs_logit_diff": max_diff, "tolerance": tolerance,
            "greedy_identical": identical, "greedy_tokens_per_prompt": new_tokens,
            "passed": max_diff <= tolerance and identical == len(ids_list)}


def _save(merged, tokenizer, adapter: str, base_model: str, output: str) -> None:
    """The merged model with tokenizer files, chat template and generation config (atomically)."""
    from ftkit.loading import copy_sentencepiece_model

    with atomic_dir(output) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)  # with the chat template
        copy_sentencepiece_model(adapter if Path(adapter, "tokenizer.model").exists() else base_model, tmp)
        if merged.generation_config is not None:
            merged.generation_config.save_pretrained(tmp)
        refuse_quantized(tmp, "the merged model")
        faults.reached("merge.save")  # test hook: a kill here must leave no merged model behind


def merge_adapter(base_model: str, adapter: str, output: str, dtype: str = "auto",
                  trust_remote_code: bool = False, check: bool = True, allow_pickle: bool = False) -> dict:
    """See _merge_adapter; holds the output folder's lock (one run per folder)."""
    from ftkit.lock import output_lock

    with output_lock(Path(output).parent, "merge"):
        return _merge_adapter(base_model, adapter, output, dtype, trust_remote_code, check, allow_pickle)


def _merge_adapter(base_model: str, adapter: str, output: str, dtype: str = "auto",
                   trust_remote_code: bool = False, check: bool = True, allow_pickle: bool = False) -> dict:
    """Merge `adapter` into `base_model`, verify in memory, then save to `output` (atomically) — or, when the
    check fails, to `<output>-failed-check`, leaving a previous `output` as it was. Returns the report."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ftkit.loading import load_tokenizer, pickle_hint

    check_model_source(base_model, "base model")
    if not Path(adapter, "adapter_config.json").exists():
        raise UserError(f"{adapter}: no adapter_config.json (run `make train` first)")
    refuse_quantized(base_model, "the base model")
    dtype_name, torch_dtype = _dtype(dtype, base_model)
    log.info("merge: loading %s in %s (never 4-bit) and applying %s", base_model, dtype_name, adapter)
    load = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code, "use_safetensors": not allow_pickle}
    try:
        base = AutoModelForCausalLM.from_pretrained(base_model, **load)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load the base model {base_model} ({str(err).splitlines()[0]})"
                        f"{pickle_hint(base_model)}") from None
    tokenizer = load_tokenizer(adapter, trust_remote_code)
    with_adapter = PeftModel.from_pretrained(base, adapter)
    with_adapter.eval()
    # merging rewrites the base weights in place: keep an unmerged copy as the reference for the check
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_model, **load), adapter).eval() \
        if check else None
    merged = with_adapter.merge_and_unload()
    merged.eval()
    report = {"base_model": base_model, "adapter": adapter, "output": output, "dtype": dtype_name}
    if check:  # in memory, before anything is written: a failed check must not touch the previous model
        report["verification"] = verify(reference, merged, tokenizer, TOLERANCE[dtype_name])
        v = report["verification"]
        log.info("merge: max |logit difference| %.2e (bound %.0e), greedy identical %d/%d", v["max_abs_logit_diff"],
                 v["tolerance"], v["greedy_identical"], v["prompts"])
    passed = not check or report["verification"]["passed"]
    target = output if passed else f"{output}-failed-check"
    _save(merged, tokenizer, adapter, base_model, target)
    if not passed:
        v = report["verification"]
        raise UserError(f"merge check failed: max |logit difference| {v['max_abs_logit_diff']:.2e} "
                        f"(bound {v['tolerance']:.0e}), greedy identical {v['greedy_identical']}/{v['prompts']}; "
                        f"the unverified model is in {target}, the previous {output} is untouched")
    write_json_atomic(Path(output).parent / "merge_report.json", report)
    log.info("merge: wrote %s", output)
    return report
