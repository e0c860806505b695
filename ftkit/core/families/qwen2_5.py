"""Qwen2.5 Instruct (ChatML). Its template injects Qwen's default system prompt when the chat has none, and so do
the training text and the Ollama TEMPLATE."""
from ftkit.core.families._family import Family, TinyModel, shape_kwargs
from ftkit.core.families._qwen import (
    CHATML_STOPS,
    CHATML_TURNS,
    QWEN2_VOCAB,
    QWEN25_ADDED,
    QWEN_GENERATION_EOS,
    QWEN_TOKENIZER,
    added_after_vocab,
)

DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
OLLAMA_TEMPLATE = (
    "<|im_start|>system\n{{ if .System }}{{ .System }}{{ else }}" + DEFAULT_SYSTEM + "{{ end }}<|im_end|>\n"
    + CHATML_TURNS + "<|im_start|>assistant\n"
)


def detects(template: str, config: dict) -> bool:
    return "<|im_start|>" in template and DEFAULT_SYSTEM in template


def tiny_config(shape: dict) -> dict:
    """Qwen2.5-0.5B/7B-Instruct: q/k/v bias, tied embeddings (0.5B), 32k context."""
    return {"vocab_size": 151936, "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
            "tie_word_embeddings": True, "use_sliding_window": False, "bos_token_id": 151643, "eos_token_id": 151645,
            **shape_kwargs(shape)}


FAMILY = Family(
    "qwen2.5", "Qwen2.5 Instruct (ChatML)", "<|im_end|>", CHATML_STOPS, OLLAMA_TEMPLATE, detects=detects,
    default_system=DEFAULT_SYSTEM, llama_cpp_pre="qwen2", template_file="Qwen-Qwen2.5-7B-Instruct.jinja",
    extra_stop_tokens=("<|endoftext|>",),
    examples=("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"),
    format_note="ChatML; Qwen's default system prompt when none is given; `<|im_end|>`",
    presets=("configs/qwen2.5-7b-lora.yaml",),
    tiny_models=(TinyModel("qwen2.5", "Qwen2Config", tiny_config, QWEN2_VOCAB, added_after_vocab(None, QWEN25_ADDED),
                           QWEN_TOKENIZER, QWEN_GENERATION_EOS, generation_pad=QWEN_GENERATION_EOS[-1]),))
