"""Fault injection for the interruption tests: a real `kill -9` at a chosen point of a stage.

Set FTKIT_FAULT="<point>:<n>" (e.g. "train.step:6") and the process SIGKILLs itself when it reaches
that point for the n-th time — no cleanup, no atexit, exactly like a power cut or the OOM killer.
Unset (always, outside the tests), this does nothing.
"""
from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def reached(point: str) -> None:
    spec = os.environ.get("FTKIT_FAULT")
    if not spec:
        return
    where, _, times = spec.rpartition(":")
    if where != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] == int(times):
        os.kill(os.getpid(), signal.SIGKILL)
