"""One run per output folder: a lock file naming its owner, refused while the owner lives.

Two runs writing into the same folder would interleave checkpoints and overwrite each other's
results. A run takes `<folder>/.ftkit.lock` (created exclusively, holding pid, host and command); a
second run is refused with the owner's pid. A lock whose process is gone (a crash, kill -9) is taken
over with a log line.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from ftkit.cli import UserError

log = logging.getLogger(__name__)
LOCK_NAME = ".ftkit.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, stage: str):
    """Hold the folder's lock for the duration of the block (only rank 0 of a distributed run locks)."""
    if int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) != 0:
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "stage": stage, "started": time.time(),
          "command": " ".join(sys.argv)}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _read(path)
            pid, host = owner.get("pid"), owner.get("host")
            if isinstance(pid, int) and host == me["host"] and _alive(pid) and pid != me["pid"]:
                raise UserError(f"{folder} is in use by another run ({owner.get('stage')}, pid {pid}: "
                                f"{owner.get('command', '?')}); wait for it to finish") from None
            if host not in (None, me["host"]):
                raise UserError(f"{folder} is locked by a run on host {host} (pid {pid}); if that run is over, "
                                f"delete {path}") from None
            log.warning("%s: taking over a stale lock of pid %s (that process is gone)", folder, pid)
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        break
    try:
        yield
    finally:
        if _read(path).get("pid") == me["pid"]:
            path.unlink(missing_ok=True)
