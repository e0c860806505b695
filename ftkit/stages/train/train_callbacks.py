"""Trainer callbacks: the JSONL training log, a line per epoch, and the fault-injection hook."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from ftkit.core import faults

log = logging.getLogger(__name__)


class JsonlLogger(TrainerCallback):
    """Appends one JSON line per log event: step, epoch, loss, lr, grad norm, tokens/s (or eval loss).

    On resume, lines after the checkpoint's step are dropped first, so the log reads as one run.
    """

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path, self.resume_step = Path(path), resume_step
        self.tokens_seen = 0
        self._last = None  # (time, tokens) at the previous training log

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if self.resume_step is not None and self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line)["step"] <= self.resume_step:
                        kept.append(line)
                except (json.JSONDecodeError, KeyError):
                    continue  # a line cut short by the crash
        self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        self._last = (time.perf_counter(), state.num_input_tokens_seen)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        entry = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
        if "loss" in logs:
            now, tokens = time.perf_counter(), state.num_input_tokens_seen
            elapsed = now - self._last[0] if self._last else 0.0
            entry.update(loss=logs["loss"], learning_rate=logs.get("learning_rate"), grad_norm=logs.get("grad_norm"),
                         tokens_seen=tokens,
                         tokens_per_second=round((tokens - self._last[1]) / elapsed, 1) if elapsed > 0 else None)
            if "aux_loss" in logs:  # a mixture of experts: the router's load-balancing loss, unweighted
                entry["aux_loss"] = logs["aux_loss"]
            self._last = (now, tokens)
        elif "eval_loss" in logs:
            entry.update(eval_loss=logs["eval_loss"])
        else:
            return
        self.tokens_seen = state.num_input_tokens_seen
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def on_train_end(self, args, state, control, **kwargs):
        self.tokens_seen = state.num_input_tokens_seen


class EpochSummary(TrainerCallback):
    """A log line per epoch with the mean training loss of the epoch and the validation loss."""

    def __init__(self):
        self._losses: list[float] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self._losses.append(logs["loss"])

    def _line(self, state, eval_loss=None):
        if not state.is_world_process_zero:
            return
        train = sum(self._losses) / len(self._losses) if self._losses else float("nan")
        val = f", validation loss {eval_loss:.4f}" if eval_loss is not None else ""
        log.info("epoch %.2f: train loss %.4f%s", state.epoch or 0, train, val)
        self._losses = []

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self._line(state, (metrics or {}).get("eval_loss"))

    def on_epoch_end(self, args, state, control, **kwargs):
        if args.eval_strategy != "epoch":
            self._line(state)


class FaultInjection(TrainerCallback):
    """Test hook: FTKIT_FAULT=train.step:N kills the process after the N-th optimizer step."""

    def on_step_end(self, args, state, control, **kwargs):
        faults.reached("train.step")


class QuietProgress(ProgressCallback):
    """The Trainer's progress bars (with ETA), without a metrics dict printed at every log step;
    EpochSummary and train_log.jsonl carry those numbers."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass
