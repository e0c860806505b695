"""Blind A/B human evaluation: write a rating sheet, read it back into the evaluation summary.

The sheet shows each question with two answers in an order shuffled per row; which model wrote A
and B is kept in `<sheet>.key.json` beside it, so raters cannot favour the fine-tuned model.
"""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from ftkit.cli import UserError
from ftkit.io import atomic_path, sha256_file, write_json_atomic

COLUMNS = ["row", "id", "question", "reference", "answer_A", "answer_B", "score_A", "score_B", "preference"]
INSTRUCTIONS = "score_A/score_B: 1 (bad) to 5 (excellent); preference: A, B or tie"


def key_path(sheet: str | Path) -> Path:
    return Path(f"{sheet}.key.json")


def write_sheet(sheet: str | Path, cases, answers: dict[str, list[str]], test_sha256: str, seed: int = 0) -> None:
    """answers: {"base": [...], "finetuned": [...]} in the order of `cases`."""
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
    write_json_atomic(key_path(sheet), {"instructions": INSTRUCTIONS, "test_sha256": test_sha256, "rows": key})


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


def read_ratings(sheet: str | Path) -> dict:
    """Win rate and mean score per model from a filled sheet; errors name the sheet row."""
    sheet = Path(sheet)
    if not sheet.is_file():
        raise UserError(f"{sheet}: no such file")
    if not key_path(sheet).is_file():
        raise UserError(f"{key_path(sheet)}: the key written with the sheet is missing; cannot unblind")
    key = json.loads(key_path(sheet).read_text(encoding="utf-8"))["rows"]
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
    for line, row in enumerate(rows, start=2):
        where = f"{sheet}:{line} (row {row.get('row')})"
        order = key.get(str(row.get("row", "")).strip())
        if order is None:
            raise UserError(f"{where}: row number not in the key")
        for side in ("A", "B"):
            scores[order[side]].append(_score(row.get(f"score_{side}"), where, f"score_{side}"))
        preference = (row.get("preference") or "").strip().lower()
        if preference not in ("a", "b", "tie"):
            raise UserError(f"{where}: preference is {row.get('preference')!r} ({INSTRUCTIONS})")
        wins[order[preference.upper()] if preference != "tie" else "tie"] += 1
    n = len(rows)
    return {
        "sheet": str(sheet), "sheet_sha256": sha256_file(sheet), "rows": n,
        "mean_score": {m: sum(s) / n for m, s in scores.items()},
        "win_rate": {m: wins[m] / n for m in ("base", "finetuned")},
        "tie_rate": wins["tie"] / n,
    }


def import_ratings(sheet: str | Path, summary_file: Path) -> dict:
    if not summary_file.is_file():
        raise UserError(f"{summary_file}: no evaluation summary to add the ratings to (run the batch evaluation first)")
    ratings = read_ratings(sheet)
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    expected = json.loads(key_path(sheet).read_text(encoding="utf-8")).get("test_sha256")
    if expected and summary.get("test_data", {}).get("sha256") != expected:
        raise UserError(f"{sheet}: rated on another test set than {summary_file} evaluates")
    summary["human_evaluation"] = ratings
    write_json_atomic(summary_file, summary)
    return ratings
