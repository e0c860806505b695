"""The training report (the guide's training_report.md), filled from the artifacts of the run.

Every section is written from evidence on disk. Two sections need a person's judgement (improvements,
known issues): they carry the placeholder until someone writes them, and a re-generated report keeps
what the person wrote there. A section whose evidence is missing carries the placeholder too, which
`make acceptance` counts as unfilled.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

from ftkit.core.artifacts import Paths
from ftkit.core.io import write_text_atomic

PLACEHOLDER = "【待填写】"
HUMAN_SECTIONS = ("改进点 Improvements", "已知问题 Known issues")


def _load(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _missing(what: str, how: str) -> str:
    return f"{PLACEHOLDER} {what} not found — run `{how}`."


def sections_of(text: str) -> dict[str, str]:
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    return {p.split("\n", 1)[0].strip(): p.split("\n", 1)[1] if "\n" in p else "" for p in parts}


def unfilled_sections(text: str) -> tuple[list[str], list[str]]:
    """(human sections still waiting for a person, other sections with a placeholder)."""
    human, other = [], []
    for title, body in sections_of(text).items():
        if PLACEHOLDER in body:
            (human if any(h in title for h in HUMAN_SECTIONS) else other).append(title)
    return human, other


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def data_section(paths: Paths) -> str:
    stats = _load(paths.stats)
    if not stats:
        return _missing("data statistics", "make data")
    c = stats["counts"]
    lines = [f"Input: {', '.join(i['path'] for i in stats['inputs'])} — {c['input']} records; kept {c['kept']}, "
             f"rejected {c['rejected']}, duplicates {c['duplicates']} (`{paths.stats}`).", "",
             _table(["split", "records"], [[s, n] for s, n in stats["splits"].items()])]
    if stats.get("rejected_by_reason"):
        lines += ["", "Rejected by reason: " + ", ".join(f"{k} {v}" for k, v in stats["rejected_by_reason"].items())]
    lengths = stats.get("token_lengths", {}).get("total") or {}
    if lengths:
        lines += ["", f"Token lengths (prompt + answer): p50 {lengths.get('p50')}, p95 {lengths.get('p95')}, max {lengths.get('max')}"]
    return "\n".join(lines)


def config_section(paths: Paths) -> str:
    manifest = _load(Path(paths.model_dir) / "run_manifest.json")
    if not manifest:
        return _missing("run manifest", "make train")
    a = manifest["arguments"]
    keys = ("base_model", "epochs", "batch_size", "grad_accum", "learning_rate", "lr_scheduler", "warmup_ratio",
            "lora_r", "lora_alpha", "lora_dropout", "target_modules", "max_length", "use_quantization", "seed")
    rows = [[k, a.get(k)] for k in keys] + [["precision", manifest.get("precision")],
                                            ["trainable parameters", f"{manifest['parameters']['trainable']:,} of "
                                                                     f"{manifest['parameters']['total']:,}"],
                                            ["processes", f"{manifest.get('world_size', 1)} on "
                                                          f"{manifest.get('num_nodes', 1)} node(s)"]]
    return _table(["parameter", "value"], rows) + f"\n\nAll arguments: `{paths.model_dir}/run_manifest.json`."


def training_section(paths: Paths, report_dir: Path) -> str:
    metrics = _load(Path(paths.model_dir) / "metrics.json")
    if not metrics:
        return _missing("training metrics", "make train")
    curve = Path(paths.model_dir) / "loss_curve.png"
    lines = []
    if curve.is_file():
        shutil.copy(curve, report_dir / "loss_curve.png")  # the report folder travels on its own
        lines += ["![loss curve](loss_curve.png)", ""]
    evals = metrics.get("eval_loss_per_epoch") or []
    lines += [_table(["", "value"], [
        ["train loss (first → last window)", f"{metrics['train_loss_first_window']:.4f} → {metrics['train_loss_last_window']:.4f}"],
        ["validation loss per evaluation", " → ".join(f"{e['eval_loss']:.4f}" for e in evals) or "-"],
        ["best epoch", metrics.get("best_epoch")],
        ["optimizer steps / epochs", f"{metrics['optimizer_steps']} / {metrics['epochs']:g}"],
        ["runtime", f"{metrics['runtime_s']:.1f} s"],
        ["tokens seen / supervised", f"{metrics['tokens_seen']:,} / {metrics['supervised_tokens']:,}"],
        ["throughput", f"{metrics['tokens_per_second']:.0f} tokens/s"],
        ["peak memory", f"{metrics['peak_memory_mib']:.0f} MiB"],
    ]), "", f"Step-by-step log: `{paths.model_dir}/train_log.jsonl`; TensorBoard: `{paths.model_dir}/checkpoints/runs`."]
    return "\n".join(lines)


def evaluation_section(paths: Paths, report_dir: Path) -> str:
    summary = _load(paths.summary)
    if not summary:
        return _missing("evaluation summary", "make eval")
    from ftkit.stages.evaluate.evaluation import format_table

    lines = ["```", format_table(summary), "```", ""]
    chart = Path(f"{paths.eval_output}.png")
    if chart.is_file():
        if chart.resolve().parent != report_dir.resolve():
            shutil.copy(chart, report_dir / chart.name)
        lines += [f"![base vs fine-tuned]({chart.name})", ""]
    lines.append(f"{summary['test_data']['records']} test records, {decoding_text(summary.get('decoding', {}))}, "
                 f"per-record results in `{paths.eval_output}`.")
    return "\n".join(lines) + "\n\n" + general_section(paths)


def general_section(paths: Paths) -> str:
    """Did fine-tuning cost general ability: the multiple-choice check of base, fine-tuned and each GGUF type."""
    general = _load(paths.general)
    if not general:
        return "General ability: " + _missing("multiple-choice check", "make eval-general")
    from ftkit.stages.evaluate.general_eval import format_table

    return (f"General ability (multiple choice, `{paths.general}`; each option letter scored by its log-likelihood, "
            "95% bootstrap intervals, differences paired on the same questions):\n\n```\n" + format_table(general) + "\n```")


def examples_section(paths: Paths, count: int = 5) -> str:
    if not Path(paths.eval_output).is_file():
        return _missing("evaluation results", "make eval")
    with open(paths.eval_output, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))[:count]
    table = [[r["instruction"] + (f" {r['input']}" if r["input"] else ""), r["reference"], r.get("base_answer", "")[:120],
              r.get("finetuned_answer", "")[:120]] for r in rows]
    return _table(["question", "reference", "base", "fine-tuned"], table)


def quantization_section(paths: Paths) -> str:
    report = _load(Path(paths.gguf_dir) / "quant_report.json")
    if not report:
        return _missing("quantization report", "make gguf")
    from ftkit.stages.export.gguf import format_table, format_task_table

    merge = _load(Path(paths.model_dir) / "merge_report.json") or {}
    v = merge.get("verification", {})
    lines = ["```", format_table(report), "```"]
    if report.get("task_metrics"):
        lines += ["", "What each type costs on this task (the evaluation's metrics, through llama.cpp; sizes as a "
                      "fraction of F16 beside the guide's figures for a 7B model):", "",
                  "```", format_task_table(report, _load(paths.general)), "```"]
    if v:
        ties = f" (+{v['greedy_near_ties']} near-ties)" if v.get("greedy_near_ties") else ""
        bound = f" (bound {v['tolerance']:.2e}, in {v['dtype']})" if "dtype" in v else ""
        lines += ["", f"Merge check: max |logit difference| {v['max_abs_logit_diff']:.2e}{bound}, greedy identical "
                      f"{v['greedy_identical']}/{v['prompts']}{ties}."]
    return "\n".join(lines)


def human_section(paths: Paths) -> str:
    summary = _load(paths.summary) or {}
    human = summary.get("human_evaluation")
    if not human:
        return ("Not done yet: `make eval HUMAN_SHEET=reports/human_eval.csv`, rate the sheet blind, then "
                "`make eval RATINGS=reports/human_eval.csv` (the acceptance check shows this as a warning).")
    return _table(["", "base", "fine-tuned"], [
        ["mean score (1-5)", f"{human['mean_score']['base']:.2f}", f"{human['mean_score']['finetuned']:.2f}"],
        ["preferred", f"{100 * human['win_rate']['base']:.0f}%", f"{100 * human['win_rate']['finetuned']:.0f}%"],
    ]) + f"\n\n{human['rows']} questions rated blind (ties {100 * human['tie_rate']:.0f}%), sheet `{human['sheet']}`."


def environment_section(paths: Paths) -> str:
    """The machine and software that trained, from the training run's manifest (not the machine that
    happens to run `make report`)."""
    manifest = _load(Path(paths.model_dir) / "run_manifest.json")
    if not manifest:
        return _missing("training manifest", "make train")
    hw, versions, git = manifest.get("hardware", {}), manifest.get("versions", {}), manifest.get("git", {})
    rows = [["commit", f"{git.get('commit')}{' (uncommitted changes)' if git.get('dirty') else ''}"],
            ["hardware", f"{hw.get('cpu')}, {hw.get('cpu_count')} CPUs"
             + (f", GPU {', '.join(hw['gpus'])}" if hw.get("gpus") else ", no GPU")],
            ["platform", f"{hw.get('platform')}, Python {hw.get('python')}"],
            ["precision", f"{manifest.get('precision')}, {manifest.get('world_size', 1)} process(es)"]]
    rows += [[k, v] for k, v in versions.items()]
    return "Recorded by the training run (`run_manifest.json`):\n\n" + _table(["", ""], rows)


def decoding_text(decoding: dict) -> str:
    """The decoding the evaluation used, as a phrase."""
    if not decoding or decoding.get("temperature", 0) <= 0:
        return f"greedy decoding, at most {decoding.get('max_new_tokens', '?')} new tokens"
    return (f"sampling at temperature {decoding['temperature']:g}, top-p {decoding.get('top_p', 1):g}, seed "
            f"{decoding.get('seed', 0)}, at most {decoding.get('max_new_tokens', '?')} new tokens")


def build(paths: Paths, output: str | Path) -> str:
    output = Path(output)
    report_dir = output.parent
    report_dir.mkdir(parents=True, exist_ok=True)
    kept = sections_of(output.read_text(encoding="utf-8")) if output.exists() else {}

    def by_hand(title: str, prompt: str) -> str:
        previous = kept.get(title, "")
        return previous.strip() if previous and PLACEHOLDER not in previous else f"{PLACEHOLDER} {prompt}"

    parts = [
        ("1. 数据 Data", data_section(paths)),
        ("2. 训练配置 Configuration", config_section(paths)),
        ("3. 训练过程 Training", training_section(paths, report_dir)),
        ("4. 评估结果 Evaluation: base vs fine-tuned", evaluation_section(paths, report_dir)),
        ("5. 示例回答 Example answers", examples_section(paths)),
        ("6. 量化与部署 Quantization and deployment", quantization_section(paths)),
        ("7. 人工评估 Human evaluation", human_section(paths)),
        ("8. 验收 Acceptance", "See `acceptance.md` beside this report (`make acceptance` writes it)."),
        ("9. 环境 Environment", environment_section(paths)),
        (f"10. {HUMAN_SECTIONS[0]}", by_hand(f"10. {HUMAN_SECTIONS[0]}",
                                             "What did fine-tuning improve, with examples? (a person writes this)")),
        (f"11. {HUMAN_SECTIONS[1]}", by_hand(f"11. {HUMAN_SECTIONS[1]}",
                                             "What is still wrong or risky? (a person writes this)")),
    ]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = f"# 训练报告 Training report\n\nGenerated by `make report` on {when} from the run's artifacts.\n\n"
    text += "\n\n".join(f"## {title}\n\n{body}" for title, body in parts) + "\n"
    write_text_atomic(output, text)
    return text
