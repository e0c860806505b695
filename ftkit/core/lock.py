"""One run per output folder: an advisory lock held by the operating system, released when its owner dies.

Two runs writing into the same folder would interleave checkpoints and overwrite each other's
results. A run holds an exclusive `flock` on `<folder>/.ftkit.core.lock` and writes its pid, host and
command into it; a second run is refused with that owner's pid and command. The kernel drops the lock
when the process ends in any way (exit, crash, kill -9, a container stopped), so no guessing from
pids or host names is needed: a lock file nobody holds is simply taken.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from ftkit.core.cli import UserError

log = logging.getLogger(__name__)
LOCK_NAME = ".ftkit.core.lock"


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _acquire(path: Path) -> int | None:
    """An open descriptor holding the lock on `path`, or None when another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed the file as we locked it: lock the one now at that path


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, stage: str):
    """Hold the folder's lock for the duration of the block (only rank 0 of a distributed run locks)."""
    if int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) != 0:
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    left = _read(path)
    fd = _acquire(path)
    if fd is None:
        owner = _read(path)
        raise UserError(f"{folder} is in use by another run ({owner.get('stage')}, pid {owner.get('pid')} on "
                        f"{owner.get('host')}: {owner.get('command', '?')}); wait for it to finish")
    if left.get("pid"):
        log.info("%s: the lock file of pid %s is no longer held (that run ended); taking it", folder, left["pid"])
    me = {"pid": os.getpid(), "host": socket.gethostname(), "stage": stage, "started": time.time(),
          "command": " ".join(sys.argv)}
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(me).encode())
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # before unlocking, so a waiting run never locks a file about to vanish
        os.close(fd)
