"""Blind A/B human evaluation: write a rating sheet, read it back into the evaluation summary.

The sheet shows each question with two answers in an order shuffled per row. Which model wrote A and
B is kept away from the sheet, beside the evaluation summary (`<results>.csv.human_key.json`), so the
file handed to a rater cannot unblind itself. Ratings are bound to what was rated: the key holds a
digest of the answers shown and the adapter that wrote them, and an import is refused when the sheet's
answers, or the current evaluation's, are not those (a retrained model does not inherit old ratings).
"""
from __future__ import annotations

import csv
import hashlib
import json
import random
from pathlib import Path

from ftkit.core.artifacts import summary_path
from ftkit.core.cli import UserError
from ftkit.core.io import atomic_path, sha256_file, write_json_atomic

COLUMNS = ["row", "id", "question", "reference", "answer_A", "answer_B", "score_A", "score_B", "preference"]
INSTRUCTIONS = "score_A/score_B: 1 (bad) to 5 (excellent); preference: A, B or tie"


def key_path(output: str | Path) -> Path:
    """Where the unblinding key lives: beside the evaluation results, not beside the sheet."""
    return Path(f"{output}.human_key.json")


def answers_digest(ids: list[str], answers: dict[str, list[str]]) -> str:
    """sha256 over each record's id with the base's and the fine-tuned model's answer, in record order."""
    rows = [[i, b, f] for i, b, f in zip(ids, answers["base"], answers["finetuned"], strict=True)]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest()


def write_sheet(sheet: str | Path, cases, answers: dict[str, list[str]], test_sha256: str, output: str | Path,
                adapter: str | None = None, seed: int = 0) -> Path:
    """answers: {"base": [...], "finetuned": [...]} in the order of `cases`. Returns the key's path."""
    if set(answers) != {"base", "finetuned"}:
        raise UserError("--human-sheet needs both a base and a fine-tuned model")
    rng = random.Random(seed)
    key = {}
    with atomic_path(sheet, suffix=".csv") as tmp, open(tmp, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for i, case in enumerate(cases, start=1):
            order = ["base", "finetuned"]
            rng.shuffle(order)
            key[str(i)] = {"A": order[0], "B": order[1]}
            question = case.instruction + (f"\n{case.input}" if case.input else "")
            writer.writerow([i, case.id, question, case.reference, answers[order[0]][i - 1], answers[order[1]][i - 1],
                             "", "", ""])
    digest = answers_digest([c.id for c in cases], answers)
    write_json_atomic(key_path(output), {"instructions": INSTRUCTIONS, "sheet": str(sheet), "test_sha256": test_sha256,
                                         "answers_sha256": digest, "adapter": adapter, "rows": key})
    return key_path(output)


def _score(value: str, where: str, column: str) -> int:
    value = (value or "").strip()
    if not value:
        raise UserError(f"{where}: {column} is empty ({INSTRUCTIONS})")
    try:
        score = int(float(value))
    except ValueError:
        raise UserError(f"{where}: {column} is {value!r}, not a number from 1 to 5") from None
    if not 1 <= score <= 5 or float(value) != score:
        raise UserError(f"{where}: {column} is {value}, not a whole number from 1 to 5")
    return score


def read_ratings(sheet: str | Path, key_file: Path) -> dict:
    """Win rate and mean score per model from a filled sheet; errors name the sheet row."""
    sheet = Path(sheet)
    if not sheet.is_file():
        raise UserError(f"{sheet}: no such file")
    if not key_file.is_file():
        raise UserError(f"{key_file}: the key written with the sheet is missing (it is kept beside the evaluation "
                        "results, not beside the sheet); cannot unblind")
    key_doc = json.loads(key_file.read_text(encoding="utf-8"))
    key = key_doc["rows"]
    with open(sheet, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{sheet}: missing column(s) {', '.join(missing)}")
        rows = list(reader)
    if len(rows) != len(key):
        raise UserError(f"{sheet}: {len(rows)} rows, but the key has {len(key)}")
    scores = {"base": [], "finetuned": []}
    wins = {"base": 0, "finetuned": 0, "tie": 0}
    shown = {"base": [], "finetuned": []}
    for line, row in enumerate(rows, start=2):
        where = f"{sheet}:{line} (row {row.get('row')})"
        order = key.get(str(row.get("row", "")).strip())
        if order is None:
            raise UserError(f"{where}: row number not in the key")
        for side in ("A", "B"):
            scores[order[side]].append(_score(row.get(f"score_{side}"), where, f"score_{side}"))
            shown[order[side]].append(row.get(f"answer_{side}", ""))
        preference = (row.get("preference") or "").strip().lower()
        if preference not in ("a", "b", "tie"):
            raise UserError(f"{where}: preference is {row.get('preference')!r} ({INSTRUCTIONS})")
        wins[order[preference.upper()] if preference != "tie" else "tie"] += 1
    if answers_digest([r.get("id", "") for r in rows], shown) != key_doc.get("answers_sha256"):
        raise UserError(f"{sheet}: its answers are not the ones the sheet was written with (edited, or another "
                        "sheet); rate the sheet as written")
    n = len(rows)
    return {
        "sheet": str(sheet), "sheet_sha256": sha256_file(sheet), "rows": n,
        "answers_sha256": key_doc["answers_sha256"], "adapter": key_doc.get("adapter"),
        "mean_score": {m: sum(s) / n for m, s in scores.items()},
        "win_rate": {m: wins[m] / n for m in ("base", "finetuned")},
        "tie_rate": wins["tie"] / n,
    }


def import_ratings(sheet: str | Path, output: str | Path) -> dict:
    """Read a filled sheet into `<output>.summary.json`, only if it rated the answers evaluated there."""
    summary_file = summary_path(output)
    if not summary_file.is_file():
        raise UserError(f"{summary_file}: no evaluation summary to add the ratings to (run the batch evaluation first)")
    ratings = read_ratings(sheet, key_path(output))
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    if summary.get("answers_sha256") != ratings["answers_sha256"]:
        raise UserError(f"{sheet}: these ratings are for other answers than {summary_file} holds (the model was "
                        "retrained or re-evaluated since the sheet was written); write and rate a new sheet: "
                        "make eval HUMAN_SHEET=...")
    if ratings["adapter"] != summary.get("models", {}).get("adapter_sha256"):
        raise UserError(f"{sheet}: rated answers of adapter {ratings['adapter']}, but {summary_file} evaluates "
                        f"{summary.get('models', {}).get('adapter_sha256')}; write and rate a new sheet")
    summary["human_evaluation"] = ratings
    write_json_atomic(summary_file, summary)
    return ratings
