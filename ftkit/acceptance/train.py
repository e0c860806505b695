"""The training items: sane settings, losses that fell (re-measured), the adapter this run recorded.

Each check is a function of the run's evidence: it returns the evidence of a PASS, or raises Fail (FAIL,
WARN or SKIP) with the evidence and what to do.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from ftkit.acceptance.evidence import VALIDATION_SAMPLE, Fail, Run, measured_once, read_json, read_jsonl
from ftkit.core import prompts


def config(run: Run) -> str:
    args = run.manifest().get("arguments", {})
    checks = {"epochs": (0.5, 50), "learning_rate": (1e-6, 1e-2), "lora_r": (1, 256), "lora_alpha": (1, 1024),
              "batch_size": (1, 1024)}
    problems = [f"{k}={args.get(k)} outside [{lo:g}, {hi:g}]" for k, (lo, hi) in checks.items()
                if not isinstance(args.get(k), int | float) or not lo <= args[k] <= hi]
    ratio = args.get("lora_alpha", 0) / max(1, args.get("lora_r", 1))
    if not problems and not 0.25 <= ratio <= 8:
        problems.append(f"lora_alpha/lora_r = {ratio:g} outside [0.25, 8]")
    summary = ", ".join(f"{k}={args.get(k)}" for k in checks)
    if problems:
        raise Fail("; ".join(problems), "see configs/*.yaml for tested settings")
    return summary


def loss_fell(run: Run) -> str:
    from ftkit.stages.train.train_outputs import window_mean

    losses = [e["loss"] for e in run.log() if "loss" in e]
    if len(losses) < 2:
        raise Fail("fewer than 2 training losses in train_log.jsonl", "train for more steps")
    first, last = window_mean(losses, True), window_mean(losses, False)
    metrics = read_json(Path(run.paths.model_dir) / "metrics.json", "run `make train`")
    if not math.isclose(metrics.get("train_loss_last_window", math.nan), last, rel_tol=1e-6):
        raise Fail("metrics.json disagrees with train_log.jsonl", "re-run `make train`; do not edit its outputs")
    if last >= first:
        raise Fail(f"training loss did not fall: {first:.4f} -> {last:.4f} (first vs last window)",
                   "raise the learning rate or train longer; check the data")
    return f"training loss {first:.4f} -> {last:.4f} (mean of first vs last window of {len(losses)} steps)"


def val_loss_fell(run: Run) -> str:
    evals = [e for e in run.log() if "eval_loss" in e]
    if not evals:
        raise Fail("no validation loss in train_log.jsonl", "train with --val-data")
    metrics = read_json(Path(run.paths.model_dir) / "metrics.json", "run `make train`")
    recorded = [e["eval_loss"] for e in metrics.get("eval_loss_per_epoch", [])]
    if [round(x, 6) for x in recorded] != [round(e["eval_loss"], 6) for e in evals]:
        raise Fail("metrics.json disagrees with train_log.jsonl", "re-run `make train`; do not edit its outputs")
    values = [e["eval_loss"] for e in evals]
    if len(values) < 2:
        raise Fail(f"only one validation loss ({values[0]:.4f}): cannot tell whether it fell",
                   "evaluate at least twice (e.g. --epochs 2 or more)", status="WARN")
    best = min(range(len(values)), key=values.__getitem__)
    trail = " -> ".join(f"{v:.4f}" for v in values)
    if best == 0:
        raise Fail(f"validation loss never fell below the first evaluation: {trail}",
                   "lower the learning rate, check the data, or stop after the first epoch")
    remeasured = _remeasure_validation_loss(run, metrics.get("final_eval_loss"))
    if values[-1] > values[best]:
        raise Fail(f"validation loss fell ({trail}) but rose after evaluation {best + 1} (epoch "
                   f"{evals[best].get('epoch')}): likely overfitting; {remeasured}",
                   "use fewer epochs or --early-stopping-patience 1", status="WARN")
    return f"validation loss {trail}; {remeasured}"


def adapter(run: Run) -> str:
    from safetensors.torch import load_file

    from ftkit.core.artifacts import adapter_digest

    manifest = run.manifest()
    adapter = Path(run.paths.model_dir) / "lora_adapter"
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        if not (adapter / name).is_file():
            raise Fail(f"{adapter / name} is missing", "run `make train`")
    if manifest.get("status") != "complete":
        raise Fail(f"run_manifest.json says the run is {manifest.get('status')!r}", "re-run `make train`")
    if manifest.get("adapter") != adapter_digest(adapter):
        raise Fail("the adapter differs from the one this training run recorded", "re-run `make train`")
    weights = load_file(adapter / "adapter_model.safetensors")
    config = json.loads((adapter / "adapter_config.json").read_text())
    # r, or a rank_pattern's (PEFT doubles it for a mixture of experts' fused gate_up_proj); fused expert weights
    # hold one rank-r adapter per expert, stacked
    allowed = {config.get("r"), *(config.get("rank_pattern") or {}).values()}
    ranks = {t.shape[0] for k, t in weights.items() if "lora_A" in k and ".experts." not in k}
    stacked = {t.shape[0] for k, t in weights.items() if "lora_A" in k and ".experts." in k}
    if not ranks <= allowed or any(all(rows % rank for rank in allowed) for rows in stacked):
        raise Fail(f"adapter weights have rank {sorted(ranks | stacked)} but its config says r={config.get('r')}",
                   "re-run `make train`")
    return f"{adapter}: {len(weights)} tensors, r={config.get('r')}, digest matches run_manifest.json"


def _remeasure_validation_loss(run: Run, logged) -> str:
    """The adapter's loss on a fixed sample of the validation split, measured now, against the logged
    final validation loss: a consistent set of edited logs does not pass. Tolerance: 5% (the trainer
    averages per-batch means, this is a token mean) or 3 standard errors of the sample, the larger."""
    import statistics

    from ftkit.core.inference import load_models
    from ftkit.core.loading import conversation_of

    if not isinstance(logged, int | float):
        raise Fail("metrics.json has no final validation loss", "re-run `make train` with --val-data")
    args = run.manifest().get("arguments", {})
    split = Path(args.get("val_data") or run.paths.split("validation"))
    records = read_jsonl(split, "run `make data`")
    sample = records[:: max(1, len(records) // VALIDATION_SAMPLE)][:VALIDATION_SAMPLE]
    adapter_dir = Path(run.paths.model_dir) / "lora_adapter"

    def measure() -> dict:
        started = time.perf_counter()
        tokenizer, _, adapter = load_models(args["base_model"], str(adapter_dir), with_base=False,
                                            family=args.get("family"))
        pairs = [(r.prompt_ids, r.answer_ids) for r in (prompts.render_ids(conversation_of(x), tokenizer) for x in sample)
                 if len(r.input_ids) <= args.get("max_length", 10**9)]
        return {"losses": adapter.answer_losses(pairs), "weights": [len(a) for _, a in pairs],
                "seconds": time.perf_counter() - started}
    base = Path(args["base_model"])
    measurement = measured_once("validation-loss", [split, adapter_dir, *([base] if base.is_dir() else [])],
                        {"base_model": args["base_model"], "family": args.get("family"),
                         "max_length": args.get("max_length"), "sample": VALIDATION_SAMPLE}, measure)
    losses, weights = measurement["losses"], measurement["weights"]
    measured = sum(x * w for x, w in zip(losses, weights, strict=True)) / sum(weights)
    spread = statistics.stdev(losses) / math.sqrt(len(losses)) if len(losses) > 1 else 0.0
    tolerance = max(0.05 * abs(logged), 3 * spread)
    when = "earlier on these same files (reused)" if measurement.get("reused") else "now"
    text = (f"re-measured {when} on {len(weights)} validation records: {measured:.4f} vs logged {logged:.4f} "
            f"(tolerance {tolerance:.4f}, {measurement['seconds']:.1f} s)")
    if abs(measured - logged) > tolerance:
        raise Fail(f"the adapter does not reproduce its logged validation loss: {text}",
                   "re-run `make train`; do not edit its outputs")
    return text
