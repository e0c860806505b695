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


def load_runs(path: str | Path) -> list[dict]:
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8"))["runs"] if path.is_file() else []


def add_run(path: str | Path, run: dict) -> list[dict]:
    from ftkit.io import write_json_atomic

    runs = load_runs(path) + [run]
    write_json_atomic(path, {"about": "every `make bench` run on this project's machines; README's table is made "
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


def section(readme_text: str) -> str:
    if START not in readme_text or END not in readme_text:
        raise ValueError("README.md has no benchmark table markers")
    return readme_text[readme_text.index(START) + len(START):readme_text.index(END)].strip("\n")


def write_readme(readme: str | Path, runs_file: str | Path) -> None:
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    section(text)  # the markers must be there
    head, tail = text[:text.index(START) + len(START)], text[text.index(END):]
    readme.write_text(f"{head}\n{render_table(load_runs(runs_file))}\n{tail}", encoding="utf-8")
