"""The evidence a finished run left on disk, read once for every check: its files, digests and re-measurements.

Each item reads its own evidence and says PASS, FAIL, WARN (a person should look) or SKIP (its
evidence depends on an item that failed), with the evidence (numbers, files) and, when it is not a
PASS, what to do. Cross-checks make a faked run fail: metrics against the raw training log, the
adapter against the digest the training run recorded, the evaluated test file against the hash the
data stage recorded, the Modelfile against the renderer.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ftkit.config import defaults
from ftkit.core.artifacts import Paths
from ftkit.core.io import sha256_file
from ftkit.stages.data.prepare import MIN_TRAIN_RECORDS

VALIDATION_SAMPLE = 32  # records of the validation split re-measured by acceptance
# a folder where re-measurements are kept by the digests of every file they read, and reused while those digests
# hold (the test suite sets it: its tamper tests change one file each and re-check every item). Unset, every check
# measures again.
REUSE_ENV = "FTKIT_REUSE_MEASUREMENTS"
DEFAULT_MIN_TOKENS_PER_SECOND = defaults.MIN_TOKENS_PER_SEC
SECTIONS = {"data": "数据准备 Data", "train": "模型训练 Training", "eval": "模型评估 Evaluation",
            "deploy": "模型部署 Deployment", "docs": "文档记录 Documentation"}


@dataclass
class Thresholds:
    min_records: int = MIN_TRAIN_RECORDS
    min_tokens_per_second: float = DEFAULT_MIN_TOKENS_PER_SECOND

    @property
    def overridden(self) -> list[str]:
        notes = []
        if self.min_records != MIN_TRAIN_RECORDS:
            notes.append(f"MIN_RECORDS={self.min_records} (the checklist asks for {MIN_TRAIN_RECORDS})")
        if self.min_tokens_per_second != DEFAULT_MIN_TOKENS_PER_SECOND:
            notes.append(f"MIN_TOKENS_PER_SEC={self.min_tokens_per_second:g} (default {DEFAULT_MIN_TOKENS_PER_SECOND:g})")
        return notes


@dataclass
class Item:
    section: str
    key: str
    title: str
    status: str = "PASS"
    evidence: str = ""
    fix: str = ""
    details: dict = field(default_factory=dict)


def _files_under(*paths: Path) -> list[Path]:
    """Every file at or under `paths`, each once (a Modelfile's GGUF lies in the folder named beside it)."""
    return sorted({f.resolve() for p in paths for f in ([p] if p.is_file() else p.rglob("*") if p.is_dir() else [])
                   if f.is_file()})


def measured_once(kind: str, reads: list[Path], settings: dict, measure: Callable[[], dict]) -> dict:
    """measure(), or its result kept under REUSE_ENV by a key of `kind`, `settings` and the digest of every file
    under `reads` (marked "reused": True): a file that changed measures again. Without REUSE_ENV, always measure()."""
    folder = os.environ.get(REUSE_ENV)
    if not folder:
        return measure()
    from ftkit.core.io import write_json_atomic

    key = hashlib.sha256(json.dumps([kind, [(str(f), sha256_file(f)) for f in _files_under(*reads)], settings],
                                    sort_keys=True, default=str).encode()).hexdigest()[:32]
    kept = Path(folder) / f"{kind}-{key}.json"
    if kept.is_file():
        return {**json.loads(kept.read_text(encoding="utf-8")), "reused": True}
    result = measure()
    write_json_atomic(kept, result)
    return result


class Fail(Exception):
    def __init__(self, evidence: str, fix: str = "", status: str = "FAIL"):
        super().__init__(evidence)
        self.evidence, self.fix, self.status = evidence, fix, status


def read_json(path: Path, fix: str) -> dict:
    if not path.is_file():
        raise Fail(f"{path} is missing", fix)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise Fail(f"{path} is not valid JSON ({err.msg})", fix) from None


def read_jsonl(path: Path, fix: str) -> list[dict]:
    if not path.is_file():
        raise Fail(f"{path} is missing", fix)
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise Fail(f"{path}:{n} is not valid JSON", fix) from None
    return rows


class Run:
    """A finished run's evidence, each piece loaded lazily and once, for every check of the checklist."""

    def __init__(self, paths: Paths, thresholds: Thresholds, n_gpu_layers: int = 0):
        self.paths, self.thresholds = paths, thresholds
        self.n_gpu_layers = n_gpu_layers  # for every llama.cpp load: the speed is measured where the model will run
        self.gguf_loaded: bool | None = None  # set by deploy.loads; the checks that need a loaded GGUF skip without

    def manifest(self) -> dict:
        return read_json(Path(self.paths.model_dir) / "run_manifest.json", "run `make train`")

    def log(self) -> list[dict]:
        return read_jsonl(Path(self.paths.model_dir) / "train_log.jsonl", "run `make train`")

    def summary(self) -> dict:
        return read_json(self.paths.summary, "run `make eval`")

    def general(self) -> dict:
        return read_json(self.paths.general, "run `make eval-general`")

    def modelfile_target(self) -> Path:
        modelfile = Path(self.paths.gguf_dir) / "Modelfile"
        if not modelfile.is_file():
            raise Fail(f"{modelfile} is missing", "run `make gguf`")
        for line in modelfile.read_text(encoding="utf-8").splitlines():
            if line.startswith("FROM "):
                return (modelfile.parent / line[5:].strip()).resolve()
        raise Fail(f"{modelfile} has no FROM line", "run `make gguf`")

    def family(self):
        """The chat family of the merged model (the training run's --family, if one was given)."""
        from ftkit.core import families
        from ftkit.core.loading import load_tokenizer

        if getattr(self, "_tokenizer", None) is None:
            manifest = Path(self.paths.model_dir) / "run_manifest.json"
            chosen = json.loads(manifest.read_text()).get("arguments", {}).get("family") if manifest.is_file() else None
            self._tokenizer = load_tokenizer(str(Path(self.paths.model_dir) / "merged_model"))
            families.bind(self._tokenizer, chosen)
        return self._tokenizer, families.family_of(self._tokenizer)

    def sha256(self, path: Path) -> str | None:
        """A file's sha256, once per file per check (a GGUF is linked from two places)."""
        cache = self.__dict__.setdefault("_digests", {})
        key = path.resolve()
        if key not in cache:
            cache[key] = sha256_file(path) if path.is_file() else None
        return cache[key]
