"""Data stage: raw Q&A files -> clean, deduplicated, leakage-free train/validation/test JSONL.

Every input record ends in exactly one place: a split, the rejected list (with its reason), or the
duplicate count (also listed in the rejected file, pointing at the first occurrence), so
`kept + rejected + duplicates == input` always holds. Records stream through in chunks; what stays in
memory is the dedup index and a byte per kept record for the split, so a million records fit easily.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import logging
import random
import re
import tempfile
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ftkit.config import defaults
from ftkit.core import prompts
from ftkit.core.io import atomic_path, raise_with_path, sha256_file, write_json_atomic
from ftkit.core.readers import InputError, RawRecord, read_records

log = logging.getLogger(__name__)

FORMAT_TYPES = ("auto", "alpaca", "sharegpt", "messages")
SPLITS = ("train", "validation", "test")
# the checklist's "at least 100 training records", one rule for the data stage (a warning) and acceptance (a
# failure): counted in the train split, after validation, dedup and the split
MIN_TRAIN_RECORDS = defaults.MIN_RECORDS


def too_few_training_records(train_records: int, minimum: int = MIN_TRAIN_RECORDS) -> str | None:
    """What is wrong when the train split holds fewer than `minimum` records, else None."""
    if train_records < minimum:
        return f"{train_records} training records < {minimum}"
    return None
_CHUNK = 2048
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "model": "assistant", "chatgpt": "assistant", "system": "system"}
# no token covers more characters than this: a text longer than max_length times it cannot fit, and is
# rejected by its length without tokenizing (a 100 MB answer must not exhaust memory in the tokenizer)
MAX_CHARS_PER_TOKEN = 16
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # C0 controls and DEL, except \t \n \r


@dataclass
class PrepareConfig:
    inputs: list[str]
    output_dir: str = "data/finetune"
    output_name: str = "train"
    input_format: str = "auto"
    format_type: str = "auto"
    encoding: str = "auto"
    columns: dict[str, str] = field(default_factory=dict)  # canonical name -> name in the file
    val_ratio: float = 0.1
    test_ratio: float = 0.1
    seed: int = 42
    max_length: int = 1024
    tokenizer: str | None = None  # a model folder or Hub id; None: token lengths are not checked
    family: str | None = None     # chat format family; None: detected from the tokenizer
    thinking: str = "off"         # off: reasoning traces are dropped (counted); on/mixed: kept for training

    @property
    def keeps_reasoning(self) -> bool:
        return self.thinking != "off"


class Rejected(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def parse_columns(spec: str | None) -> dict[str, str]:
    """'instruction=question,output=answer' -> {'instruction': 'question', 'output': 'answer'}."""
    mapping = {}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        canonical, sep, source = part.partition("=")
        if not sep or not canonical.strip() or not source.strip():
            raise ValueError(f"--columns: {part!r} is not NAME=COLUMN")
        mapping[canonical.strip()] = source.strip()
    return mapping


# --- one record: raw dict -> conversation ---------------------------------------------------------

def _apply_columns(data: dict, columns: dict[str, str]) -> dict:
    if not columns:
        return data
    renamed = {k: v for k, v in data.items() if k not in columns.values()}
    for canonical, source in columns.items():
        if source in data:
            renamed[canonical] = data[source]
    return renamed


# words that name each alpaca field in the layouts people bring (zh_instruction, question, 问题, ...)
_FIELD_WORDS = {"instruction": ("instruction", "question", "prompt", "query", "问题", "指令", "提问"),
                "input": ("input", "context", "输入", "上下文"),
                "output": ("output", "answer", "response", "completion", "回答", "答案", "输出")}


def column_hint(fields: Counter) -> str:
    """For records in no known layout: the field names seen and a --columns mapping to try."""
    if not fields:
        return ""
    seen = [name for name, _ in fields.most_common(12)]
    mapping = {}
    for canonical, words in _FIELD_WORDS.items():
        match = next((name for name in seen if name not in mapping.values()
                      and any(word in name.lower() for word in words)), None)
        if match:
            mapping[canonical] = match
    text = f"; the records' fields are: {', '.join(seen)}"
    if "instruction" in mapping and "output" in mapping:
        spec = ",".join(f"{k}={v}" for k, v in mapping.items())
        text += f". Map them to instruction/input/output with --columns {spec} (make data COLUMNS={spec})"
    else:
        text += ". Name which is the question and which the answer with --columns instruction=FIELD,output=FIELD"
    return text


def _detect_type(data: dict, requested: str) -> str:
    if requested != "auto":
        return requested
    for key, kind in (("conversations", "sharegpt"), ("messages", "messages"), ("instruction", "alpaca"),
                      ("output", "alpaca")):
        if key in data:
            return kind
    raise Rejected("unknown_format", "no instruction, conversations or messages field")


def _sharegpt_messages(data: dict) -> list[dict]:
    turns = data.get("conversations")
    if not isinstance(turns, list):
        raise Rejected("missing_field" if turns is None else "not_string", "conversations must be a list")
    messages = []
    if isinstance(data.get("system"), str) and data["system"].strip():
        messages.append({"role": "system", "content": data["system"]})
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise Rejected("bad_role_order", f"conversations[{i}] is not an object")
        role = _SHAREGPT_ROLES.get(str(turn.get("from", "")).lower())
        if role is None:
            raise Rejected("unknown_role", f"conversations[{i}]: unknown speaker {turn.get('from')!r}")
        messages.append({"role": role, "content": turn.get("value"),
                         **{k: turn[k] for k in prompts.REASONING_FIELDS if k in turn}})
    return messages


class Parsed(NamedTuple):
    conv: prompts.Conversation  # the final answer's trace in conv.turns[-1].reasoning
    instruction: str  # alpaca view of the final turn, kept in the output for people and the checklist
    input: str
    category: str | int | None


def to_conversation(data: object, format_type: str, columns: dict[str, str]) -> Parsed:
    """Validate one raw record and return its conversation; raises Rejected with a reason code."""
    if not isinstance(data, dict):
        raise Rejected("not_an_object", f"expected an object, got {type(data).__name__}")
    if "__row__" in data:
        raise Rejected("malformed_row", f"{len(data['__row__'])} fields where the header has {len(data['__header__'])}")
    data = _apply_columns(data, columns)
    kind = _detect_type(data, format_type)
    try:
        if kind == "alpaca":
            if "instruction" not in data:
                raise Rejected("missing_field", "instruction is missing")
            if data.get("output") is None:
                raise Rejected("missing_field", "output is missing")
            conv = prompts.from_alpaca(data)
        elif kind == "sharegpt":
            conv = prompts.from_messages(_sharegpt_messages(data))
        else:
            conv = prompts.from_messages(data.get("messages"))
    except prompts.PromptError as err:
        raise Rejected(err.reason, str(err)) from None
    if conv.is_open:
        raise Rejected("missing_field", "the conversation ends without an assistant answer")
    _check_control_characters(conv)
    if kind == "alpaca":
        instruction, extra = data["instruction"].strip(), (data.get("input") or "").strip()
    else:
        instruction, extra = conv.turns[-1].user, ""
    category = data.get("category")
    return Parsed(conv, instruction, extra, category if isinstance(category, str | int) else None)


def _check_control_characters(conv: prompts.Conversation) -> None:
    texts = [conv.system or ""] + [t.user + "\n" + (t.answer or "") for t in conv.turns]
    if not _CONTROL.search("\n".join(texts)):  # the common case: one regex pass, no per-field work
        return
    for i, text in enumerate(texts):
        if m := _CONTROL.search(text):
            where = "system" if i == 0 else f"turn {i}"
            raise Rejected("control_characters", f"{where} holds control character U+{ord(m.group()):04X}")


# --- dedup ---------------------------------------------------------------------------------------

def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


@functools.cache
def _drop_table() -> dict[int, None]:
    """str.translate table deleting whitespace and punctuation (BMP, where all of it lives)."""
    return {cp: None for cp in range(0x10000)
            if chr(cp).isspace() or unicodedata.category(chr(cp)).startswith("P")}


def normalise(text: str) -> str:
    """Full-width -> half-width (NFKC), case folded, whitespace and punctuation removed."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_drop_table())


