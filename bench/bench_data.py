#!/usr/bin/env python3
"""Benchmark the data stage: records/s and memory of prepare_data on N generated records.

Generates N distinct alpaca records (the sample families, each question made unique) as JSONL, then
in one process times (1) a baseline that only parses and re-serialises every line (the I/O floor any
preparation pays) and (2) the full data stage (validate, render, token lengths, dedup, split, write).
Prints both rates, their ratio, and peak memory against the dedup index size, measured in separate
child processes for N/10 and N records so memory growth with the input is visible.

example: python bench/bench_data.py --records 1000000 --tokenizer models/tiny-llama
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ftkit.core.cli import run, setup_logging


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="records to generate (default: %(default)s)")
    ap.add_argument("--tokenizer", default="models/tiny-llama", help="tokenizer for lengths ('none' to skip)")
    ap.add_argument("--work-dir", default=None, help="where to put the generated data (default: a temp folder)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def generate(path: Path, n: int) -> None:
    from ftkit.stages.data import sample_data

    pool = sample_data.generate(sample_data.pool_size(), seed=0)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            r = pool[i % len(pool)]
            f.write(json.dumps(dict(r, instruction=f"{r['instruction']}（第{i}题）"), ensure_ascii=False) + "\n")


def baseline(path: Path, out: Path) -> float:
    start = time.perf_counter()
    with open(path, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        for line in src:
            dst.write(json.dumps(json.loads(line), ensure_ascii=False) + "\n")
    return time.perf_counter() - start


def prepare_once(path: Path, out_dir: Path, tokenizer: str | None):
    from ftkit.stages.data.prepare import PrepareConfig, prepare

    start = time.perf_counter()
    summary = prepare(PrepareConfig(inputs=[str(path)], output_dir=str(out_dir), tokenizer=tokenizer))
    return time.perf_counter() - start, summary


def child(args) -> None:
    """Run the data stage alone and report its peak memory (KiB) as JSON."""
    work = Path(args.work_dir)
    tokenizer = None if args.tokenizer.lower() == "none" else args.tokenizer
    seconds, summary = prepare_once(work / f"in-{args.records}.jsonl", work / f"out-{args.records}", tokenizer)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec
    status = Path("/proc/self/status").read_text()
    peak_kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    print(json.dumps({"seconds": seconds, "kept": summary.kept, "peak_rss_mib": peak_kib / 1024}))


def measure_memory(args, n: int, work: Path) -> dict:
    generate(work / f"in-{n}.jsonl", n)
    cmd = [sys.executable, __file__, "--child", "--records", str(n), "--tokenizer", args.tokenizer, "--work-dir", str(work)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    args = parse_args()
    if args.child:
        return child(args)
    setup_logging()
    tokenizer = None if args.tokenizer.lower() == "none" else args.tokenizer
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        work = Path(tmp)
        path = work / "bench.jsonl"
        generate(path, args.records)
        size_mb = path.stat().st_size / 2**20
        base_s = baseline(path, work / "copy.jsonl")
        stage_s, summary = prepare_once(path, work / "out", tokenizer)
        small = measure_memory(args, max(1, args.records // 10), work)
        large = measure_memory(args, args.records, work)
    base_rate, stage_rate = args.records / base_s, args.records / stage_s
    index_mib = summary.kept * 200 / 2**20  # dict entry + two ints + tuple: about 200 bytes a question
    print(f"\ndata stage benchmark: {args.records:,} records, {size_mb:.0f} MiB JSONL, tokenizer {tokenizer or 'none'}")
    print(f"{'':34}{'records/s':>12}{'seconds':>10}")
    print(f"{'baseline: json parse + write':34}{base_rate:>12,.0f}{base_s:>10.1f}")
    print(f"{'prepare_data (full stage)':34}{stage_rate:>12,.0f}{stage_s:>10.1f}")
    print(f"ratio prepare/baseline: {stage_rate / base_rate:.2f}   target >= 20,000 records/s: "
          f"{'met' if stage_rate >= 20_000 else 'NOT met'}")
    print(f"peak memory: {small['peak_rss_mib']:.0f} MiB at {args.records // 10:,} records, "
          f"{large['peak_rss_mib']:.0f} MiB at {args.records:,} (dedup index about {index_mib:.0f} MiB)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "records": args.records, "records_per_s": stage_rate, "baseline_records_per_s": base_rate,
            "peak_mib_small": small["peak_rss_mib"], "peak_mib_large": large["peak_rss_mib"],
            "dedup_index_mib": index_mib}, indent=2))


if __name__ == "__main__":
    run(main)
