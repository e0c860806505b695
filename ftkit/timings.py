"""Measured times of the project's own steps (set-up, tools, the test suite, the demos), recorded where they
were measured and never typed: docs/development.md's time table is made from docs/timings.json by `make docs`.

A step is timed by running it under this module, and recorded only when FTKIT_TIMINGS names the record
file (CI on a fresh machine records nothing; a maintainer measuring sets it):

  FTKIT_TIMINGS=docs/timings.json python -m ftkit.timings run "make setup" -- make setup

The test suite records itself (tests/conftest.py), with its counts.
"""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from ftkit.core.io import append_record

START = "<!-- timings-table:start (make docs writes this from docs/timings.json) -->"
END = "<!-- timings-table:end -->"
RECORD_ENV = "FTKIT_TIMINGS"


def machine() -> dict:
    """Where it was measured (light: no torch import, so it also runs before `make setup`)."""
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "cpu": platform.processor() or platform.machine()}


def record(step: str, seconds: float, detail: str = "", path: str | Path | None = None) -> bool:
    """Append one measurement to the record file (FTKIT_TIMINGS unless `path`); False when none is named."""
    path = path or os.environ.get(RECORD_ENV)
    if not path:
        return False
    append_record(path, {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                         "machine": machine(), "step": step, "seconds": round(seconds, 1), "detail": detail},
                  "the project's own steps, timed where they ran (python -m ftkit.timings, make test); docs/development.md's time "
                  "table is made from these (make docs)")
    return True


def duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else (f"{seconds:.1f} s" if seconds < 10 else f"{rest} s")


EARLIER_SHOWN = 2  # earlier runs of a step shown beside its latest: a time measured once may be luck


def render_table(runs: list[dict]) -> str:
    """The latest measurement of each step, in the order the steps were first recorded, with the times of the
    step's runs just before it (newest first)."""
    if not runs:
        return "No time recorded yet: run a step under `python -m ftkit.timings run`, then `make docs`."
    by_step: dict[str, list[dict]] = {}
    for run in runs:
        by_step.setdefault(run["step"], []).append(run)
    lines = ["| step | time | measured | the runs before |", "|---|---|---|---|"]
    for step, its_runs in by_step.items():
        run = its_runs[-1]
        detail = f" ({run['detail']})" if run.get("detail") else ""
        earlier = ", ".join(duration(r["seconds"]) for r in reversed(its_runs[-1 - EARLIER_SHOWN:-1]))
        lines.append(f"| {step}{detail} | {duration(run['seconds'])} | {run['date'][:10]}, {run['machine']['cpu_count']} "
                     f"CPUs | {earlier} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 4 or argv[0] != "run" or argv[2] != "--":
        print('usage: python -m ftkit.timings run "STEP" -- COMMAND [ARGS...]   (records when FTKIT_TIMINGS is set)',
              file=sys.stderr)
        return 2
    step, command = argv[1], argv[3:]
    started = time.perf_counter()
    code = subprocess.call(command)
    seconds = time.perf_counter() - started
    print(f"timings: {step} took {duration(seconds)}" + (" (failed)" if code else ""), flush=True)
    if code == 0 and record(step, seconds):
        print(f"timings: recorded in {os.environ[RECORD_ENV]}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
