"""How much general ability (multiple-choice accuracy) a model may lose before the check warns or fails: the
general check's verdict and the GGUF checks' choice of a type both read it."""
from __future__ import annotations

# fine-tuned - base, in accuracy points: WARN beyond the first, FAIL beyond the second, each only when the
# interval of the difference excludes 0 (a loss, not noise)
DEFAULT_MARGINS = {"warn": 0.02, "fail": 0.05}


def within_margin(diff: dict, margins: dict = DEFAULT_MARGINS) -> bool:
    """A quantization keeps general ability unless it loses more than the WARN margin against F16 with an
    interval below 0 (the rule of the forgetting verdict: a loss, not noise)."""
    return not (-diff["difference"] > margins["warn"] and diff["ci95"][1] < 0)
