"""The tables of measured figures (docs/benchmarks.md, train.md, evaluate.md, development.md), generated from the
measured runs (docs/*.json), never typed.

`make bench` appends each run (machine, date, figure and baseline per benchmark) to the runs file;
`make docs` regenerates each table between its two markers, on the page that holds them, from all the runs the
record holds, so a table shows the spread (median, lowest and highest ratio) rather than one lucky run. A test
fails when a table differs from what its record gives.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from ftkit.core.io import append_record
from ftkit.core.io import load_records as load_runs

START, END = "<!-- bench-table:start (make docs writes this from docs/benchmarks.json) -->", "<!-- bench-table:end -->"
# the export-at-scale table (`make bench-scale`, runs in docs/bench_scale.json)
SCALE_START = "<!-- scale-table:start (make docs writes this from docs/bench_scale.json) -->"
SCALE_END = "<!-- scale-table:end -->"
# the training table (`make bench-train`, runs in docs/bench_train.json)
TRAIN_START = "<!-- train-table:start (make docs writes this from docs/bench_train.json) -->"
TRAIN_END = "<!-- train-table:end -->"


def add_run(path: str | Path, run: dict, what: str = "make bench") -> list[dict]:
    return append_record(path, run, f"every `{what}` run on this project's machines; the docs' table is made from "
                                    "these (make docs)")


def render_table(runs: list[dict]) -> str:
    if not runs:
        return "No benchmark run recorded yet: `make bench`, then `make docs`."
    machines = sorted({f"{r['machine']['cpu']}, {r['machine']['cpu_count']} CPUs, "
                       f"{'GPU' if r['machine'].get('cuda') else 'no GPU'}" for r in runs})
    lines = [f"{len(runs)} run(s) of `make bench` ({runs[0]['date'][:10]} to {runs[-1]['date'][:10]}) on "
             f"{'; '.join(machines)}. Median figures; the ratio's lowest–highest over the runs.", "",
             "| benchmark | ftkit (median) | baseline (median) | ratio: median (lowest–highest) | target | met |",
             "|---|---|---|---|---|---|"]
    names = list(dict.fromkeys(row["benchmark"] for r in runs for row in r["summary"]))
    for name in names:
        rows = [row for r in runs for row in r["summary"] if row["benchmark"] == name]
        ratios = [row["ratio"] for row in rows]
        met = sum(row["met"] for row in rows)
        lines.append(f"| {name} | {statistics.median(row['ftkit'] for row in rows):,.0f} "
                     f"| {statistics.median(row['baseline'] for row in rows):,.0f} "
                     f"| {statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f}) "
                     f"| {rows[-1]['target']} | {met} of {len(rows)} runs |")
    return "\n".join(lines)


def render_scale_table(runs: list[dict]) -> str:
    """The latest `make bench-scale` run: each stage's wall time and peak memory against the checkpoint."""
    if not runs:
        return "No `make bench-scale` run recorded yet: `make bench-scale`, then `make docs`."
    latest = runs[-1]
    machine = latest["hardware"]
    lines = [f"`make bench-scale` on {latest['date'][:10]} ({len(runs)} run(s) recorded), {machine['cpu']}, "
             f"{machine['cpu_count']} CPUs, {'GPU' if machine.get('cuda') else 'no GPU'}: random bf16 weights of real "
             f"shapes, by Hub id from the Hugging Face cache, offline. Peak RSS above each process's baseline "
             f"(libraries imported), against the checkpoint's size.", "",
             "| model | checkpoint | stage | wall | peak RSS | × checkpoint | target | met |",
             "|---|---|---|---|---|---|---|---|"]
    for row in latest["models"]:
        for stage, f in row["stages"].items():
            lines.append(f"| {row['model']} | {row['checkpoint_bytes'] / 2**30:.2f} GiB | {stage} | {f['wall_s']:.0f} s "
                         f"| {f['model_rss'] / 2**30:.2f} GiB | {f['ratio']:.2f} | ≤ {f['target']} | "
                         f"{'yes' if f['met'] else '**no**'} |")
    checks = "passed" if latest["checks_passed"] else "**failed**"
    lines += ["", f"Merge and GGUF checks {checks} on every model; memory targets "
                  f"{'all met' if latest['all_met'] else '**not all met**'}."]
    return "\n".join(lines)


LARGE_VOCAB = 100_000  # above this the output layer dominates a small model: the sparse path's targets apply
SPARSE_SPEEDUP_TARGET = 2.0  # the sparse output layer against the full logits, on a large vocabulary
# before 2026-12-05 the dense run was TRL's tiled head at every position (no `dense_path` in the record), against
# which the target was 1.6x; since then it is the full logits, as transformers computes them
TILED_DENSE_TARGET = 1.6


