"""The data items: enough records, well formed, split without overlap.

Each check is a function of the run's evidence: it returns the evidence of a PASS, or raises Fail (FAIL,
WARN or SKIP) with the evidence and what to do.
"""
from __future__ import annotations

from ftkit.acceptance.evidence import MIN_TRAIN_RECORDS, Fail, Run, read_json, read_jsonl
from ftkit.core.io import sha256_file
from ftkit.stages.data.prepare import too_few_training_records


def min_records(run: Run) -> str:
    train = read_jsonl(run.paths.split("train"), "run `make data`")
    note = " [threshold overridden]" if run.thresholds.min_records != MIN_TRAIN_RECORDS else ""
    shortfall = too_few_training_records(len(train), run.thresholds.min_records)
    if shortfall:
        raise Fail(f"{shortfall}{note} ({run.paths.split('train')})",
                   "add data: the guide recommends 100-500 high-quality Q&A pairs at least")
    return f"{len(train)} training records >= {run.thresholds.min_records}{note}"


def well_formed(run: Run) -> str:
    checked, bad = 0, []
    for split in ("train", "validation", "test"):
        path = run.paths.split(split)
        if not path.is_file():
            continue  # a missing split is the next item's finding
        for n, record in enumerate(read_jsonl(path, "run `make data`"), start=1):
            checked += 1
            ok = all(isinstance(record.get(k), str) and record[k].strip() for k in ("instruction", "output"))
            ok = ok and isinstance(record.get("input", ""), str) and record.get("messages", [{}])[-1].get("role") == "assistant"
            if not ok:
                bad.append(f"{path.name}:{n}")
    if bad:
        raise Fail(f"{len(bad)} malformed record(s), e.g. {', '.join(bad[:3])}", "re-run `make data` on the raw data")
    if not checked:
        raise Fail("no split files to check", "run `make data`")
    return f"{checked} records have instruction/input/output (and messages)"


def splits(run: Run) -> str:
    from ftkit.core.loading import conversation_of
    from ftkit.stages.data.prepare import normalise, question_key

    stats = read_json(run.paths.stats, "run `make data`")
    keys, counts = {}, {}
    for split in ("train", "validation", "test"):
        path = run.paths.split(split)
        rows = read_jsonl(path, "run `make data`")
        if not rows:
            raise Fail(f"{path} is empty", "more data, or smaller --val-ratio/--test-ratio")
        recorded = stats.get("outputs", {}).get(split, {}).get("sha256")
        if recorded and recorded != sha256_file(path):
            raise Fail(f"{path} changed after `make data` (sha256 differs from {run.paths.stats})",
                       "re-run `make data`; never edit the splits by hand")
        keys[split] = {normalise(question_key(conversation_of(r))) for r in rows}
        counts[split] = len(rows)
    for a, b in (("train", "test"), ("train", "validation"), ("validation", "test")):
        if shared := keys[a] & keys[b]:
            raise Fail(f"{len(shared)} question(s) appear in both {a} and {b}", "re-run `make data` (it dedups before splitting)")
    return f"train/validation/test = {counts['train']}/{counts['validation']}/{counts['test']}, disjoint"
