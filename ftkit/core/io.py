"""Small file helpers shared by every stage: atomic writes, so no stage ever sees half an output."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = ""):
    """Yield a temporary file path beside `target`; on success rename it over `target`.

    On an exception the temporary file is removed and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result is an ordinary file
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise_with_path(err, target)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike):
    """Yield a temporary directory beside `target`; on success it replaces `target` whole.

    A crash leaves either the old directory or the new one, never a mix; the temporary directory
    starts with '.' and is removed on failure.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the result is an ordinary folder
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old.{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise_with_path(err, target)
        raise


def raise_with_path(err: BaseException, path: Path | str) -> None:
    """A write error (full disk: EFBIG, ENOSPC) carries no file name; give it the output's."""
    if isinstance(err, OSError) and not err.filename:
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err


def _remove_stale(target: Path) -> None:
    """Temporaries a killed run left beside `target` (the stage's lock says no one else is writing)."""
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_records(path: str | os.PathLike) -> list[dict]:
    """The runs of a record file (docs/*.json: {"about": ..., "runs": [...]}); none when it does not exist."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8"))["runs"] if path.is_file() else []


def append_record(path: str | os.PathLike, run: dict, about: str) -> list[dict]:
    """Add one run to a record file (atomically); returns every run it holds now."""
    runs = load_records(path) + [run]
    write_json_atomic(path, {"about": about, "runs": runs})
    return runs


def files_digest(folder: str | os.PathLike, names: list[str]) -> str:
    """One sha256 over the named files of a folder (name and content): a model's identity."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode())
        digest.update(sha256_file(Path(folder) / name).encode())
    return digest.hexdigest()


def read_json(path: str | os.PathLike, fix: str) -> dict:
    """A JSON file a stage needs; a clear error (with the command that makes it) when missing or broken."""
    from ftkit.core.cli import UserError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} is missing: {fix}") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path}:{err.lineno}: not valid JSON ({err.msg}): {fix}") from None
