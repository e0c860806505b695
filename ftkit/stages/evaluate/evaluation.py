"""Batch evaluation: base vs fine-tuned on the test split, same prompts, same decoding, same metrics.

Writes the per-record CSV (UTF-8 with BOM, so Excel shows Chinese), `<output>.summary.json` with the
aggregates, the deltas (fine-tuned - base) and a paired bootstrap interval for the ROUGE-L delta,
and `<output>.png`, a chart of both models on each metric.
"""
from __future__ import annotations

import csv
import json
import logging
from dataclasses import asdict
from pathlib import Path

from ftkit.core import faults
from ftkit.core.artifacts import summary_path
from ftkit.core.inference import Decoding
from ftkit.core.io import atomic_path, sha256_file, write_json_atomic
from ftkit.verify import metrics
from ftkit.verify.task import TestCase, load_test_cases, run_model

log = logging.getLogger(__name__)

PRIMARY_METRIC = "rougeL_char"
CHART_METRICS = ("rouge1_char", "rouge2_char", "rougeL_char", "rougeL_word", "bleu", "exact_match")


def compare(results: dict[str, dict]) -> dict:
    """Deltas fine-tuned - base, and the paired bootstrap CI of the primary metric's delta."""
    if "base" not in results or "finetuned" not in results:
        return {}
    base, tuned = results["base"]["aggregate"], results["finetuned"]["aggregate"]
    deltas = {k: tuned[k] - base[k] for k in base if isinstance(base[k], float) and isinstance(tuned.get(k), float)}
    ci = metrics.paired_bootstrap_ci([r[PRIMARY_METRIC] for r in results["base"]["rows"]],
                                     [r[PRIMARY_METRIC] for r in results["finetuned"]["rows"]])
    return {"deltas": deltas, "primary_metric": PRIMARY_METRIC, "primary_delta_ci": ci,
            "finetuned_better_on_primary": ci["delta"] > 0,
            "finetuned_lower_loss": tuned["loss"] < base["loss"]}


