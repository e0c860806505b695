"""Where a run's artifacts lie: one place that every reader of a finished run (the report, the
acceptance check) asks, below both of them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ftkit.config import defaults
from ftkit.config.schema import option
from ftkit.core.io import files_digest

# the adapter export's record, beside its GGUF (the full export's is quant_report.json: each stage owns its own)
ADAPTER_REPORT = "adapter_report.json"


def adapter_digest(adapter_dir: Path) -> str:
    """sha256 over the adapter's weights and config: what the manifest vouches for."""
    return files_digest(adapter_dir, ["adapter_config.json", "adapter_model.safetensors"])


def merged_digest(model_dir: str | Path) -> str:
    """sha256 over a merged model's config and weights: what the GGUF stage records it was made from."""
    names = sorted(p.name for p in Path(model_dir).glob("*.safetensors"))
    return files_digest(model_dir, ["config.json", *names])


def summary_path(eval_output: str | Path) -> Path:
    """The evaluation summary beside its results CSV."""
    return Path(f"{eval_output}.summary.json")


@dataclass
class Paths:
    data_dir: str = defaults.DATA_DIR
    data_name: str = defaults.DATA_NAME
    model_dir: str = defaults.MODEL_DIR
    eval_output: str = defaults.EVAL_OUTPUT
    gguf_dir: str = defaults.GGUF_DIR
    report: str = defaults.REPORT

    def split(self, name: str) -> Path:
        return Path(self.data_dir) / f"{self.data_name}_{name}.jsonl"

    @property
    def stats(self) -> Path:
        return Path(self.data_dir) / f"{self.data_name}_stats.json"

    @property
    def summary(self) -> Path:
        return summary_path(self.eval_output)

    @property
    def general(self) -> Path:
        """The general-ability check's result, beside the evaluation's (make eval-general)."""
        return Path(self.eval_output).parent / "eval_general.json"


@dataclass
class RunFolders:
    """Where a finished run's artifacts lie, as the typed options of the stages that read them all (the report,
    the acceptance check)."""
    data_dir: str = option(defaults.DATA_DIR, "prepared data folder")
    data_name: str = option(defaults.DATA_NAME, "prepared data --output-name")
    model_dir: str = option(defaults.MODEL_DIR, "training output folder")
    eval_output: str = option(defaults.EVAL_OUTPUT, "evaluation CSV")
    gguf_dir: str = option(defaults.GGUF_DIR, "GGUF folder")

    def paths(self, report: str) -> Paths:
        return Paths(self.data_dir, self.data_name, self.model_dir, self.eval_output, self.gguf_dir, report)
