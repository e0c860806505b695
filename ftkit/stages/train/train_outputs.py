"""What the training stage leaves for people and later stages: manifest, metrics, loss curve."""
from __future__ import annotations

import os
import platform
import re
import subprocess
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ftkit import ROOT
from ftkit.core.io import atomic_path, sha256_file

PACKAGES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "bitsandbytes", "sentencepiece")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def hardware() -> dict:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def adapted_modules(model) -> dict[str, int]:
    """Each kind of module LoRA adapts, by its name inside a layer (self_attn.q_proj; a mixture of experts' fused
    expert weights as mlp.experts.gate_up_proj, its router as mlp.gate) -> in how many layers."""
    from peft.tuners.lora import LoraLayer

    kinds: dict[str, int] = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            kind = re.sub(r"^.*?\.layers\.\d+\.", "", name).replace(".base_layer", "")
            parameter = getattr(module, "parameter_name", None)  # PEFT's ParamWrapper: LoRA on a weight tensor
            kind = f"{kind}.{parameter}" if parameter not in (None, "weight") and not kind.endswith(parameter) else kind
            kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items()))


def manifest(config, precision: str, trainer, train, val, digests: dict[str, str]) -> dict:
    model = trainer.model
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    data = {"train": {"path": config.train_data, "sha256": digests["train"], "examples": len(train.rows),
                      "dropped_too_long": train.dropped_too_long}}
    if val is not None:
        data["validation"] = {"path": config.val_data, "sha256": digests["validation"],
                              "examples": len(val.rows), "dropped_too_long": val.dropped_too_long}
    return {
        "stage": "train",
        "arguments": asdict(config),
        "precision": precision,
        "seed": config.seed,
        "data": data,
        "parameters": {"trainable": trainable, "total": total},
        "lora_modules": adapted_modules(model),
        # what accelerate really ran (NO, MULTI_GPU, MULTI_CPU, FSDP, DEEPSPEED): it shards only on GPUs
        "distributed_type": trainer.accelerator.distributed_type.value,
        "versions": package_versions(),
        "git": git_commit(),
        "hardware": hardware(),
    }


def data_digests(config) -> dict[str, str]:
    """sha256 of each split the run reads."""
    splits = {"train": config.train_data, "validation": config.val_data}
    return {split: sha256_file(path) for split, path in splits.items() if path}


def peak_memory_mib() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def window_mean(values: list[float], first: bool) -> float:
    """Mean of the first (or last) tenth of the logged losses, at least one and at most 20 values:
    'did the loss fall' is judged on windows, not on single noisy steps."""
    n = max(1, min(20, len(values) // 10))
    window = values[:n] if first else values[-n:]
    return sum(window) / len(window)


def metrics(state, result, runtime: float, train, val, tokens_seen: int, final_eval_loss: float | None) -> dict:
    history = state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    evals = [{"epoch": round(h["epoch"], 4), "step": h["step"], "eval_loss": h["eval_loss"]}
             for h in history if "eval_loss" in h]
    best = min(evals, key=lambda e: e["eval_loss"]) if evals else None
    epochs_done = state.epoch or 0.0
    return {
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": losses[-1] if losses else None,
        "train_loss_first_window": window_mean(losses, True) if losses else None,
        "train_loss_last_window": window_mean(losses, False) if losses else None,
        "train_loss_mean": result.training_loss,
        "eval_loss_per_epoch": evals,
        "best_epoch": best["epoch"] if best else None,
        "best_eval_loss": best["eval_loss"] if best else None,
        "final_eval_loss": final_eval_loss,
        "epochs": epochs_done,
        "optimizer_steps": state.global_step,
        "runtime_s": runtime,
        "train_runtime_s": result.metrics["train_runtime"],
        "tokens_seen": int(tokens_seen),
        "tokens_per_second": tokens_seen / result.metrics["train_runtime"] if result.metrics["train_runtime"] > 0 else 0.0,
        "supervised_tokens": round(train.supervised_tokens * epochs_done),
        "train_examples": len(train.rows),
        "validation_examples": len(val.rows) if val else 0,
        "dropped_too_long": train.dropped_too_long + (val.dropped_too_long if val else 0),
        "peak_memory_mib": peak_memory_mib(),
    }


def plot_loss_curve(history: list[dict], path: Path) -> None:
    """Training loss (raw and smoothed) and validation loss against the optimizer step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if train:
        steps, losses = zip(*train, strict=True)
        ax.plot(steps, losses, color="tab:blue", alpha=0.3, linewidth=1, label="train loss (per step)")
        k = max(1, len(losses) // 20)
        smooth = [sum(losses[max(0, i - k + 1): i + 1]) / len(losses[max(0, i - k + 1): i + 1]) for i in range(len(losses))]
        ax.plot(steps, smooth, color="tab:blue", linewidth=2, label=f"train loss ({k}-step mean)")
    if evals:
        steps, losses = zip(*evals, strict=True)
        ax.plot(steps, losses, color="tab:orange", marker="o", linewidth=2, label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (answer tokens)")
    ax.set_title("Training and validation loss")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
