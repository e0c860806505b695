#!/usr/bin/env python3
"""Prove and measure the GPU path on a random model with the exact Qwen2.5-1.5B shape (its 151,936-token
vocabulary, tied embeddings): every way of training it, then merge -> GGUF (F16 + Q4_K_M) -> llama.cpp
prompt and decode speed.

Training modes, each through the toolkit's own code (ftkit.stages.train.train.run_training), on generated
chat data at sequence length --seq-len, with no network (random weights cost the same FLOPs and memory):

  lora               LoRA in bf16 as `make train` runs it: the output layer at supervised positions only
                     (TRL's fused head; Triton kernels on CUDA)
  lora_dense         the same with --no-sparse-logits: the full logits at every position (transformers' loss)
  lora_padding_free  the same as lora with --padding-free (flash attention where installed, else SDPA with a
                     block-diagonal mask from the position ids)
  lora_liger         the same as lora with --liger-kernel (Liger's RMSNorm, RoPE and SwiGLU kernels), when
                     liger-kernel is installed; else reported as skipped
  qlora, qlora_dense QLoRA NF4 with double quantization, sparse and dense output layer

For each it prints tokens/s, step time, peak GPU memory, model FLOPs utilisation and whether the loss fell,
beside published anchors, and the ratios that matter (sparse vs dense, padding-free on vs off, Liger on vs
off); it writes one JSON record (and, on a GPU, appends it to docs/gpu_check.json, from which `make docs`
makes docs/gpu.md's table with the GPU named).

  MFU = 4 * N * tokens/s / peak bf16 FLOP/s     (N: all parameters. LoRA on a frozen base: 2N forward,
                                                 2N for the activation gradients, no weight gradients —
                                                 full tuning's 6N would overstate it 1.5x)
  HFU = (4N + 2N recomputed forward under gradient checkpointing) * tokens/s / peak: the hardware's work

On a host with several GPUs it then trains the tiny model under `accelerate launch` on every GPU three ways,
plain data parallelism (DDP), FSDP and DeepSpeed ZeRO-3 (configs/accelerate/), the same data and seed, and
compares each sharded run's saved adapter with the DDP one: a sharded save that gathered nothing, or the wrong
shards, shows here. With one GPU it says so and skips that part; --processes N runs it on N processes anyway
(on the CPU: gloo, DDP and FSDP).

--dry-run uses tiny shapes (the same 151,936-token vocabulary) on the CPU: the same code path, for CI.

examples:
  python bench/gpu_check.py                      (on one H100/H200: estimated 4-6 minutes, not yet timed)
  python bench/gpu_check.py --dry-run            (any machine, a few minutes)
"""
import argparse
import gc
import json
import random
import sys
import time
from pathlib import Path

from ftkit.core.cli import UserError, log, run, setup_logging

ROOT = Path(__file__).resolve().parents[1]

QWEN25_1_5B = {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
               "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
               "tie_word_embeddings": True}
TINY_QWEN = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768, "tie_word_embeddings": True}
MODES = ("lora", "lora_dense", "lora_padding_free", "lora_liger", "qlora", "qlora_dense")
# (mode, against): the ratios the record reports
COMPARISONS = (("lora", "lora_dense", "sparse vs dense output layer (LoRA)"),
               ("qlora", "qlora_dense", "sparse vs dense output layer (QLoRA)"),
               ("lora_padding_free", "lora", "padding-free vs padded"),
               ("lora_liger", "lora", "Liger kernels on vs off"))