SPARSE_MEMORY_TARGET = 0.6  # the sparse output layer's peak memory against the dense path's, on a large vocabulary
SPARSE_LOSS_TOLERANCE = 0.005  # its eval loss against the dense path's, relative


def sparse_targets_met(figures: dict) -> tuple[bool, float | None]:
    """Whether the sparse output layer met its targets against the dense path, and the speed-up it needed: on a
    large vocabulary >= 2x the full logits' tokens/s at <= 0.6x peak memory (None: elsewhere, no slower); eval
    loss within 0.5% everywhere."""
    loss = abs(figures["sparse_eval_loss_gap"]) <= SPARSE_LOSS_TOLERANCE
    if figures["vocab_size"] > LARGE_VOCAB:
        target = SPARSE_SPEEDUP_TARGET if figures.get("dense_path") == "full logits" else TILED_DENSE_TARGET
        return figures["sparse_speedup"] >= target and figures["sparse_memory_ratio"] <= SPARSE_MEMORY_TARGET and loss, target
    return figures["sparse_speedup"] >= 1.0 and loss, None


def sparse_targets(figures: dict) -> str:
    """The sparse targets' cell of the training table."""
    met, target = sparse_targets_met(figures)
    wanted = f"≥ {target}×, ≤ {SPARSE_MEMORY_TARGET}× memory" if target else "no slower"
    return f"{'yes' if met else '**no**'} ({wanted})"


