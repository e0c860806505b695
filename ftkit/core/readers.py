"""Streaming readers for raw Q&A files: JSON arrays, JSONL, CSV and TSV, in UTF-8 (with or without BOM)
or GBK/GB18030.

Each reader yields `RawRecord`s that remember where they came from (file, line, index), so every kept
or rejected record can be traced back. A file that cannot be parsed raises `InputError` naming the
file and line; nothing is ever decoded into mojibake.
"""
from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

FORMATS = ("json", "jsonl", "csv", "tsv")
ENCODINGS = ("auto", "utf-8", "utf-8-sig", "gbk", "gb18030")
_EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv"}
_SNIFF_BYTES = 1 << 20
_CHUNK_CHARS = 1 << 20
_MAX_RECORD_CHARS = 64 << 20  # a single JSON record larger than this is taken as a broken file
_JSON_SPACE = re.compile(r"[ \t\n\r]*")

csv.field_size_limit(_MAX_RECORD_CHARS)  # long answers are for --max-length to judge; beyond this the file is broken


class InputError(Exception):
    """A file that cannot be read or parsed; the message names the file and line."""


class RawRecord(NamedTuple):
    source: str   # file path as given
    line: int     # 1-based line where the record starts
    index: int    # 0-based record number within the file
    data: object  # what the file holds: a dict for a well-formed record


def detect_format(path: str, requested: str = "auto") -> str:
    if requested != "auto":
        return requested
    fmt = _EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: cannot tell the format from the extension; pass --input-format "
                         f"({'|'.join(FORMATS)})")
    return fmt


def detect_encoding(path: str, requested: str = "auto") -> str:
    """UTF-8 (BOM or not) when the start of the file decodes as UTF-8, else GB18030 (a superset of GBK)."""
    if requested != "auto":
        return requested
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputError(f"{path}: UTF-16 is not supported; save the file as UTF-8")
    for encoding in ("utf-8", "gb18030"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(head, final=len(head) < _SNIFF_BYTES)
            return encoding
        except UnicodeDecodeError:
            continue
    raise InputError(f"{path}: not valid UTF-8 or GB18030 text; pass --encoding")


def _decoded_lines(path: str, encoding: str) -> Iterator[str]:
    """The file's lines, decoded one at a time so a decoding error names its exact line.

    Splitting the raw bytes at b"\n" is safe for UTF-8 and GBK/GB18030: neither uses 0x0A inside a
    multi-byte character.
    """
    try:
        f = open(path, "rb")
    except OSError as err:
        raise InputError(f"{path}: cannot open ({err.strerror})") from err
    with f:
        line_encoding = encoding
        for line_no, raw in enumerate(iter(lambda: f.readline(_MAX_RECORD_CHARS + 1), b""), start=1):
            if len(raw) > _MAX_RECORD_CHARS:
                raise InputError(f"{path}:{line_no}: line longer than {_MAX_RECORD_CHARS >> 20} MiB; the file is broken")
            try:
                yield raw.decode(line_encoding)
            except UnicodeDecodeError as err:
                raise InputError(f"{path}:{line_no}: not valid {encoding} ({err.reason} at byte {err.start + 1} "
                                 "of the line); pass the right --encoding") from None
            line_encoding = "utf-8" if encoding == "utf-8-sig" else encoding  # a BOM only starts the file


class _LineReader:
    """File-like `read(n)` over decoded lines, for the JSON array decoder."""

    def __init__(self, lines: Iterator[str]):
        self.lines = lines

    def read(self, size: int) -> str:
        parts, n = [], 0
        for line in self.lines:
            parts.append(line)
            n += len(line)
            if n >= size:
                break
        return "".join(parts)


def _read_jsonl(path: str, encoding: str) -> Iterator[RawRecord]:
    index = 0
    for line_no, line in enumerate(_decoded_lines(path, encoding), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{line_no}: invalid JSON ({err.msg} at column {err.colno})") from None
        yield RawRecord(path, line_no, index, data)
        index += 1


class _JsonArrayStream:
    """Decode a top-level JSON array one element at a time, with bounded memory and line numbers."""

    def __init__(self, path: str, f):
        self.path, self.f = path, f
        self.decoder = json.JSONDecoder()
        self.buf, self.pos, self.line, self.eof = "", 0, 1, False

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.f.read(_CHUNK_CHARS)
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0
        return True

    def _advance(self, end: int) -> None:
        self.line += self.buf.count("\n", self.pos, end)
        self.pos = end

    def _skip_space(self) -> str:
        """Skip whitespace; return the next character ('' at end of file)."""
        while True:
            self._advance(_JSON_SPACE.match(self.buf, self.pos).end())
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def _error(self, what: str, at: int | None = None) -> InputError:
        line = self.line + (self.buf.count("\n", self.pos, at) if at is not None else 0)
        return InputError(f"{self.path}:{line}: invalid JSON ({what})")

    def __iter__(self) -> Iterator[tuple[int, object]]:
        first = self._skip_space()
        if first != "[":
            hint = "; for one record per line use --input-format jsonl" if first == "{" else ""
            raise self._error(f"expected a JSON array of records{hint}")
        self._advance(self.pos + 1)
        if self._skip_space() == "]":
            return
        while True:
            start_line = self.line
            while True:
                try:
                    value, end = self.decoder.raw_decode(self.buf, self.pos)
                    break
                except json.JSONDecodeError as err:
                    if len(self.buf) - self.pos > _MAX_RECORD_CHARS or not self._more():
                        raise self._error(err.msg, err.pos) from None
            self._advance(end)
            yield start_line, value
            sep = self._skip_space()
            if sep == "]":
                return
            if sep != ",":
                raise self._error("expected ',' or ']' after a record" if sep else "the array is not closed")
            self._advance(self.pos + 1)
            self._skip_space()


def _read_json(path: str, encoding: str) -> Iterator[RawRecord]:
    stream = _JsonArrayStream(path, _LineReader(_decoded_lines(path, encoding)))
    for index, (line, value) in enumerate(stream):
        yield RawRecord(path, line, index, value)


def _read_csv(path: str, encoding: str, delimiter: str) -> Iterator[RawRecord]:
    kind = "TSV" if delimiter == "\t" else "CSV"
    reader = csv.reader(_decoded_lines(path, encoding), delimiter=delimiter)
    try:
        header = next(reader, None)
        if not header:
            raise InputError(f"{path}:1: no header row (the first row must name the columns)")
        header = [name.strip() for name in header]
        start = reader.line_num + 1
        for index, row in enumerate(reader):
            if any(cell.strip() for cell in row):
                data = dict(zip(header, row, strict=False))
                if len(row) != len(header):
                    data = {"__row__": row, "__header__": header}  # judged by the validator
                yield RawRecord(path, start, index, data)
            start = reader.line_num + 1
    except csv.Error as err:
        raise InputError(f"{path}:{reader.line_num}: malformed {kind} ({err})") from None


def read_records(path: str, input_format: str = "auto", encoding: str = "auto") -> Iterator[RawRecord]:
    """Yield the records of one file. Raises InputError for files that cannot be read or parsed."""
    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    fmt = detect_format(path, input_format)
    enc = detect_encoding(path, encoding)
    if fmt == "jsonl":
        return _read_jsonl(path, enc)
    if fmt == "json":
        return _read_json(path, enc)
    return _read_csv(path, enc, "\t" if fmt == "tsv" else ",")
