#!/usr/bin/env python3
"""Benchmark the export path at real scale: memory and time of merge -> GGUF F16 -> Q4_K_M -> verification.

Random models with real shapes and dtypes (random weights cost what real ones do), placed in the
Hugging Face cache layout and named by Hub id, offline — the path a user's `BASE_MODEL=org/name` takes:

  tinyllama-1.1b     TinyLlama-1.1B: hidden 2048, 22 layers, intermediate 5632, vocabulary 32,000, bf16
  qwen2.5-0.5b       Qwen2.5-0.5B: hidden 896, 24 layers, vocabulary 151,936, context 32,768, tied embeddings
  llama3.2-1b        Llama-3.2-1B: the Llama-3.1 architecture (llama3 rope scaling, 131,072-token context,
                     128,256 vocabulary) at hidden 2048, 16 layers, tied embeddings: a KV cache or buffer sized
                     by the trained context would show here as gigabytes above the checkpoint

Each model gets a random LoRA adapter (r 8, every linear layer), then each stage runs in a fresh child
process, through the toolkit's own code, and reports its wall time and peak RSS:

  merge         ftkit.stages.export.merge.merge_adapter (base by Hub id, with its check)      target <= 1.5x the checkpoint
  convert       llama.cpp's convert_hf_to_gguf.py to F16 (its process)          target <= 1.0x
  quantize      F16 -> Q4_K_M (llama.cpp's quantizer, its process)              target <= 1.5x
  verification  ftkit.verify.gguf_checks.check_files on F16 and Q4_K_M                         target <= 1.5x

Each figure is the stage's peak RSS above its process's baseline: for merge and verification, once torch,
transformers, peft and llama-cpp-python are imported (about 0.4 GB that does not grow with the model);
for the converter and the quantizer, their own processes doing nothing but their imports. The baselines
are in the JSON beside the peaks.

example: python bench/bench_scale.py                        (all three models, ~5 min on 2 cores)
         python bench/bench_scale.py --models qwen2.5-0.5b
"""
import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ftkit.core.cli import log, run, setup_logging

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "tinyllama-1.1b": {"family": "llama2", "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
                       "num_attention_heads": 32, "num_key_value_heads": 4, "vocab_size": 32000,
                       "max_position_embeddings": 2048},
    "qwen2.5-0.5b": {"family": "qwen2.5", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                     "num_attention_heads": 14, "num_key_value_heads": 2},
    "llama3.2-1b": {"family": "llama3", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                    "num_attention_heads": 32, "num_key_value_heads": 8, "tie_word_embeddings": True},
}
STAGES = ("merge", "convert", "quantize", "verification")
TARGETS = {"merge": 1.5, "convert": 1.0, "quantize": 1.5, "verification": 1.5}
QUANT = "Q4_K_M"
HUB_ORG = "ftkit-bench"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated, from: " + ", ".join(MODELS))
    ap.add_argument("--work-dir", default=None, help="where the models and files go (default: a temporary folder)")
    ap.add_argument("--output", default="reports/bench_scale.json", help="the figures (default: %(default)s)")
    ap.add_argument("--runs", default="docs/bench_scale.json",
                    help="the project's record of runs this one is appended to; `make docs` makes the docs' table "
                         "from it ('none': do not record; default: %(default)s)")
    ap.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)  # one stage, in a child process
    ap.add_argument("--model", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# --- measuring --------------------------------------------------------------------------------------

def status_bytes(field: str) -> int:
    """A size from /proc/self/status (VmRSS: now; VmHWM: this process's peak since exec) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def children_peak_rss() -> int:
    """The largest peak RSS among this process's finished children. Linux counts in each child the RSS
    its parent had when it forked, so the stages that measure children keep their own RSS small."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # kilobytes on Linux


def checkpoint_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))


# --- the models -------------------------------------------------------------------------------------

