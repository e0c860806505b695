"""Check every item of the guide's acceptance checklist from the artifacts on disk.

One line per item: PASS, FAIL, WARN (a person should look) or SKIP (depends on a failed item), its
evidence and, when not a PASS, what to do. Exit code 0 only when no item fails. Also writes
reports/acceptance.json (machine-readable) and reports/acceptance.md.

Evidence is cross-checked so a broken or faked run cannot pass: metrics against the raw training log,
the adapter against the digest its training run recorded, the evaluated test file against the hash
the data stage recorded, the Modelfile's TEMPLATE against the training format, generation speed
measured now with the GGUF.

example: python scripts/acceptance_check.py            (make acceptance MIN_RECORDS=10 for a smoke test)
"""
import argparse
from pathlib import Path

from ftkit.config import defaults
from ftkit.core.cli import setup_logging


def main():
    from ftkit.core.artifacts import Paths

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    Paths.add_flags(ap)
    ap.add_argument("--report", default=defaults.REPORT, help="training report (default: %(default)s)")
    ap.add_argument("--min-records", type=int, default=defaults.MIN_RECORDS,
                    help="training records required (default: %(default)s, the checklist's; lower only for smoke tests)")
    ap.add_argument("--min-tokens-per-second", type=float, default=defaults.MIN_TOKENS_PER_SEC,
                    help="GGUF generation speed required (default: %(default)s)")
    ap.add_argument("--n-gpu-layers", type=int, default=defaults.N_GPU_LAYERS,
                    help="layers llama.cpp offloads to the GPU when it loads the GGUF (-1: all; no effect on a CPU build)")
    ap.add_argument("--output-dir", default=defaults.REPORT_DIR, help="where acceptance.json/.md go (default: %(default)s)")
    args = ap.parse_args()
    setup_logging()
    from ftkit.acceptance import Thresholds, format_line, run_checks, to_json, to_markdown, verdict
    from ftkit.core.io import write_json_atomic, write_text_atomic

    thresholds = Thresholds(args.min_records, args.min_tokens_per_second)
    print("验收检查 acceptance check" + (f" — thresholds overridden: {'; '.join(thresholds.overridden)}"
                                        if thresholds.overridden else ""))
    items = run_checks(Paths.from_args(args, args.report), thresholds, progress=lambda item: print(format_line(item), flush=True),
                       n_gpu_layers=args.n_gpu_layers)
    result = to_json(items, thresholds)
    out = Path(args.output_dir)
    write_json_atomic(out / "acceptance.json", result)
    write_text_atomic(out / "acceptance.md", to_markdown(items, thresholds))
    print(f"\n{verdict(result)} — {out / 'acceptance.md'}")
    return 0 if result["passed"] else 1

