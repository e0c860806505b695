"""Fill the training report (training_report.md) from the run's artifacts.

Data summary, configuration, loss curves (the PNG is copied beside the report), base vs fine-tuned
evaluation with confidence interval, example answers side by side, quantization table, human
evaluation, environment. The two sections that need a person's judgement (improvements, known
issues) carry 【待填写】 until someone writes them; a re-generated report keeps what they wrote.

example: python scripts/make_report.py --output reports/training_report.md
"""
import argparse

from ftkit.config import defaults
from ftkit.core.cli import log, setup_logging


def main():
    from ftkit.core.artifacts import Paths

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    Paths.add_flags(ap)
    ap.add_argument("--output", default=defaults.REPORT, help="the report (default: %(default)s)")
    args = ap.parse_args()
    setup_logging()
    from ftkit.report import PLACEHOLDER, build, unfilled_sections

    text = build(Paths.from_args(args, args.output), args.output)
    human, other = unfilled_sections(text)
    log.info("report: wrote %s", args.output)
    if other:
        log.warning("report: evidence missing for: %s", ", ".join(other))
    if human:
        log.info("report: for a person to write (replace %s): %s", PLACEHOLDER, ", ".join(human))