def question_key(conv: prompts.Conversation) -> str:
    """What makes two records 'the same question': system prompt and every user turn (answers ignored,
    so one question with two answers cannot sit in train and test at once)."""
    return "\x1f".join([conv.system or ""] + [turn.user for turn in conv.turns])


class DedupIndex:
    """Normalised-question hash -> (exact-question hash, id of the first record)."""

    def __init__(self):
        self._seen: dict[int, tuple[int, int]] = {}

    def check(self, key: str, record_id: int) -> tuple[str | None, int, int]:
        """(None, id, digest) for a new question, else ('exact'|'normalised', id of the first, digest)."""
        norm, exact = _digest(normalise(key)), _digest(key)
        first = self._seen.get(norm)
        if first is None:
            self._seen[norm] = (exact, record_id)
            return None, record_id, norm
        return ("exact" if first[0] == exact else "normalised"), first[1], norm


# --- token lengths -------------------------------------------------------------------------------

class LengthMeter:
    """Token lengths of prompt and whole conversation, batched through the fast tokenizer.

    `encode` only calls the Rust tokenizer, which releases the GIL, so it can run in a worker thread
    while the main thread parses the next chunk.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        # the Rust tokenizer directly: transformers' per-encoding wrapping costs more than the encoding
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self.batched = backend is not None and prompts.uses_llama2_format(tokenizer)
        self.backend = backend if self.batched else None

    def encode(self, texts: list[str]):
        return self.backend.encode_batch(texts, add_special_tokens=False) if self.batched else None

    def lengths(self, convs: list[prompts.Conversation], texts: list[str], encodings) -> list[tuple[int, int]]:
        """(prompt tokens, total tokens) per conversation, from `encode` of their rendered `texts`."""
        if self.tokenizer is None:
            return [(0, 0)] * len(convs)
        if not self.batched:  # a model's own chat template: exact ids, one by one
            return [self._render_lengths(c) for c in convs]
        # <s> and </s> in the text are special tokens: the same count as the renderer's ids
        asked = [prompts.llama2_prompt_chars(c, text) for c, text in zip(convs, texts, strict=True)]
        return [(self._prompt_tokens(enc, end), len(enc)) for enc, end in zip(encodings, asked, strict=True)]

    def _render_lengths(self, conv: prompts.Conversation) -> tuple[int, int] | prompts.PromptError:
        """(prompt tokens, total tokens), or the reason a record cannot be split into prompt and answer."""
        try:
            ids = prompts.render_ids(conv, self.tokenizer)
        except prompts.PromptError as err:
            return err
        return len(ids.prompt_ids), len(ids.input_ids)

    @staticmethod
    def _prompt_tokens(encoding, prompt_chars: int) -> int:
        """Tokens before the answer: the answer starts with the space after [/INST] (or the next char)."""
        for pos in (prompt_chars, prompt_chars + 1):
            token = encoding.char_to_token(pos)
            if token is not None:
                return token
        return len(encoding)


def percentiles(histogram: Counter, points=(50, 90, 95, 99, 100)) -> dict[str, int]:
    total = sum(histogram.values())
    if not total:
        return {}
    result, seen, ordered = {}, 0, sorted(histogram.items())
    targets = iter((p, max(1, -(-total * p // 100))) for p in points)
    p, need = next(targets)
    for value, count in ordered:
        seen += count
        while seen >= need:
            result["max" if p == 100 else f"p{p}"] = value
            try:
                p, need = next(targets)
            except StopIteration:
                return result
    return result


# --- split ---------------------------------------------------------------------------------------

def allocate(counts: dict[int, int], ratio: float, total_target: int) -> dict[int, int]:
    """Spread `total_target` picks over categories in proportion to their size (largest remainder)."""
    total = sum(counts.values())
    exact = {c: n * total_target / total if total else 0 for c, n in counts.items()}
    picks = {c: int(x) for c, x in exact.items()}
    for c in sorted(exact, key=lambda c: (picks[c] - exact[c], c))[: total_target - sum(picks.values())]:
        picks[c] += 1
    return picks


def assign_splits(categories: array, val_ratio: float, test_ratio: float, seed: int) -> bytearray:
    """Split label (0 train, 1 validation, 2 test) per kept record, stratified by category."""
    n = len(categories)
    n_test, n_val = round(n * test_ratio), round(n * val_ratio)
    if n >= 3:  # each split non-empty when there are at least 3 records
        n_test = max(1, n_test) if test_ratio > 0 else 0
        n_val = max(1, n_val) if val_ratio > 0 else 0
    n_test = min(n_test, max(0, n - 1))
    n_val = min(n_val, max(0, n - 1 - n_test))
    members: dict[int, list[int]] = {}
    for i, c in enumerate(categories):
        members.setdefault(c, []).append(i)
    rng = random.Random(seed)
    for c in sorted(members):
        rng.shuffle(members[c])
    sizes = {c: len(m) for c, m in members.items()}
    test_picks = allocate(sizes, test_ratio, n_test)
    val_picks = allocate({c: sizes[c] - test_picks[c] for c in sizes}, val_ratio, n_val)
    labels = bytearray(n)
    for c, idx in members.items():
        for i in idx[: test_picks[c]]:
            labels[i] = 2
        for i in idx[test_picks[c]: test_picks[c] + val_picks[c]]:
            labels[i] = 1
    return labels


# --- the stage -----------------------------------------------------------------------------------

@dataclass
class Summary:
    input_records: int = 0
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    # kept records with and without a reasoning trace, and traces dropped because the run does not think
    reasoning: Counter = field(default_factory=Counter)
    duplicates: Counter = field(default_factory=Counter)
    splits: dict = field(default_factory=dict)
    split_categories: dict = field(default_factory=dict)
    prompt_tokens: Counter = field(default_factory=Counter)
    total_tokens: Counter = field(default_factory=Counter)


def _output_record(parsed: Parsed, raw: RawRecord, record_id: str, text: str) -> dict:
    conv = parsed.conv
    record = {"id": record_id}
    if parsed.category is not None:
        record["category"] = parsed.category
    record.update({
        "system": conv.system, "instruction": parsed.instruction, "input": parsed.input,
        "output": conv.turns[-1].answer, "reasoning": conv.turns[-1].reasoning, "messages": conv.to_messages(),
        "text": text, "source": f"{raw.source}:{raw.line}",
    })
    return record


def _clip(value, limit: int = 2000):
    """The record as kept in the rejected file: huge strings shortened, so rejecting costs no disk."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"…[{len(value):,} characters in all]"
    if isinstance(value, dict):
        return {k: _clip(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip(v, limit) for v in value]
    return value


def _rejection(raw: RawRecord, reason: str, detail: str) -> dict:
    return {"source": raw.source, "line": raw.line, "index": raw.index, "reason": reason, "detail": detail,
            "record": _clip(raw.data)}


def _chunks(records: Iterable[RawRecord], size: int) -> Iterator[list[RawRecord]]:
    chunk = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _all_records(config: PrepareConfig) -> Iterator[RawRecord]:
    for path in config.inputs:
        yield from read_records(path, config.input_format, config.encoding)


def load_tokenizer(name: str | None, family: str | None = None, thinking: str = "off"):
    """The tokenizer that measures lengths (loading's, bound to its family and thinking mode), errors as the
    data stage's."""
    from ftkit.core import families
    from ftkit.core.cli import UserError, check_model_source

    if not name:  # no tokenizer: the mode is checked against --family, if given
        if thinking not in families.THINKING_MODES:
            raise InputError(f"--thinking {thinking}: choose {', '.join(families.THINKING_MODES)}")
        try:
            if family:
                families.get(family).with_thinking(thinking)
        except UserError as err:
            raise InputError(str(err)) from None
        return None
    from ftkit.core import loading

    try:
        check_model_source(name, "tokenizer")
    except UserError as err:
        raise InputError(f"--tokenizer {err}") from None
    try:
        return loading.load_tokenizer(name, family=family, thinking=thinking)
    except UserError as err:
        raise InputError(f"--tokenizer {name}: {err}") from None


@dataclass
class _Chunk:
    start: int  # how many input records came before this chunk
    candidates: list[tuple[int, RawRecord, Parsed]] = field(default_factory=list)  # (position, ...)
    texts: list[str] = field(default_factory=list)
    rejections: list[tuple[int, dict]] = field(default_factory=list)  # (position, rejection)
    encodings: object = None


class _Stage:
    """The per-record work of `prepare`, chunk by chunk, accumulating the summary."""

    def __init__(self, config: PrepareConfig, tokenizer, kept_file, rejected_file):
        self.config, self.tokenizer = config, tokenizer
        self.meter = LengthMeter(tokenizer)
        self.kept_file, self.rejected_file = kept_file, rejected_file
        self.summary = Summary()
        self.dedup = DedupIndex()
        self.category_ids: dict[object, int] = {}
        self.categories = array("H")  # category id per kept record, for the stratified split
        self.unknown_fields: Counter = Counter()  # field names of records in no known layout, for the hint

    def parse(self, records: list[RawRecord]) -> _Chunk:
        chunk = _Chunk(start=self.summary.input_records)
        self.summary.input_records += len(records)
        for position, raw in enumerate(records):
            try:
                parsed = to_conversation(raw.data, self.config.format_type, self.config.columns)
            except Rejected as err:
                self.reject(chunk, position, raw, err.reason, err.detail)
                if err.reason == "unknown_format" and isinstance(raw.data, dict):
                    self.unknown_fields.update(str(k) for k in raw.data)
                continue
            if parsed.conv.has_reasoning and not self.config.keeps_reasoning:
                self.summary.reasoning["traces_dropped"] += 1  # THINKING=off trains the answers alone
                parsed = parsed._replace(conv=parsed.conv.without_reasoning())
            try:
                text = prompts.render_text(parsed.conv, self.tokenizer)
            except prompts.PromptError as err:
                self.reject(chunk, position, raw, err.reason, str(err))
                continue
            if len(text) > self.config.max_length * MAX_CHARS_PER_TOKEN:
                self.reject(chunk, position, raw, "too_long",
                            f"{len(text):,} characters: far over --max-length {self.config.max_length} tokens")
                continue
            chunk.candidates.append((position, raw, parsed))
            chunk.texts.append(text)
        return chunk

    def reject(self, chunk: _Chunk, position: int, raw: RawRecord, reason: str, detail: str) -> None:
        self.summary.rejected[reason] += 1
        chunk.rejections.append((position, _rejection(raw, reason, detail)))

    def finish(self, chunk: _Chunk) -> None:
        convs = [parsed.conv for _, _, parsed in chunk.candidates]
        lengths = self.meter.lengths(convs, chunk.texts, chunk.encodings)
        for (position, raw, parsed), text, measured in zip(chunk.candidates, chunk.texts, lengths, strict=True):
            if isinstance(measured, prompts.PromptError):  # the template renders it, but not as prompt + answer
                self.reject(chunk, position, raw, measured.reason, str(measured))
                continue
            prompt_len, total_len = measured
            if self.tokenizer is not None and total_len > self.config.max_length:
                self.reject(chunk, position, raw, "too_long",
                            f"{total_len} tokens (prompt {prompt_len}) > --max-length {self.config.max_length}")
                continue
            kind, first, digest = self.dedup.check(question_key(parsed.conv), chunk.start + position + 1)
            if kind:
                self.summary.duplicates[kind] += 1
                detail = f"same question as input record #{first} (counting from 1 across all inputs)"
                chunk.rejections.append((position, _rejection(raw, f"duplicate_{kind}", detail)))
                continue
            self.categories.append(self.category_ids.setdefault(parsed.category, len(self.category_ids)))
            self.summary.reasoning["with_reasoning" if parsed.conv.turns[-1].reasoning else "without_reasoning"] += 1
            self.summary.prompt_tokens[prompt_len] += 1
            self.summary.total_tokens[total_len] += 1
            self.kept_file.write(json.dumps(_output_record(parsed, raw, f"{digest:016x}", text), ensure_ascii=False) + "\n")
            self.summary.kept += 1
        for _, rejection in sorted(chunk.rejections, key=lambda item: item[0]):
            self.rejected_file.write(json.dumps(rejection, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def _gc_paused():
    """The cyclic GC re-scans the growing dedup index on every collection (a third of the run time at a
    million records); the per-record work makes no reference cycles, so pause it for the loop."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def prepare(config: PrepareConfig, progress=None) -> Summary:
    """Run the data stage. Raises InputError (nothing written) when input is unreadable or nothing is kept."""
    from ftkit.core.lock import output_lock

    with output_lock(config.output_dir, "data"), _gc_paused():
        return _prepare(config, progress)


def _prepare(config: PrepareConfig, progress) -> Summary:
    try:
        return _prepare_into(config, progress)
    except OSError as err:
        raise_with_path(err, config.output_dir)
        raise


def _prepare_into(config: PrepareConfig, progress) -> Summary:
    tokenizer = load_tokenizer(config.tokenizer, config.family, config.thinking)
    out_dir = Path(config.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = config.output_name

    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=out_dir) as work:
        kept_path, rejected_tmp = Path(work) / "kept.jsonl", Path(work) / "rejected.jsonl"
        with open(kept_path, "w", encoding="utf-8") as kept, open(rejected_tmp, "w", encoding="utf-8") as rejected, \
                ThreadPoolExecutor(max_workers=1) as tokenizer_thread:
            stage = _Stage(config, tokenizer, kept, rejected)
            pending = None  # chunk k is tokenized in the thread while chunk k+1 is parsed here
            for records in _chunks(_all_records(config), _CHUNK):
                chunk = stage.parse(records)
                future = tokenizer_thread.submit(stage.meter.encode, chunk.texts)
                if pending:
                    pending[0].encodings = pending[1].result()
                    stage.finish(pending[0])
                pending = (chunk, future)
                if progress:
                    progress(len(records))
            if pending:
                pending[0].encodings = pending[1].result()
                stage.finish(pending[0])
        summary = stage.summary
        if summary.kept == 0:
            raise InputError(f"{', '.join(config.inputs)}: no valid record remains "
                             f"(rejected: {dict(summary.rejected) or 'none'}, duplicates: {sum(summary.duplicates.values())})"
                             f"{column_hint(stage.unknown_fields)}")
        labels = assign_splits(stage.categories, config.val_ratio, config.test_ratio, config.seed)
        category_names = {v: k for k, v in stage.category_ids.items()}
        _write_splits(kept_path, labels, out_dir, name, summary, category_names, stage.categories)
        with atomic_path(out_dir / f"{name}_rejected.jsonl") as tmp:
            Path(rejected_tmp).replace(tmp)
    stats = stats_document(config, summary, tokenizer)
    # what later stages (evaluation, acceptance) check the splits against
    stats["outputs"] = {split: {"path": str(out_dir / f"{name}_{split}.jsonl"), "records": summary.splits[split],
                                "sha256": sha256_file(out_dir / f"{name}_{split}.jsonl")} for split in SPLITS}
    write_json_atomic(out_dir / f"{name}_stats.json", stats)
    return summary


def _write_splits(kept_path: Path, labels: bytearray, out_dir: Path, name: str, summary: Summary,
                  category_names: dict, categories: array) -> None:
    counts = {split: Counter() for split in SPLITS}
    with contextlib.ExitStack() as stack:  # all three files appear together, or none does
        handles = {}
        for split in SPLITS:
            tmp = stack.enter_context(atomic_path(out_dir / f"{name}_{split}.jsonl"))
            handles[split] = stack.enter_context(open(tmp, "w", encoding="utf-8"))
        with open(kept_path, encoding="utf-8") as kept:
            for i, line in enumerate(kept):
                split = SPLITS[labels[i]]
                handles[split].write(line)
                counts[split][category_names[categories[i]]] += 1
    summary.splits = {split: sum(c.values()) for split, c in counts.items()}
    if set(category_names.values()) != {None}:
        summary.split_categories = {split: {str(k): v for k, v in sorted(c.items(), key=str)} for split, c in counts.items()}


def stats_document(config: PrepareConfig, summary: Summary, tokenizer) -> dict:
    return {
        "inputs": [{"path": p, "sha256": sha256_file(p)} for p in config.inputs],
        "output_name": config.output_name,
        "counts": {
            "input": summary.input_records,
            "kept": summary.kept,
            "rejected": sum(summary.rejected.values()),
            "duplicates": sum(summary.duplicates.values()),
        },
        "splits": summary.splits,
        "split_categories": summary.split_categories,
        "rejected_by_reason": dict(sorted(summary.rejected.items())),
        # the run's thinking mode and the kept records' traces (THINKING=off drops them, counted here)
        "reasoning": {"thinking": config.thinking, "with_reasoning": summary.reasoning["with_reasoning"],
                      "without_reasoning": summary.reasoning["without_reasoning"],
                      "traces_dropped": summary.reasoning["traces_dropped"]},
        "duplicates_by_kind": dict(sorted(summary.duplicates.items())),
        "token_lengths": {
            "tokenizer": config.tokenizer,
            "max_length": config.max_length if tokenizer is not None else None,
            "prompt": percentiles(summary.prompt_tokens) if tokenizer is not None else {},
            "total": percentiles(summary.total_tokens) if tokenizer is not None else {},
        },
        "settings": {"val_ratio": config.val_ratio, "test_ratio": config.test_ratio, "seed": config.seed,
                     "format_type": config.format_type, "input_format": config.input_format,
                     "encoding": config.encoding, "columns": config.columns, "thinking": config.thinking},
    }
