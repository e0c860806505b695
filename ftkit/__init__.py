"""ftkit: from Chinese Q&A data to a LoRA fine-tuned Llama chat model running in Ollama."""
__version__ = "0.1.0"