# dense bf16 tensor-core peaks (the datasheets' headline figures are with 2:4 sparsity, twice these)
PEAK_BF16_FLOPS = {
    "H200": (989e12, "https://www.nvidia.com/en-us/data-center/h200/ (H200 SXM, 1,979 TFLOPS sparse)"),
    "H100": (989e12, "https://www.nvidia.com/en-us/data-center/h100/ (H100 SXM, 1,979 TFLOPS sparse)"),
    "A100": (312e12, "https://www.nvidia.com/en-us/data-center/a100/ (A100, 624 TFLOPS sparse)"),
    "L40S": (362e12, "https://www.nvidia.com/en-us/data-center/l40s/ (L40S, 733 TFLOPS sparse)"),
    "A10": (125e12, "https://www.nvidia.com/en-us/data-center/products/a10-gpu/ (A10, 250 TFLOPS sparse)"),
    "4090": (165e12, "NVIDIA Ada Lovelace architecture whitepaper, RTX 4090: 165.2 TFLOPS bf16 dense, FP32 accumulate"),
}
ANCHORS = [
    {"what": "LLaMA-Factory, Llama-2-7B, one A100 40GB, batch 4, length 1024: Hugging Face LoRA 16-bit 2,392 "
             "tokens/s/GPU at 18 GB; QLoRA 4-bit 2,415 at 9 GB; with Unsloth 4,007 (LoRA) and 3,726 (QLoRA)",
     "source": "https://github.com/hiyouga/LLaMA-Factory/wiki/Performance-comparison"},
    {"what": "Unsloth: about 2x Hugging Face + FlashAttention-2 speed and >70% less memory, Llama-3.1-8B QLoRA, H100",
     "source": "https://docs.unsloth.ai/basics/unsloth-benchmarks"},
]

# The torch the image installs: PyPI's Linux x86_64 wheel of torch 2.13.0 is its CUDA build (its metadata:
# cuda-toolkit 13.0.3, nvidia-cudnn-cu13 9.20.0.48, nvidia-nccl-cu13 2.29.7, triton 3.7.1).
TORCH_CUDA_WHEEL = {"torch": "2.13.0", "cuda_runtime": "13.0", "cudnn": "9.20", "nccl": "2.29.7",
                    "wheel": "torch-2.13.0-cp312-cp312-manylinux_2_28_x86_64.whl",
                    "sha256": "796633c4cdf0fe2cdced72d8f88f22e73dbcfce83132763162f6d4bff13b820b"}
# the oldest Linux driver each CUDA runtime runs on (CUDA toolkit release notes, "minimum required driver")
MIN_DRIVER = {"12.4": "550.54.14", "12.6": "560.28.03", "12.8": "570.26", "12.9": "575.51.03", "13.0": "580.65.06"}

MFU_FORMULA = "4 * N_parameters * tokens_per_s / peak_bf16_flops (LoRA: frozen base, no weight gradients)"
HFU_FORMULA = "(4 + 2 if gradient checkpointing) * N_parameters * tokens_per_s / peak_bf16_flops"


def utilisation(params: int, tokens_per_s: float, peak: float | None, recompute: bool) -> tuple[float | None, float | None]:
    """(MFU, HFU): model FLOPs 4N per token for LoRA on a frozen base; the hardware also redoes the
    forward (2N) when gradient checkpointing recomputes activations."""
    if not peak:
        return None, None
    return 4 * params * tokens_per_s / peak, (6 if recompute else 4) * params * tokens_per_s / peak


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU (the same code path)")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per mode (default: 20, dry run 4)")
    ap.add_argument("--seq-len", type=int, default=None, help="tokens per example (default: 1024, dry run 256)")
    ap.add_argument("--batch-size", type=int, default=None, help="examples per step (default: 4, dry run 2)")
    ap.add_argument("--modes", default=",".join(MODES),
                    help="training modes, of " + ", ".join(MODES) + "; none: only the multi-process part "
                         "(default: all)")
    ap.add_argument("--skip-gguf", action="store_true", help="skip merge -> GGUF -> llama.cpp")
    ap.add_argument("--processes", type=int, default=None,
                    help="processes for the multi-process part (DDP vs FSDP vs ZeRO-3; default: one per GPU, skipped "
                         "below 2)")
    ap.add_argument("--work-dir", default=None, help="where the random model and outputs go (default: temporary)")
    ap.add_argument("--output", default="reports/gpu_check.json", help="JSON results (default: %(default)s)")
    ap.add_argument("--runs", default="docs/gpu_check.json",
                    help="the project's record a GPU run is appended to; `make docs` makes docs/gpu.md's table from it "
                         "(a dry run is never recorded; 'none': do not record; default: %(default)s)")
    return ap.parse_args(argv)


