"""The guide's acceptance checklist (验收检查清单), checked from the artifacts on disk, never from flags.

Each item reads its own evidence and says PASS, FAIL, WARN (a person should look) or SKIP (its
evidence depends on an item that failed), with the evidence (numbers, files) and, when it is not a
PASS, what to do. Cross-checks make a faked run fail: metrics against the raw training log, the
adapter against the digest the training run recorded, the evaluated test file against the hash the
data stage recorded, the Modelfile against the renderer.

One module per section of the checklist (data, train, evaluate, deploy, docs), one small function per item;
`evidence` holds what they share: the run's files, read once, and re-measurements reused while their inputs hold.
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import asdict

from ftkit.acceptance import data, deploy, docs, evaluate, train
from ftkit.acceptance.evidence import (  # noqa: F401 - the package's interface
    DEFAULT_MIN_TOKENS_PER_SECOND,
    REUSE_ENV,
    SECTIONS,
    Fail,
    Item,
    Run,
    Thresholds,
    measured_once,
)
from ftkit.core.artifacts import Paths

# (section, key, the guide's line, the check): in the checklist's order
ITEMS: list[tuple[str, str, str, Callable[[Run], str]]] = [
    ("data", "min_records", "准备了至少100条高质量的训练数据", data.min_records),
    ("data", "well_formed", "数据格式正确（instruction/input/output）", data.well_formed),
    ("data", "splits", "数据已划分为训练/验证/测试集", data.splits),
    ("train", "config", "训练配置合理（epochs, learning_rate等）", train.config),
    ("train", "loss_fell", "训练loss正常下降", train.loss_fell),
    ("train", "val_loss_fell", "验证loss正常下降", train.val_loss_fell),
    ("train", "adapter", "模型已保存到指定目录", train.adapter),
    ("eval", "test_split", "在测试集上进行了评估", evaluate.test_split),
    ("eval", "metrics", "记录了评估指标（loss, 回答质量等）", evaluate.metrics),
    ("eval", "human", "进行了人工评估和对比", evaluate.human),
    ("eval", "forgetting", "通用能力没有因微调明显下降（单项选择题，微调前后对比）", evaluate.forgetting),
    ("deploy", "loads", "模型可以正常加载", deploy.loads),
    ("deploy", "speed", "推理速度满足要求", deploy.speed),
    ("deploy", "quality", "已回答质量有明显提升（如有数据支持）", deploy.quality),
    ("deploy", "modelfile", "Modelfile 模板与训练格式一致", deploy.modelfile),
    ("deploy", "parity", "Ollama 与 llama-server 的每条对话路径都得到训练时的提示与回答", deploy.parity),
    ("docs", "report", "填写了训练报告（training_report.md）", docs.report),
    ("docs", "parameters", "记录了关键参数和结果", docs.parameters),
    ("docs", "log", "保存了训练日志", docs.log),
    ("docs", "chain", "每个产物都出自同一次运行（数据→适配器→合并模型→GGUF→Modelfile，评估→适配器）", docs.chain),
]


def run_checks(paths: Paths, thresholds: Thresholds, progress: Callable[[Item], None] | None = None,
               n_gpu_layers: int = 0, only: Collection[str] | None = None) -> list[Item]:
    """Every item in checklist order; `only` (item keys) checks those alone — an item that builds on another
    (deploy.speed and deploy.parity on deploy.loads) needs that one named too."""
    run = Run(paths, thresholds, n_gpu_layers)
    items = []
    for section, key, title, check in ITEMS:
        if only is not None and f"{section}.{key}" not in only:
            continue
        item = Item(section, f"{section}.{key}", title)
        try:
            item.evidence = check(run)
        except Fail as err:
            item.status, item.evidence, item.fix = err.status, err.evidence, err.fix
        except Exception as err:  # noqa: BLE001 - a check that crashes on broken evidence is a failure, not a traceback
            item.status, item.evidence, item.fix = "FAIL", f"could not check: {type(err).__name__}: {err}", "see the evidence"
        items.append(item)
        if progress:
            progress(item)
    return items


def to_json(items: list[Item], thresholds: Thresholds) -> dict:
    counts = {s: sum(i.status == s for i in items) for s in ("PASS", "WARN", "FAIL", "SKIP")}
    return {"passed": counts["FAIL"] == 0, "counts": counts, "overridden_thresholds": thresholds.overridden,
            "items": [asdict(i) for i in items]}


def verdict(result: dict) -> str:
    """The closing line: PASSED only when nothing waits; WARN items are named as waiting for a person."""
    counts = result["counts"]
    if not result["passed"]:
        head = "FAILED"
    elif counts["WARN"]:
        head = f"PASSED — {counts['WARN']} item(s) wait for a person"
    else:
        head = "PASSED"
    return f"{head}: " + ", ".join(f"{v} {k}" for k, v in counts.items())


def format_line(item: Item) -> str:
    line = f"{item.status:<5} {item.key:<20} {item.title}\n      {item.evidence}"
    return line + (f"\n      -> {item.fix}" if item.fix and item.status != "PASS" else "")


def to_markdown(items: list[Item], thresholds: Thresholds) -> str:
    result = to_json(items, thresholds)
    lines = ["# 验收检查 Acceptance check", "",
             f"Result: **{verdict(result)}**", ""]
    if thresholds.overridden:
        lines += ["Thresholds overridden: " + "; ".join(thresholds.overridden), ""]
    for section, name in SECTIONS.items():
        lines += [f"## {name}", "", "| | item | evidence | to do |", "|---|---|---|---|"]
        for i in (i for i in items if i.section == section):
            cell = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
            lines.append(f"| {i.status} | {i.title} | {cell(i.evidence)} | {cell(i.fix) if i.status != 'PASS' else ''} |")
        lines.append("")
    return "\n".join(lines)
