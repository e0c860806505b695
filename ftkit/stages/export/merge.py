"""Merge stage: fold the LoRA adapter into the base weights, save a plain model, and prove it equal.

The base is reloaded in its checkpoint's 16/32-bit dtype — never 4-bit, even when training used QLoRA —
because merging into quantized weights would round the adapter away; on a GPU when there is one. It is
held in memory once: base + adapter's outputs on rendered prompts are recorded, the adapter is merged
into those same weights, and the merged model must reproduce them (logits within a bound scaled to the
logits, top-1 tokens and greedy answers the same, up to ties).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ftkit.core import faults, prompts
from ftkit.core.cli import UserError, check_model_source
from ftkit.core.io import atomic_dir, write_json_atomic
from ftkit.verify.equality import BOUNDS

log = logging.getLogger(__name__)

DTYPES = ("auto", "fp32", "fp16", "bf16")
CHECK_QUESTIONS = ["中国的首都是哪里？", "请计算：12 + 30 等于多少？", "什么是微调？", "Translate 'apple' into Chinese."]
CHECK_NEW_TOKENS = 16


def refuse_quantized(path: str | Path, what: str) -> None:
    config = Path(path) / "config.json"
    if config.exists() and "quantization_config" in json.loads(config.read_text(encoding="utf-8")):
        raise UserError(f"{what} {path} holds a bitsandbytes-quantized model (quantization_config in config.json); "
                        "merge into the original 16/32-bit base model instead")


def _dtype(name: str, base_model: str):
    from ftkit.core.loading import dtype_name, torch_dtype

    if name == "auto":  # the base's own precision (Llama-2 ships fp16); fp32 when it says nothing
        from transformers import AutoConfig

        try:  # a local folder or a Hub id (its config.json from the Hugging Face cache)
            config = AutoConfig.from_pretrained(base_model)
        except (OSError, ValueError) as err:
            raise UserError(f"cannot read the config of {base_model} ({str(err).splitlines()[0]})") from None
        declared = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
        name = dtype_name(declared, default="fp32")
    return name, torch_dtype(name)


def _check_prompts(tokenizer) -> list[list[int]]:
    return [prompts.render_ids(prompts.from_alpaca({"instruction": q}), tokenizer).prompt_ids for q in CHECK_QUESTIONS]


@dataclass
class Outputs:
    """What a model says on the check prompts: logits at every prompt position (on the CPU, in the model's
    dtype: upcasting bf16 logits adds nothing but memory), the greedy continuation and the logits at each
    of its steps."""
    prompt_logits: list
    greedy: list[list[int]]
    step_logits: list


def outputs(model, ids_list: list[list[int]], new_tokens: int = CHECK_NEW_TOKENS) -> Outputs:
    """One forward over each prompt gives its logits and starts a greedy continuation, step by step on the
    cache. (generate() would compute the prompt again, and its last-position output layer made a
    weight-sized copy on CPU bf16: 0.26 GB transient for Qwen2.5-0.5B.)"""
    import torch

    device = next(model.parameters()).device
    result = Outputs([], [], [])
    for ids in ids_list:
        with torch.no_grad():
            out = model(torch.tensor([ids], device=device), use_cache=True)
            result.prompt_logits.append(out.logits[0].cpu())
            tokens, steps = [], []
            for _ in range(new_tokens):
                step = out.logits[0, -1].cpu()
                steps.append(step)
                tokens.append(int(step.argmax()))
                out = model(torch.tensor([[tokens[-1]]], device=device), cache=out.cache, use_cache=True)
        result.greedy.append(tokens)
        result.step_logits.append(torch.stack(steps))
    return result


def verify(reference: Outputs, merged: Outputs, dtype_name: str) -> dict:
    """The merged model's outputs against base + adapter's.

    Passes when every logit is within the bound; the top-1 token agrees wherever the reference's best two
    are further apart than the bound; and each greedy answer is identical or parts only where the
    reference's two candidates were within the bound (a tie that rounding may break either way)."""

    floor, relative = BOUNDS[dtype_name]
    scale = max(float(a.float().abs().max()) for a in reference.prompt_logits)
    bound = max(floor, relative * scale)
    max_diff, decisive, top1_agree = 0.0, 0, 0
    for a, b in zip(reference.prompt_logits, merged.prompt_logits, strict=True):
        a, b = a.float(), b.float()
        max_diff = max(max_diff, float((a - b).abs().max()))
        top2 = a.topk(2, dim=-1).values
        clear = (top2[:, 0] - top2[:, 1]) > bound
        decisive += int(clear.sum())
        top1_agree += int((a.argmax(-1) == b.argmax(-1))[clear].sum())
    identical, ties, partings = 0, 0, []
    for n, (ours, theirs, steps) in enumerate(zip(merged.greedy, reference.greedy, reference.step_logits, strict=True)):
        if ours == theirs:
            identical += 1
            continue
        k = next(i for i, (x, y) in enumerate(zip(ours, theirs, strict=True)) if x != y)
        margin = float(steps[k, theirs[k]].float() - steps[k, ours[k]].float())
        ties += margin <= bound
        partings.append({"prompt": n, "position": k, "merged_token": ours[k], "reference_token": theirs[k],
                         "reference_margin": margin, "tie": margin <= bound})
    prompts_checked = len(reference.greedy)
    return {"prompts": prompts_checked, "dtype": dtype_name, "max_abs_logit_diff": max_diff, "logit_scale": scale,
            "tolerance": bound, "top1_decisive_positions": decisive, "top1_agree": top1_agree,
            "greedy_identical": identical, "greedy_near_ties": ties, "partings": partings,
            "greedy_tokens_per_prompt": len(reference.greedy[0]) if reference.greedy else 0,
            "passed": max_diff <= bound and top1_agree == decisive and identical + ties == prompts_checked}


