"""Answer-quality metrics that are correct for Chinese, computed offline.

`rouge_score`'s default tokenizer keeps only a-z and 0-9, so it scores any two Chinese sentences 0;
`evaluate.load("rouge")` fetches its script from the Hub. So ROUGE is computed with `rouge_score`
and our own tokenizers: per character, and per jieba word. BLEU uses sacrebleu's `zh` tokenizer.
"""
from __future__ import annotations

import logging
import math
import random
import unicodedata

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
PER_RECORD = ("rouge1_char", "rouge2_char", "rougeL_char", "rougeL_word", "bleu", "exact_match", "answer_chars")


class CharTokenizer:
    """Every non-space character is a token (CJK has no spaces to split on)."""

    def tokenize(self, text: str) -> list[str]:
        return [ch for ch in text if not ch.isspace()]


class JiebaTokenizer:
    """Chinese words as segmented by jieba; punctuation and spaces dropped."""

    def __init__(self):
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self._cut = jieba.lcut

    def tokenize(self, text: str) -> list[str]:
        return [w for w in self._cut(text) if w.strip() and not all(unicodedata.category(c).startswith("P") for c in w)]


class Scorer:
    def __init__(self):
        from rouge_score import rouge_scorer

        self.char = rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=CharTokenizer())
        self.word = rouge_scorer.RougeScorer(["rougeL"], tokenizer=JiebaTokenizer())

    def score(self, prediction: str, reference: str) -> dict[str, float]:
        import sacrebleu

        char = self.char.score(reference, prediction)
        return {
            "rouge1_char": char["rouge1"].fmeasure,
            "rouge2_char": char["rouge2"].fmeasure,
            "rougeL_char": char["rougeL"].fmeasure,
            "rougeL_word": self.word.score(reference, prediction)["rougeL"].fmeasure,
            "bleu": sacrebleu.sentence_bleu(prediction, [reference], tokenize="zh").score,
            "exact_match": float(prediction.strip() == reference.strip()),
            "answer_chars": float(len(prediction.strip())),
        }


def corpus_bleu(predictions: list[str], references: list[str]) -> float:
    import sacrebleu

    return sacrebleu.corpus_bleu(predictions, [references], tokenize="zh").score


def mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def paired_bootstrap_ci(a: list[float], b: list[float], samples: int = 2000, seed: int = 0,
                        level: float = 0.95) -> dict[str, float]:
    """Mean of b - a and its percentile bootstrap interval, resampling records with replacement (paired)."""
    if len(a) != len(b) or not a:
        raise ValueError("paired bootstrap needs two equally long, non-empty lists")
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(samples))
    lo = means[int((1 - level) / 2 * samples)]
    hi = means[min(samples - 1, int((1 + level) / 2 * samples))]
    return {"delta": sum(diffs) / n, "ci_low": lo, "ci_high": hi, "level": level, "samples": samples}
