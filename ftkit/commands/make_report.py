"""Fill the training report (training_report.md) from the run's artifacts.

Data summary, configuration, loss curves (the PNG is copied beside the report), base vs fine-tuned
evaluation with confidence interval, example answers side by side, quantization table, human
evaluation, environment. The two sections that need a person's judgement (improvements, known
issues) carry 【待填写】 until someone writes them; a re-generated report keeps what they wrote.

example: python scripts/make_report.py --output reports/training_report.md
"""
from dataclasses import dataclass

from ftkit.config import defaults
from ftkit.config import schema as options
from ftkit.config.schema import option
from ftkit.core.artifacts import RunFolders
from ftkit.core.cli import log, setup_logging


@dataclass
class ReportConfig(RunFolders):
    output: str = option(defaults.REPORT, "the report")


def main():
    args = options.parse(ReportConfig, options.build_parser(ReportConfig, __doc__))
    setup_logging()
    from ftkit.report import PLACEHOLDER, build, unfilled_sections

    text = build(args.paths(args.output), args.output)
    human, other = unfilled_sections(text)
    log.info("report: wrote %s", args.output)
    if other:
        log.warning("report: evidence missing for: %s", ", ".join(other))
    if human:
        log.info("report: for a person to write (replace %s): %s", PLACEHOLDER, ", ".join(human))

