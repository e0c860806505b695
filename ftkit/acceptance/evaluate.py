"""The evaluation items: the test split evaluated, its metrics, the human comparison, general ability kept.

Each check is a function of the run's evidence: it returns the evidence of a PASS, or raises Fail (FAIL,
WARN or SKIP) with the evidence and what to do.
"""
from __future__ import annotations

import math
from pathlib import Path

from ftkit.acceptance.evidence import Fail, Run, read_json


def test_split(run: Run) -> str:
    summary = run.summary()
    stats = read_json(run.paths.stats, "run `make data`")
    recorded = stats.get("outputs", {}).get("test", {})
    evaluated = summary.get("test_data", {})
    if not recorded.get("sha256") or evaluated.get("sha256") != recorded["sha256"]:
        raise Fail(f"the evaluation ran on {evaluated.get('path')} whose sha256 is not the test split `make data` wrote",
                   "re-run `make eval` after `make data`")
    return f"{evaluated.get('records')} test records evaluated; sha256 {recorded['sha256'][:12]}… matches the data stage"


def metrics(run: Run) -> str:
    aggregate = run.summary().get("aggregate", {})
    missing = [f"{m}.{k}" for m in ("base", "finetuned") for k in ("loss", "rouge1_char", "rougeL_char", "bleu")
               if not isinstance(aggregate.get(m, {}).get(k), int | float) or math.isnan(aggregate[m][k])]
    if missing:
        raise Fail(f"missing metrics: {', '.join(missing)}", "re-run `make eval` (with the base model)")
    tuned = aggregate["finetuned"]
    return (f"fine-tuned: loss {tuned['loss']:.4f}, ROUGE-1/L (char) {tuned['rouge1_char']:.3f}/{tuned['rougeL_char']:.3f}, "
            f"BLEU {tuned['bleu']:.2f} (base and per-record values in {run.paths.eval_output})")


def human(run: Run) -> str:
    summary = run.summary()
    human = summary.get("human_evaluation")
    if not human:
        raise Fail("no human ratings imported (base vs fine-tuned comparison is automatic only)",
                   "make eval HUMAN_SHEET=reports/human_eval.csv, rate it, then make eval RATINGS=reports/human_eval.csv",
                   status="WARN")
    return (f"{human['rows']} rated blind: fine-tuned preferred {100 * human['win_rate']['finetuned']:.0f}%, "
            f"mean score {human['mean_score']['base']:.2f} -> {human['mean_score']['finetuned']:.2f}")


def forgetting(run: Run) -> str:
    """General ability kept: fine-tuned vs base on the multiple-choice check, recomputed here from each model's
    recorded answers against the benchmark as it lies now (an edited accuracy is caught), with every model
    tied to this run (the adapter's digest, each GGUF's sha256)."""
    from ftkit.core.artifacts import adapter_digest
    from ftkit.stages.evaluate import general_eval

    fix = "run `make eval-general`"
    result, path = run.general(), run.paths.general.name
    bench, models = result.get("benchmark", {}), result.get("models", {})
    benchmark = general_eval.read_benchmark(bench.get("path", "?"), bench.get("per_subject", 0), bench.get("seed", 0))
    if benchmark.digest(bench.get("shots", 0)) != bench.get("digest"):
        raise Fail(f"{path}: the benchmark {bench.get('path')} changed after the check", fix)
    missing = [m for m in ("base", "fine-tuned") if m not in models]
    if missing:
        raise Fail(f"{path} has no {' and no '.join(missing)} model", fix)
    for name, entry in models.items():
        figures = general_eval.accuracy_figures(benchmark, entry.get("choices", ""))
        if abs(figures["accuracy"] - entry.get("accuracy", -1)) > 1e-9:
            raise Fail(f"{path}: {name}'s accuracy {entry.get('accuracy')} is not what its recorded answers give "
                       f"({figures['accuracy']:.4f})", fix)
    adapter = adapter_digest(Path(run.paths.model_dir) / "lora_adapter")
    if models["fine-tuned"].get("adapter_sha256") != adapter:
        raise Fail(f"{path}: the fine-tuned model checked is not the adapter lying there now", fix)
    quant = read_json(Path(run.paths.gguf_dir) / "quant_report.json", "run `make gguf`")
    for quant_type, info in quant.get("files", {}).items():
        file = Path(run.paths.gguf_dir) / Path(info["path"]).name
        if quant_type not in models:
            raise Fail(f"{path}: {file.name} was not checked", fix)
        if models[quant_type].get("sha256") != run.sha256(file):
            raise Fail(f"{path}: the {quant_type} checked is not the file {file.name} lying there now", fix)
    margins = result.get("margins", general_eval.DEFAULT_MARGINS)
    tuned = general_eval.difference(benchmark, models["fine-tuned"]["choices"], models["base"]["choices"])
    status, text = general_eval.forgetting_verdict(tuned, margins)
    text += f" on {len(benchmark.questions)} questions ({bench.get('path')})"
    gguf = [f"{q} - F16 {100 * general_eval.difference(benchmark, m['choices'], models['F16']['choices'])['difference']:+.1f}"
            for q, m in models.items() if m.get("kind") == "gguf" and q != "F16" and "F16" in models]
    text += f"; {', '.join(gguf)} points" if gguf else ""
    if status != "PASS":
        raise Fail(text, "fewer epochs or a lower learning rate, a smaller LoRA rank, or general data mixed into "
                   "the training set", status=status)
    return text