def build_random_model(work: Path, shape: dict, dtype_name: str, family: str = "qwen2.5") -> Path:
    """A random model of the shape with the family's tokenizer, under `work`."""
    import torch

    from ftkit.tiny.tiny_model import build_random_model as build

    out = work / f"random-{family}"
    build(out, family, shape, dtype_name)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the built model's blocks, before training loads it again
    return out


def generated_data(work: Path, tokenizer, count: int, seq_len: int) -> Path:
    """Chat records whose rendered length is about seq_len tokens (prompt + answer)."""
    from ftkit.core import prompts
    from ftkit.tiny.tiny_model import CORPUS_FILE

    sentences = [s for s in CORPUS_FILE.read_text(encoding="utf-8").splitlines() if len(s) > 10 and "[" not in s]
    rng = random.Random(0)
    work.mkdir(parents=True, exist_ok=True)
    path = work / "train.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(count):
            question, answer = f"第{i}题：请复述下面的内容。", ""
            while True:
                longer = answer + rng.choice(sentences)
                conv = prompts.from_alpaca({"instruction": question, "output": longer})
                if len(prompts.render_ids(conv, tokenizer).input_ids) > seq_len:
                    break
                answer = longer
            f.write(json.dumps({"messages": [{"role": "user", "content": question},
                                             {"role": "assistant", "content": answer}]}, ensure_ascii=False) + "\n")
    return path


MULTI_PROCESS_CONFIGS = {"ddp": None, "fsdp": "configs/accelerate/fsdp.yaml",
                         "zero3": "configs/accelerate/deepspeed_zero3.yaml"}
# what each must really run as (the training manifest's distributed_type); accelerate shards only on GPUs: on a CPU
# the FSDP config runs as plain data parallelism (MULTI_CPU), which is reported, never passed off as FSDP
SHARDED_AS = {"fsdp": "FSDP", "zero3": "DEEPSPEED"}
# a sharded save agrees with DDP's when no tensor differs from DDP's by more than this share of its norm. Measured
# on the CPU dry run (the FSDP config's bf16 mixed precision against DDP in fp32, 6 steps): 4.3% at worst, cosine
# 0.999; no GPU has been lent to measure FSDP itself. Single elements differ
# more (Adam turns a near-zero gradient's rounding into a full step either way); a zero or missing shard is 100%.
SAVE_TOLERANCE = 0.1


def multi_process(work: Path, model_dir: Path, data: Path, processes: int, steps: int, batch: int, seq_len: int,
                  precision: str) -> dict:
    """The tiny model trained by `processes` processes under accelerate, as DDP, FSDP and ZeRO-3, each sharded
    save compared with the DDP save."""
    import importlib.util

    import torch

    gpus = torch.cuda.device_count()
    if processes < 2:
        return {"skipped": f"{gpus} GPU(s) here: the multi-process part (DDP, FSDP, ZeRO-3) needs 2 or more"}
    runs = {}
    for name, config in MULTI_PROCESS_CONFIGS.items():
        if name == "zero3" and (gpus < processes or importlib.util.find_spec("deepspeed") is None):
            runs[name] = {"skipped": "DeepSpeed needs a CUDA GPU per process and `pip install deepspeed`"}
            continue
        runs[name] = launch_training(name, config, work / "multi-process", model_dir, data, processes, steps, batch,
                                     seq_len, precision)
    reference = runs["ddp"]
    for name, sharded in runs.items():
        if name != "ddp" and "skipped" not in sharded and "skipped" not in reference:
            sharded["adapter_vs_ddp"] = adapter_difference(Path(sharded["adapter"]), Path(reference["adapter"]))
            sharded["agrees_with_ddp"] = sharded["adapter_vs_ddp"]["worst"] <= SAVE_TOLERANCE
            sharded["sharded"] = sharded["distributed_type"] == SHARDED_AS[name]
    return {"processes": processes, "tolerance": SAVE_TOLERANCE, "runs": runs}