def _save(merged, tokenizer, adapter: str, base_model: str, output: str) -> None:
    """The merged model with tokenizer files, chat template and generation config (atomically)."""
    from ftkit.core.loading import save_tokenizer

    with atomic_dir(output) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        save_tokenizer(tokenizer, tmp, adapter if Path(adapter, "tokenizer.model").exists() else base_model)
        if merged.generation_config is not None:
            merged.generation_config.save_pretrained(tmp)
        refuse_quantized(tmp, "the merged model")
        faults.reached("merge.save")  # test hook: a kill here must leave no merged model behind


def merge_adapter(base_model: str, adapter: str, output: str, dtype: str = "auto",
                  trust_remote_code: bool = False, check: bool = True, allow_pickle: bool = False) -> dict:
    """See _merge_adapter; holds the output folder's lock (one run per folder)."""
    from ftkit.core.lock import output_lock

    with output_lock(Path(output).parent, "merge"):
        return _merge_adapter(base_model, adapter, output, dtype, trust_remote_code, check, allow_pickle)


def _merge_adapter(base_model: str, adapter: str, output: str, dtype: str = "auto",
                   trust_remote_code: bool = False, check: bool = True, allow_pickle: bool = False) -> dict:
    """Merge `adapter` into `base_model`, verify in memory, then save to `output` (atomically) — or, when the
    check fails, to `<output>-failed-check`, leaving a previous `output` as it was. Returns the report."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ftkit.core.loading import load_tokenizer, pickle_hint

    check_model_source(base_model, "base model")
    if not Path(adapter, "adapter_config.json").exists():
        raise UserError(f"{adapter}: no adapter_config.json (run `make train` first)")
    refuse_quantized(base_model, "the base model")
    dtype_name, torch_dtype = _dtype(dtype, base_model)
    log.info("merge: loading %s in %s (never 4-bit) and applying %s", base_model, dtype_name, adapter)
    load = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code, "use_safetensors": not allow_pickle}
    if torch.cuda.is_available():  # merging and checking a 7B is minutes on a CPU, seconds on a GPU
        load["device_map"] = "auto"
    try:
        base = AutoModelForCausalLM.from_pretrained(base_model, **load)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load the base model {base_model} ({str(err).splitlines()[0]})"
                        f"{pickle_hint(base_model)}") from None
    tokenizer = load_tokenizer(adapter, trust_remote_code)
    with_adapter = PeftModel.from_pretrained(base, adapter)
    with_adapter.eval()
    # the base is in memory once: base + adapter's outputs are recorded before merging rewrites its weights
    ids_list = _check_prompts(tokenizer)
    reference = outputs(with_adapter, ids_list) if check else None
    merged = with_adapter.merge_and_unload()
    merged.eval()
    from ftkit.core.artifacts import adapter_digest

    # the link of the run's chain acceptance walks: which adapter this merged model was made from
    report = {"base_model": base_model, "adapter": adapter, "adapter_sha256": adapter_digest(Path(adapter)),
              "output": output, "dtype": dtype_name}
    if check:  # in memory, before anything is written: a failed check must not touch the previous model
        report["verification"] = verify(reference, outputs(merged, ids_list), dtype_name)
        v = report["verification"]
        log.info("merge: max |logit difference| %.2e (bound %.2e at logit scale %.1f), top-1 %d/%d, greedy identical "
                 "%d/%d (+%d near-ties)", v["max_abs_logit_diff"], v["tolerance"], v["logit_scale"], v["top1_agree"],
                 v["top1_decisive_positions"], v["greedy_identical"], v["prompts"], v["greedy_near_ties"])
    passed = not check or report["verification"]["passed"]
    target = output if passed else f"{output}-failed-check"
    _save(merged, tokenizer, adapter, base_model, target)
    if not passed:
        v = report["verification"]
        raise UserError(f"merge check failed: max |logit difference| {v['max_abs_logit_diff']:.2e} "
                        f"(bound {v['tolerance']:.2e}), top-1 {v['top1_agree']}/{v['top1_decisive_positions']}, "
                        f"greedy identical {v['greedy_identical']}/{v['prompts']} (+{v['greedy_near_ties']} near-ties); "
                        f"the unverified model is in {target}, the previous {output} is untouched")
    write_json_atomic(Path(output).parent / "merge_report.json", report)
    log.info("merge: wrote %s", output)
    return report