def render_train_table(runs: list[dict]) -> str:
    """The latest `make bench-train` run of each model: plain TRL vs train_lora.py dense vs sparse."""
    if not runs:
        return "No `make bench-train` run recorded yet: `make bench-train`, then `make docs`."
    latest = {}
    for run in runs:
        latest[run["figures"]["model"]] = run
    lines = ["| model | plain TRL recipe | `train_lora.py --no-sparse-logits` | `train_lora.py` | vs plain TRL "
             "| sparse vs dense | eval loss sparse vs dense | sparse targets met | padding-free vs padded | run |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    def cell(run: dict, bold: bool = False) -> str:
        text = f"{run['tokens'] / run['seconds']:,.0f} tok/s"
        return f"{'**' + text + '**' if bold else text}, {run['peak_mib']:,.0f} MiB"

    for run in latest.values():
        f = run["figures"]
        machine = run["hardware"]
        loss = ("identical" if abs(f["sparse_eval_loss_gap"]) < 5e-5 else f"{f['sparse_eval_loss_gap']:+.2%}")
        dense = "full logits" if f.get("dense_path") == "full logits" else "TRL's tiles, every position"
        padding_free = f"{f['padding_free_speedup']:.2f}×" if "padding_free_speedup" in f else "–"
        lines.append(f"| {Path(f['model']).name} ({f['vocab_size']:,} vocabulary), {run['examples']} examples "
                     f"| {cell(f['baseline'])} | {cell(f['dense'])} ({dense}) | {cell(f['ftkit'], True)} "
                     f"| {f['speedup']:.2f}× (eval loss {f['eval_loss_gap']:+.1%}) "
                     f"| **{f['sparse_speedup']:.2f}×, {f['sparse_memory_ratio']:.2f}× memory** "
                     f"| {loss} ({f['ftkit']['eval_loss']:.4f}) | {sparse_targets(f)} | {padding_free} "
                     f"| {run['date'][:10]}, {machine['cpu_count']} CPUs |")
    return "\n".join(lines)


# the general check's table (`make bench-eval-general`, runs in docs/bench_eval_general.json)
GENERAL_START = "<!-- general-table:start (make docs writes this from docs/bench_eval_general.json) -->"
GENERAL_END = "<!-- general-table:end -->"


def render_general_table(runs: list[dict]) -> str:
    """The latest `make bench-eval-general` run of each model and prompt: questions/s against one forward pass
    per option, one question at a time."""
    if not runs:
        return "No `make bench-eval-general` run recorded yet: `make bench-eval-general`, then `make docs`."
    latest = {}
    for run in runs:
        f = run["figures"]
        latest[f["model"], f["format"], f["shots"]] = run
    lines = ["| model, prompt | questions | one pass per question, batched | one pass per option, one at a time "
             "| speed-up (target ≥ 5×) | same letters | 7B, 1,000 questions on a GPU (estimate) | run |",
             "|---|---|---|---|---|---|---|---|"]
    for run in latest.values():
        f, machine = run["figures"], run["hardware"]
        lines.append(f"| {Path(f['model']).name}, {f['shots']}-shot {f['format']} | {f['questions']} "
                     f"| {f['questions_per_s']:,.1f} q/s (batch {f['batch_size']}) | {f['baseline_questions_per_s']:,.1f} q/s "
                     f"| **{f['speedup']:.1f}×** {'met' if f['speedup'] >= 5 else '**not met**'} "
                     f"| {f['same_choices']}/{f['baseline_questions']} | ≈ {f['estimate_7b_1000_s']:.0f} s ({f['estimate_source']}) "
                     f"| {run['date'][:10]}, {machine['cpu_count']} CPUs{', GPU' if machine.get('cuda') else ''} |")
    return "\n".join(lines)


def section(readme_text: str, start: str = START, end: str = END) -> str:
    if start not in readme_text or end not in readme_text:
        raise ValueError(f"no {start} ... {end} markers")
    return readme_text[readme_text.index(start) + len(start):readme_text.index(end)].strip("\n")


def _replace(text: str, start: str, end: str, body: str) -> str:
    section(text, start, end)  # the markers must be there
    return f"{text[:text.index(start) + len(start)]}\n{body}\n{text[text.index(end):]}"


# the GPU check's table (`make gpu-check` on a GPU, runs in docs/gpu_check.json)
GPU_START = "<!-- gpu-table:start (make docs writes this from docs/gpu_check.json) -->"
GPU_END = "<!-- gpu-table:end -->"


def render_gpu_table(runs: list[dict]) -> str:
    """The latest `make gpu-check` run on a GPU: each training mode, and the ratios between them."""
    if not runs:
        return ("No GPU run recorded yet: no GPU machine has been lent to the sessions that built this. "
                "`make gpu-check` on a CUDA host appends its run to docs/gpu_check.json; `make docs` writes it here.")
    run = runs[-1]
    lines = [f"`make gpu-check` on {run['gpu']} ({run['hardware']['cpu_count']} CPUs), {run['date'][:10]}: "
             f"{run['model']}, {run['parameters'] / 1e9:.2f} B parameters, random weights, sequence length "
             f"{run['seq_len']}, batch {run['batch_size']}, {run['steps']} steps, {run['precision']}; "
             f"{run['wall_s'] / 60:.1f} minutes in all ({len(runs)} run(s) recorded).", "",
             "| mode | tokens/s | step | peak memory | MFU | loss |", "|---|---|---|---|---|---|"]
    for r in run["training"]:
        if "skipped" in r:
            lines.append(f"| {r['mode']} | skipped: {r['skipped']} | | | | |")
            continue
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") else "–"
        lines.append(f"| {r['mode']} | {r['tokens_per_s']:,.0f} | {r['step_time_s']:.2f} s | {r['peak_memory_gib']:.1f} GiB "
                     f"| {mfu} | {r['loss_first']:.3f} → {r['loss_last']:.3f} |")
    lines += ["", "| comparison | tokens/s | peak memory |", "|---|---|---|"]
    lines += [f"| {c['what']} | {c['speedup']:.2f}× | {c['memory_ratio']:.2f}× |" for c in run["comparisons"]]
    return "\n".join(lines)


def pages(root: str | Path) -> list[Path]:
    """Where the tables of measured figures live: README.md and the reference pages in docs/."""
    root = Path(root)
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def page_with(root: str | Path, start: str) -> Path:
    """The page that holds a table's start marker (each table lives on exactly one page)."""
    found = [page for page in pages(root) if start in page.read_text(encoding="utf-8")]
    if len(found) != 1:
        raise ValueError(f"{start}: on {len(found)} pages of {root} (README.md, docs/*.md), not one")
    return found[0]


def tables():
    """(start, end), the renderer and the record of every generated table: benchmarks, export at scale,
    training, the general check, the measured times."""
    from ftkit import timings  # above both: its table is one of them
    from ftkit.core import families

    return (((START, END), render_table, "benchmarks.json"),
            ((SCALE_START, SCALE_END), render_scale_table, "bench_scale.json"),
            ((TRAIN_START, TRAIN_END), render_train_table, "bench_train.json"),
            ((GENERAL_START, GENERAL_END), render_general_table, "bench_eval_general.json"),
            ((GPU_START, GPU_END), render_gpu_table, "gpu_check.json"),
            ((timings.START, timings.END), timings.render_table, "timings.json"),
            ((families.TABLE_START, families.TABLE_END), families.markdown_table, None))


def write_tables(root: str | Path, records: str | Path | None = None) -> None:
    """Every generated table, on the page that holds its markers, from the records in `records` (root/docs)."""
    records = Path(records) if records else Path(root) / "docs"
    for (start, end), render, name in tables():
        page = page_with(root, start)
        text = _replace(page.read_text(encoding="utf-8"), start, end, render(load_runs(records / name) if name else None))
        page.write_text(text, encoding="utf-8")