def launch_training(name: str, config: str | None, work: Path, model_dir: Path, data: Path, processes: int,
                    steps: int, batch: int, seq_len: int, precision: str) -> dict:
    """One `accelerate launch` of train_lora.py, as `make train NUM_GPUS=processes ACCELERATE_CONFIG=config` runs it."""
    import subprocess

    from ftkit.config.launch import launch_args

    out = work / name
    command = [sys.executable, *launch_args("1", "0", str(processes), "", "29500", str(ROOT / config) if config else ""),
               str(ROOT / "scripts" / "train_lora.py"), "--base-model", str(model_dir), "--train-data", str(data),
               "--val-data", "none", "--output-dir", str(out), "--max-steps", str(steps), "--batch-size", str(batch),
               "--max-length", str(seq_len + 8), "--learning-rate", "2e-3", "--lora-dropout", "0",
               "--no-group-by-length", "--warmup-ratio", "0", "--lr-scheduler", "constant", "--save-steps", "1000000",
               "--precision", precision]
    log.info("gpu-check: %s on %d processes", name, processes)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"gpu-check: {name} on {processes} processes failed (exit {result.returncode}):\n"
                        + result.stderr[-3000:])
    metrics = json.loads((out / "metrics.json").read_text())
    manifest = json.loads((out / "run_manifest.json").read_text())
    return {"wall_s": time.perf_counter() - started, "ranks": manifest["ranks"],
            "distributed_type": manifest["distributed_type"],
            "tokens_per_s": metrics["tokens_per_second"], "peak_memory_gib": metrics["peak_memory_mib"] / 1024,
            "loss_first": metrics["train_loss_first"], "loss_last": metrics["train_loss_last"],
            "adapter": str(out / "lora_adapter")}


def adapter_difference(adapter: Path, reference: Path) -> dict:
    """How far one saved adapter is from another: the worst tensor's norm of the difference over its own norm."""
    from safetensors.torch import load_file

    a, b = (load_file(str(p / "adapter_model.safetensors")) for p in (adapter, reference))
    if sorted(a) != sorted(b) or any(a[k].shape != b[k].shape for k in b):
        return {"worst": float("inf"), "tensor": "the tensor names or shapes differ", "tensors": len(a)}
    share = {k: ((a[k].float() - b[k].float()).norm() / b[k].float().norm().clamp_min(1e-12)).item() for k in b}
    worst = max(share, key=share.get)
    return {"worst": share[worst], "tensor": worst, "tensors": len(b)}


def driver_version() -> str | None:
    """The NVIDIA driver's version, from nvidia-smi (present wherever a GPU is passed to a container)."""
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def cuda_stack_problems(torch_version: str, cuda_runtime: str | None, driver: str | None) -> list[str]:
    """What is wrong with this torch build and driver, as sentences (none: all is well)."""
    problems = []
    if cuda_runtime is None:
        return [f"torch {torch_version} is a CPU build: install the CUDA one (make setup FLAVOUR=cuda, or the image)"]
    if cuda_runtime != TORCH_CUDA_WHEEL["cuda_runtime"]:
        problems.append(f"torch {torch_version} carries CUDA {cuda_runtime}, not the pinned "
                        f"{TORCH_CUDA_WHEEL['cuda_runtime']} (torch {TORCH_CUDA_WHEEL['torch']} from PyPI): untested")
    def numbers(version: str) -> tuple[int, ...]:
        return tuple(int(x) for x in version.split(".") if x.isdigit())

    need = MIN_DRIVER.get(cuda_runtime)
    if need and driver and numbers(driver) < numbers(need):
        problems.append(f"NVIDIA driver {driver} is older than {need}, the minimum for CUDA "
                        f"{cuda_runtime}: upgrade the driver (or use a torch built for an older CUDA)")
    return problems


