"""How close two computations of one model must be, per dtype of the reference: the merge's check and the GGUF
checks' ties both read it."""
from __future__ import annotations

# the largest |logit difference| allowed between merged and base + adapter: max(floor, relative x the
# logits' scale), by the dtype the check runs in. Merging rounds W + BA once more in that dtype, and the
# rounding grows with the logits (bf16 keeps 8 significant bits: 0.4 at a logit of 100), so a fixed bound
# would fail correct merges of real models and pass broken tiny ones.
BOUNDS = {"fp32": (1e-3, 1e-4), "fp16": (5e-2, 1e-2), "bf16": (2e-1, 4e-2)}