def write_csv(path: Path, cases: list[TestCase], results: dict[str, dict]) -> None:
    names = list(results)
    per_model = ("answer",) + metrics.PER_RECORD + ("loss", "perplexity", "generated_tokens", "reasoning_chars",
                                                    "latency_s")
    header = ["id", "instruction", "input", "reference"] + [f"{n}_{m}" for m in per_model for n in names]
    with atomic_path(path, suffix=".csv") as tmp, open(tmp, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, case in enumerate(cases):
            row = [case.id, case.instruction, case.input, case.reference]
            for m in per_model:
                for n in names:
                    value = results[n]["rows"][i][m]
                    row.append(round(value, 6) if isinstance(value, float) else value)
            writer.writerow(row)
        faults.reached("eval.write")  # test hook: a kill here must leave no results file behind


def plot_comparison(path: Path, results: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=100, gridspec_kw={"width_ratios": [4, 1]})
    width = 0.8 / len(names)
    colors = {"base": "tab:gray", "finetuned": "tab:green"}
    for j, name in enumerate(names):
        agg = results[name]["aggregate"]
        values = [agg[m] / (100 if m == "bleu" else 1) for m in CHART_METRICS]
        xs = [i + (j - (len(names) - 1) / 2) * width for i in range(len(CHART_METRICS))]
        bars = ax.bar(xs, values, width, label=name, color=colors.get(name))
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
        ax_loss.bar([j], [agg["loss"]], 0.6, color=colors.get(name), label=name)
    ax.set_xticks(range(len(CHART_METRICS)), [m.replace("_", "\n") if m != "bleu" else "bleu/100" for m in CHART_METRICS])
    ax.set_ylim(0, 1.05)
    ax.set_title("Answer quality on the test split (higher is better)")
    ax.legend()
    ax_loss.set_xticks(range(len(names)), names)
    ax_loss.set_title("Reference loss\n(lower is better)")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def evaluate(test_data: str, output: str, models: list, tokenizer, decoding: Decoding, batch_size: int,
             system: str | None = None, describe: dict | None = None) -> dict:
    """See _evaluate; holds the output folder's lock (one run per folder)."""
    from ftkit.core.lock import output_lock

    with output_lock(Path(output).parent, "eval"):
        return _evaluate(test_data, output, models, tokenizer, decoding, batch_size, system, describe)


def _evaluate(test_data: str, output: str, models: list, tokenizer, decoding: Decoding, batch_size: int,
             system: str | None = None, describe: dict | None = None) -> dict:
    cases = load_test_cases(test_data, tokenizer, system)
    scorer = metrics.Scorer()
    results = {}
    for model in models:
        log.info("eval: %s on %d test records", model.name, len(cases))
        results[model.name] = run_model(model, cases, decoding, batch_size, scorer)
    out = Path(output)
    write_csv(out, cases, results)
    summary = {
        "test_data": {"path": test_data, "sha256": sha256_file(test_data), "records": len(cases)},
        "decoding": asdict(decoding),
        "models": describe or {},
        "aggregate": {name: r["aggregate"] for name, r in results.items()},
        **compare(results),
    }
    if "base" in results and "finetuned" in results:
        from ftkit.stages.evaluate.human_eval import answers_digest

        summary["answers_sha256"] = answers_digest([c.id for c in cases], {
            name: [r["answer"] for r in results[name]["rows"]] for name in ("base", "finetuned")})
    previous = summary_path(out)
    if previous.exists():  # imported human ratings stay only while they rate exactly these answers
        old = json.loads(previous.read_text(encoding="utf-8")).get("human_evaluation")
        if old and old.get("answers_sha256") == summary.get("answers_sha256"):
            summary["human_evaluation"] = old
    write_json_atomic(previous, summary)
    plot_comparison(chart_path(out), results)
    return summary


def chart_path(output: Path | str) -> Path:
    return Path(f"{output}.png")


def format_table(summary: dict) -> str:
    names = list(summary["aggregate"])
    rows = [("ROUGE-1 (char)", "rouge1_char", "{:.3f}"), ("ROUGE-2 (char)", "rouge2_char", "{:.3f}"),
            ("ROUGE-L (char)", "rougeL_char", "{:.3f}"), ("ROUGE-L (word)", "rougeL_word", "{:.3f}"),
            ("BLEU (zh)", "bleu", "{:.2f}"), ("exact match", "exact_match", "{:.3f}"),
            ("reference loss", "loss", "{:.4f}"), ("perplexity", "perplexity", "{:.1f}"),
            ("answer chars", "answer_chars", "{:.1f}"), ("tokens/s", "tokens_per_second", "{:.1f}")]
    if any(summary["aggregate"][n].get("answers_with_reasoning") for n in names):  # a thinking run's traces
        rows += [("answers that think", "answers_with_reasoning", "{:d}"),
                 ("trace chars", "mean_reasoning_chars", "{:.1f}")]
    lines = [f"{'metric':<18}" + "".join(f"{n:>12}" for n in names) + ("       delta" if len(names) == 2 else "")]
    for label, key, fmt in rows:
        values = [summary["aggregate"][n].get(key, 0) for n in names]
        line = f"{label:<18}" + "".join(f"{fmt.format(v):>12}" for v in values)
        if len(names) == 2 and key in summary.get("deltas", {}):
            line += f"{summary['deltas'][key]:>+12.4f}"
        lines.append(line)
    if ci := summary.get("primary_delta_ci"):
        lines.append(f"ROUGE-L (char) delta {ci['delta']:+.4f}, 95% CI [{ci['ci_low']:+.4f}, {ci['ci_high']:+.4f}] "
                     f"(paired bootstrap, {ci['samples']} resamples)")
    return "\n".join(lines)