def check_cuda_stack(dry_run: bool) -> dict:
    """Print the torch build, its CUDA runtime and the driver; stop on a driver too old for the runtime."""
    import torch

    stack = {"torch": torch.__version__, "cuda_runtime": torch.version.cuda, "driver": driver_version(),
             "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
             "pinned": TORCH_CUDA_WHEEL}
    log.info("gpu-check: torch %s, CUDA runtime %s, cuDNN %s, NVIDIA driver %s (pinned: torch %s with CUDA %s, "
             "driver >= %s)", stack["torch"], stack["cuda_runtime"] or "none", stack["cudnn"] or "-",
             stack["driver"] or "none", TORCH_CUDA_WHEEL["torch"], TORCH_CUDA_WHEEL["cuda_runtime"],
             MIN_DRIVER[TORCH_CUDA_WHEEL["cuda_runtime"]])
    stack["problems"] = cuda_stack_problems(stack["torch"], stack["cuda_runtime"], stack["driver"])
    for problem in stack["problems"]:
        log.warning("gpu-check: %s", problem)
    if not dry_run and any("driver" in p for p in stack["problems"]):
        raise UserError(next(p for p in stack["problems"] if "driver" in p))
    return stack


def peak_flops() -> tuple[float | None, str]:
    import torch

    if not torch.cuda.is_available():
        return None, "cpu"
    name = torch.cuda.get_device_name(0)
    for key, (flops, _source) in PEAK_BF16_FLOPS.items():
        if key in name:
            return flops, name
    return None, name


def train_mode(mode: str, model_dir: Path, data: Path, work: Path, steps: int, batch: int, seq_len: int,
               precision: str, params: int) -> dict:
    import importlib.util

    import torch

    from ftkit.stages.train.train import TrainConfig, run_training

    if mode == "lora_liger" and importlib.util.find_spec("liger_kernel") is None:
        return {"mode": mode, "skipped": "liger-kernel is not installed (pip install liger-kernel)"}
    config = TrainConfig(base_model=str(model_dir), train_data=str(data), val_data="none", output_dir=str(work / mode),
                         max_steps=steps, epochs=1, batch_size=batch, max_length=seq_len + 8, learning_rate=2e-4,
                         lora_r=8, lora_alpha=16, precision=precision, use_quantization=mode.startswith("qlora"),
                         sparse_logits=not mode.endswith("_dense"), padding_free=mode == "lora_padding_free",
                         liger_kernel=mode == "lora_liger", group_by_length=False, logging_steps=1,
                         warmup_ratio=0.0, lr_scheduler="constant", save_steps=10**6)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    metrics = run_training(config)
    wall = time.perf_counter() - started
    flops, device = peak_flops()
    tps = metrics["tokens_per_second"]
    mfu, hfu = utilisation(params, tps, flops, config.gradient_checkpointing)
    result = {
        "mode": mode, "device": device, "steps": metrics["optimizer_steps"], "tokens_per_s": tps,
        "step_time_s": metrics["train_runtime_s"] / max(1, metrics["optimizer_steps"]),
        "peak_memory_gib": metrics["peak_memory_mib"] / 1024, "wall_s": wall,
        "mfu": mfu, "hfu": hfu,
        "loss_first": metrics["train_loss_first_window"], "loss_last": metrics["train_loss_last_window"],
        "loss_fell": metrics["train_loss_last_window"] < metrics["train_loss_first_window"],
    }
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result


def gguf_speed(model_dir: Path, adapter: Path, work: Path, tokenizer) -> dict:
    import torch
    from llama_cpp import Llama

    from ftkit.core import prompts
    from ftkit.stages.export import gguf
    from ftkit.stages.export.merge import merge_adapter

    merged = work / "merged"
    merge_adapter(str(model_dir), str(adapter), str(merged), check=False)
    report = gguf.convert(str(merged), str(work / "gguf"), "gpu-check", ["Q4_K_M"], check=False)
    offload = -1 if torch.cuda.is_available() else 0
    ids = prompts.render_ids(prompts.from_alpaca({"instruction": "请介绍一下北京。" * 40}), tokenizer).prompt_ids[:512]
    results = {}
    for quant, info in report["files"].items():
        llm = Llama(model_path=info["path"], n_ctx=1024, n_gpu_layers=offload, verbose=False, seed=0)
        llm.eval(ids[:8])  # warm-up
        llm.reset()
        started = time.perf_counter()
        llm.eval(ids)
        prompt_s = time.perf_counter() - started
        started, decoded = time.perf_counter(), 0
        for _ in llm.generate(ids[:16], temp=0.0, top_k=1, reset=True):
            decoded += 1
            if decoded == 128:
                break
        decode_s = time.perf_counter() - started
        results[quant] = {"prompt_tokens_per_s": len(ids) / prompt_s, "decode_tokens_per_s": decoded / decode_s,
                          "size_gib": info["size_bytes"] / 2**30, "gpu_layers": offload}
        del llm
    return results


