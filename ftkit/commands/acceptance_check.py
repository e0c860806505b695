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
from dataclasses import dataclass
from pathlib import Path

from ftkit.config import defaults
from ftkit.config import schema as options
from ftkit.config.schema import option
from ftkit.core.artifacts import RunFolders
from ftkit.core.cli import setup_logging


@dataclass
class AcceptanceConfig(RunFolders):
    report: str = option(defaults.REPORT, "training report")
    min_records: int = option(defaults.MIN_RECORDS, "training records required (the checklist's; lower only for "
                              "smoke tests)", minimum=1)
    min_tokens_per_second: float = option(defaults.MIN_TOKENS_PER_SEC, "GGUF generation speed required", minimum=0)
    n_gpu_layers: int = option(defaults.N_GPU_LAYERS, "layers llama.cpp offloads to the GPU when it loads the GGUF "
                               "(-1: all; no effect on a CPU build)")
    output_dir: str = option(defaults.REPORT_DIR, "where acceptance.json/.md go")


def main():
    args = options.parse(AcceptanceConfig, options.build_parser(AcceptanceConfig, __doc__))
    setup_logging()
    from ftkit.acceptance import Thresholds, format_line, run_checks, to_json, to_markdown, verdict
    from ftkit.core.io import write_json_atomic, write_text_atomic

    thresholds = Thresholds(args.min_records, args.min_tokens_per_second)
    print("验收检查 acceptance check" + (f" — thresholds overridden: {'; '.join(thresholds.overridden)}"
                                        if thresholds.overridden else ""))
    items = run_checks(args.paths(args.report), thresholds, progress=lambda item: print(format_line(item), flush=True),
                       n_gpu_layers=args.n_gpu_layers)
    result = to_json(items, thresholds)
    out = Path(args.output_dir)
    write_json_atomic(out / "acceptance.json", result)
    write_text_atomic(out / "acceptance.md", to_markdown(items, thresholds))
    print(f"\n{verdict(result)} — {out / 'acceptance.md'}")
    return 0 if result["passed"] else 1

