"""ftkit: from Chinese Q&A data to a LoRA fine-tuned Llama chat model running in Ollama."""
from pathlib import Path

__version__ = "0.1.0"
# the checkout this package runs from (llama.cpp/, configs/, tests/go/), and the data shipped inside the package
ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).resolve().parent / "assets"