def main():
    args = parse_args()
    setup_logging()
    import tempfile

    import torch

    from ftkit.core.io import write_json_atomic
    from ftkit.core.loading import load_tokenizer
    from ftkit.stages.train.train_outputs import hardware

    started = time.perf_counter()
    stack = check_cuda_stack(args.dry_run)
    if not args.dry_run and not torch.cuda.is_available():
        raise UserError("no CUDA GPU here: run on a GPU machine, or use --dry-run for the CPU check")
    dry = args.dry_run
    steps = args.steps or (4 if dry else 20)
    seq_len = args.seq_len or (256 if dry else 1024)
    batch = args.batch_size or (2 if dry else 4)
    precision = "fp32" if not torch.cuda.is_available() else "bf16"
    modes = [m.strip() for m in args.modes.split(",") if m.strip() and m.strip() != "none"]
    shape = TINY_QWEN if dry else QWEN25_1_5B
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        work = Path(tmp)
        model_dir = build_random_model(work, shape, precision)
        params = count_parameters(model_dir)
        tokenizer = load_tokenizer(str(model_dir))
        data = generated_data(work, tokenizer, steps * batch, seq_len)
        results = [train_mode(m, model_dir, data, work, steps, batch, seq_len, precision, params) for m in modes]
        processes = torch.cuda.device_count() if args.processes is None else args.processes
        several = multi_process(work, model_dir, data, processes, steps, batch, seq_len, precision)
        deploy = {}
        if not args.skip_gguf and modes and (work / modes[0] / "lora_adapter").exists():
            try:
                deploy = gguf_speed(model_dir, work / modes[0] / "lora_adapter", work, tokenizer)
            except ImportError as err:  # a GPU machine without llama-cpp-python's CUDA build
                log.warning("gpu-check: GGUF step skipped (%s)", err)
    from datetime import datetime, timezone

    document = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "dry_run": dry, "model": "tiny Qwen2.5 shape" if dry else "Qwen2.5-1.5B shape", "shape": shape,
                "parameters": params, "steps": steps, "seq_len": seq_len, "batch_size": batch, "precision": precision,
                "hardware": hardware(), "gpu": peak_flops()[1], "cuda_stack": stack,
                "mfu_formula": MFU_FORMULA, "hfu_formula": HFU_FORMULA, "anchors": ANCHORS,
                "peak_bf16_flops_sources": {k: v[1] for k, v in PEAK_BF16_FLOPS.items()},
                "training": results, "comparisons": comparisons(results), "multi_process": several, "gguf": deploy,
                "wall_s": time.perf_counter() - started}
    write_json_atomic(args.output, document)
    if not dry and args.runs != "none":
        from ftkit.benchmarks import add_run

        log.info("gpu-check: %d run(s) now in %s (make docs writes docs/gpu.md's table)",
                 len(add_run(args.runs, document, "make gpu-check")), args.runs)
    print(f"\nGPU path check ({'DRY RUN: tiny shapes on the CPU' if dry else 'Qwen2.5-1.5B shape, random weights'}), "
          f"{params / 1e6:,.1f} M parameters, seq {seq_len}, batch {batch}, {steps} steps, {precision}, "
          f"{document['gpu']}, {document['wall_s']:.0f} s in all")
    print(f"{'mode':<19}{'tokens/s':>10}{'step s':>8}{'peak GiB':>10}{'MFU':>7}{'HFU':>7}  loss")
    for r in results:
        if "skipped" in r:
            print(f"{r['mode']:<19}  skipped: {r['skipped']}")
            continue
        mfu, hfu = (f"{100 * r[k]:.1f}%" if r[k] else "-" for k in ("mfu", "hfu"))
        print(f"{r['mode']:<19}{r['tokens_per_s']:>10,.0f}{r['step_time_s']:>8.2f}{r['peak_memory_gib']:>10.2f}{mfu:>7}{hfu:>7}  "
              f"{r['loss_first']:.3f} -> {r['loss_last']:.3f} ({'fell' if r['loss_fell'] else 'DID NOT FALL'})")
    for c in document["comparisons"]:
        print(f"{c['what']}: {c['speedup']:.2f}x tokens/s, {c['memory_ratio']:.2f}x peak memory")
    print_multi_process(several)
    for quant, d in deploy.items():
        print(f"GGUF {quant:<8} prompt {d['prompt_tokens_per_s']:,.0f} tokens/s, decode {d['decode_tokens_per_s']:,.0f} "
              f"tokens/s, {d['size_gib']:.2f} GiB, GPU layers {d['gpu_layers']}")
    print(f"MFU = {MFU_FORMULA}\nHFU = {HFU_FORMULA}")
    for anchor in ANCHORS:
        print(f"anchor: {anchor['what']} [{anchor['source']}]")
    failed = [r["mode"] for r in results if "skipped" not in r and not r["loss_fell"]]
    if failed:
        log.error("gpu-check: loss did not fall for %s", ", ".join(failed))
    disagree = [name for name, r in several.get("runs", {}).items() if r.get("agrees_with_ddp") is False]
    if disagree:
        log.error("gpu-check: the adapter saved under %s differs from the DDP save", ", ".join(disagree))
    unsharded = [name for name, r in several.get("runs", {}).items() if r.get("sharded") is False]
    if unsharded and torch.cuda.is_available():
        log.error("gpu-check: %s did not shard on this GPU host", ", ".join(unsharded))
    return 1 if failed or disagree or (unsharded and torch.cuda.is_available()) else 0