def snapshot_dir(hf_home: Path, name: str) -> Path:
    return hf_home / "hub" / f"models--{HUB_ORG}--{name}" / "snapshots" / "0000000000000000000000000000000000000000"


def build_model(hf_home: Path, name: str) -> Path:
    """A random bf16 model of the named shape, with its family's tokenizer and chat template, in the
    Hugging Face cache layout; returns the snapshot folder."""
    from ftkit.tiny.tiny_model import build_random_model

    shape = dict(MODELS[name])
    family = shape.pop("family")
    snapshot = snapshot_dir(hf_home, name)
    build_random_model(snapshot, family, shape, "bf16")
    (snapshot.parents[1] / "refs").mkdir(exist_ok=True)
    (snapshot.parents[1] / "refs" / "main").write_text(snapshot.name)
    return snapshot


def build_adapter(snapshot: Path, out: Path, hub_id: str) -> Path:
    """A random LoRA adapter (r 8 on every linear layer) with the tokenizer, as training leaves one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(snapshot, dtype=torch.bfloat16)
    torch.manual_seed(1)
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False,
                                            task_type="CAUSAL_LM"))
    with torch.no_grad():  # a small update, as fine-tuning makes: random A and B would swamp the base
        for param_name, param in peft.named_parameters():
            if "lora_B" in param_name:
                param.mul_(0.05)
    peft.peft_config["default"].base_model_name_or_path = hub_id
    peft.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(snapshot).save_pretrained(out)
    return out


# --- one stage, in a child process ------------------------------------------------------------------

def run_stage(stage: str, work: Path, name: str) -> dict:
    """Runs in a fresh process: the stage's own peak memory, nothing inherited.

    merge and verification work in this process: their peak is VmHWM (reset at exec, unlike getrusage's
    maxrss, which keeps the forking parent's) above the RSS once the libraries are imported. convert and
    quantize work in the tool's own process: this one stays light (no torch) so its children's peak is
    theirs, measured above the same tool doing nothing but its imports."""
    from ftkit.stages.export import gguf
    from ftkit.verify import gguf_checks

    merged, out = work / name / "merged", work / name / "gguf"
    f16, quant = gguf.gguf_path(out, name, "F16"), gguf.gguf_path(out, name, QUANT)
    result = {}
    if stage in ("convert", "quantize"):
        baseline = tool_baseline(stage)
        started = time.perf_counter()
        if stage == "convert":
            out.mkdir(parents=True, exist_ok=True)
            gguf.convert_f16(str(merged), f16)
        else:
            result["quantize"] = gguf.quantize(f16, quant, QUANT)
        wall, peak = time.perf_counter() - started, children_peak_rss()
    else:
        import llama_cpp  # noqa: F401 - the baseline includes the libraries the stage imports
        import peft  # noqa: F401
        import torch  # noqa: F401
        from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401

        from ftkit.stages.export.merge import merge_adapter

        baseline = status_bytes("VmRSS")
        started = time.perf_counter()
        if stage == "merge":
            result["check"] = merge_adapter(f"{HUB_ORG}/{name}", str(work / name / "adapter"), str(merged))["verification"]
        else:
            files = {q: {"path": str(p), "size_bytes": p.stat().st_size} for q, p in (("F16", f16), (QUANT, quant))}
            verification = gguf_checks.check_files(str(merged), files)["verification"]
            result["check"] = {q: {"token_ids": v["token_ids"]["identical"], "greedy_vs_hf": v["greedy_vs_hf"]["agree"],
                                   "top1_vs_f16": v["vs_f16"]["top1_agreement"]} for q, v in verification.items()
                               if isinstance(v, dict)}
            result["check"]["passed"] = verification["passed"]
        wall, peak = time.perf_counter() - started, status_bytes("VmHWM")
    result.update({"wall_s": wall, "baseline_rss": baseline, "peak_rss": peak, "model_rss": peak - baseline})
    return result


def tool_baseline(stage: str) -> int:
    """Peak RSS of the converter's or the quantizer's process doing nothing but import what it imports:
    what its work is measured above."""
    from ftkit.stages.export import gguf

    if stage == "convert":
        cmd = [sys.executable, str(gguf.llama_cpp_dir() / "convert_hf_to_gguf.py"), "--help"]
    else:
        cmd = [sys.executable, "-c", "import llama_cpp"]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return children_peak_rss()  # measured first: the only child so far


def stage_in_child(stage: str, work: Path, name: str, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--stage", stage, "--model", name, "--work-dir", str(work)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"bench-scale: {name} {stage} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the whole benchmark ----------------------------------------------------------------------------

def bench_model(work: Path, name: str, env: dict) -> dict:
    hf_home = Path(env["HF_HOME"])
    log.info("bench-scale: %s: random bf16 weights in the Hugging Face cache layout", name)
    snapshot = build_model(hf_home, name)
    build_adapter(snapshot, work / name / "adapter", f"{HUB_ORG}/{name}")
    size = checkpoint_bytes(snapshot)
    row = {"model": name, "shape": MODELS[name], "checkpoint_bytes": size, "stages": {}}
    for stage in STAGES:
        log.info("bench-scale: %s: %s", name, stage)
        figures = stage_in_child(stage, work, name, env)
        figures["ratio"] = figures["model_rss"] / size
        figures["target"] = TARGETS[stage]
        figures["met"] = figures["ratio"] <= TARGETS[stage]
        row["stages"][stage] = figures
    return row


def format_table(rows: list[dict]) -> str:
    lines = [f"{'model':<18}{'checkpoint':>11}  {'stage':<13}{'wall s':>8}{'peak RSS':>10}{'x ckpt':>8}{'target':>8}  met"]
    for row in rows:
        for stage, f in row["stages"].items():
            lines.append(f"{row['model']:<18}{row['checkpoint_bytes'] / 2**30:>9.2f}Gi  {stage:<13}{f['wall_s']:>8.1f}"
                         f"{f['model_rss'] / 2**30:>8.2f}Gi{f['ratio']:>8.2f}{'<= ' + str(f['target']):>8}  "
                         f"{'yes' if f['met'] else 'NO'}")
    return "\n".join(lines)


def main():
    args = parse_args()
    setup_logging()
    if args.stage:  # the child: one stage, its figures as the last line of stdout
        print(json.dumps(run_stage(args.stage, Path(args.work_dir), args.model)))
        return 0
    from ftkit.core.io import write_json_atomic
    from ftkit.stages.train.train_outputs import hardware

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise SystemExit(f"--models: unknown {', '.join(unknown)} (choose from {', '.join(MODELS)})")
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        work = Path(tmp)
        env = {**os.environ, "HF_HOME": str(work / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        env.pop("HF_HUB_CACHE", None)
        os.environ.update({"HF_HOME": env["HF_HOME"], "HF_HUB_OFFLINE": "1"})
        rows = [bench_model(work, name, env) for name in names]
    document = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "hardware": hardware(), "targets": TARGETS, "quantization": QUANT, "models": rows,
                "all_met": all(f["met"] for row in rows for f in row["stages"].values()),
                "checks_passed": all(row["stages"][s]["check"]["passed"] for row in rows for s in ("merge", "verification"))}
    write_json_atomic(args.output, document)
    if args.runs != "none":
        from ftkit.benchmarks import add_run

        log.info("bench-scale: %d run(s) now in %s (make docs puts the latest in README.md)",
                 len(add_run(args.runs, document, "make bench-scale")), args.runs)
    print("\nexport at scale: peak RSS of each stage against the checkpoint's size (random bf16 weights, real shapes)")
    print(format_table(rows))
    print(f"merge and GGUF checks passed: {'yes' if document['checks_passed'] else 'NO'}; "
          f"memory targets met: {'yes' if document['all_met'] else 'NO'}  ({args.output})")
    return 0 if document["checks_passed"] else 1


if __name__ == "__main__":
    run(main)
