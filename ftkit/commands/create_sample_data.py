"""Create sample Chinese Q&A data (alpaca format: instruction/input/output) for the pipeline.

Records come from templated families (capitals, arithmetic, unit conversion, definitions, antonyms,
translation, weekday reasoning, short writing with an input); answers are computed, so they are
correct. Deterministic for a --seed, no duplicates, every family represented.

example: python scripts/create_sample_data.py --output-dir data/sample --num 240
"""
import argparse
from pathlib import Path

from ftkit.config import defaults
from ftkit.core.cli import UserError, log, setup_logging
from ftkit.core.io import write_json_atomic
from ftkit.stages.data import sample_data


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output-dir", default=defaults.SAMPLE_DIR, help="folder for sample_data.json (default: %(default)s)")
    ap.add_argument("--num", type=int, default=defaults.NUM_SAMPLES,
                    help="number of records (default: %(default)s; the acceptance checklist asks for >= 100)")
    ap.add_argument("--seed", type=int, default=defaults.SEED, help="random seed (default: %(default)s)")
    ap.add_argument("--reasoning-share", type=float, default=0.0, metavar="SHARE",
                    help="share of records (0-1) that carry a reasoning trace, half as a reasoning_content field, "
                         "half inline as <think>…</think> (default: %(default)s; make uses 0.5 with THINKING=on|mixed)")
    return ap.parse_args(argv)


def main():
    args = parse_args()
    setup_logging()
    try:
        records = sample_data.generate(args.num, args.seed, args.reasoning_share)
    except ValueError as err:
        raise UserError(str(err)) from err
    out = Path(args.output_dir) / "sample_data.json"
    write_json_atomic(out, records)
    traced = sum("reasoning_content" in r or r["output"].startswith("<think>") for r in records)
    log.info("sample: wrote %d records in %d categories (%d with a reasoning trace) to %s", len(records),
             len({r["category"] for r in records}), traced, out)