def comparisons(results: list[dict]) -> list[dict]:
    """Each mode against the one it changes one thing of: tokens/s and peak memory ratios."""
    done = {r["mode"]: r for r in results if "skipped" not in r}
    return [{"what": what, "mode": mode, "against": against,
             "speedup": done[mode]["tokens_per_s"] / done[against]["tokens_per_s"],
             "memory_ratio": done[mode]["peak_memory_gib"] / done[against]["peak_memory_gib"]}
            for mode, against, what in COMPARISONS if mode in done and against in done]


def print_multi_process(several: dict) -> None:
    if "skipped" in several:
        print(f"multi-process: skipped, {several['skipped']}")
        return
    for name, r in several["runs"].items():
        if "skipped" in r:
            print(f"multi-process {name:<6} skipped: {r['skipped']}")
            continue
        versus = r.get("adapter_vs_ddp")
        compared = "" if versus is None else (f"; adapter vs DDP: worst tensor {100 * versus['worst']:.1f}% of its "
                                              f"norm ({'agrees' if r['agrees_with_ddp'] else 'DIFFERS'})")
        ran = "" if r.get("sharded", True) else (f", ran as {r['distributed_type']} (accelerate shards only on GPUs: "
                                                  "no proof of sharding)")
        print(f"multi-process {name:<6} {several['processes']} processes (ranks {r['ranks']}{ran}): "
              f"{r['tokens_per_s']:,.0f} tokens/s, peak {r['peak_memory_gib']:.2f} GiB per process, loss "
              f"{r['loss_first']:.3f} -> {r['loss_last']:.3f}{compared}")


def count_parameters(model_dir: Path) -> int:
    """From the safetensors headers: no need to load 7 B parameters to count them."""
    import math

    from safetensors import safe_open

    total = 0
    for shard in model_dir.glob("*.safetensors"):
        with safe_open(shard, "pt") as f:
            total += sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())  # noqa: SIM118
    return total


if __name__ == "__main__":
    run(main)
