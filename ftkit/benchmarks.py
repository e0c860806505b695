"""The README's benchmark table, generated from the measured runs (docs/benchmarks.json), never typed.

`make bench` appends each run (machine, date, figure and baseline per benchmark) to the runs file;
`make docs` regenerates the table between two markers in README.md from all the runs it holds, so the
table shows the spread (median, lowest and highest ratio) rather than one lucky run. A test fails when
the README's table differs from what the runs file gives.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

START, END = "<!-- bench-table:start (make docs writes this from docs/benchmarks.json) -->", "<!-- bench-table:end -->"
# the export-at-scale table (`make bench-scale`, runs in docs/bench_scale.json)
SCALE_START = "<!-- scale-table:start (make docs writes this from docs/bench_scale.json) -->"
SCALE_END = "<!-- scale-table:end -->"


def load_runs(path: str | Path) -> list[dict]:
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8"))["runs"] if path.is_file() else []


def add_run(path: str | Path, run: dict, what: str = "make bench") -> list[dict]:
    from ftkit.io import write_json_atomic

    runs = load_runs(path) + [run]
    write_json_atomic(path, {"about": f"every `{what}` run on this project's machines; README's table is made "
                                      "from these (make docs)", "runs": runs})
    return runs


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


def section(readme_text: str, start: str = START, end: str = END) -> str:
    if start not in readme_text or end not in readme_text:
        raise ValueError(f"README.md has no {start} ... {end} markers")
    return readme_text[readme_text.index(start) + len(start):readme_text.index(end)].strip("\n")


def _replace(text: str, start: str, end: str, body: str) -> str:
    section(text, start, end)  # the markers must be there
    return f"{text[:text.index(start) + len(start)]}\n{body}\n{text[text.index(end):]}"


def write_readme(readme: str | Path, runs_file: str | Path, scale_runs_file: str | Path | None = None) -> None:
    readme = Path(readme)
    text = _replace(readme.read_text(encoding="utf-8"), START, END, render_table(load_runs(runs_file)))
    if scale_runs_file is not None:
        text = _replace(text, SCALE_START, SCALE_END, render_scale_table(load_runs(scale_runs_file)))
    readme.write_text(text, encoding="utf-8")
