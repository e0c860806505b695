"""Llama-3.x Instruct (Meta's header format). Its template writes a date into the system header: the training
text pins the template's own default, so no run ever depends on the day (llama-server passes today's)."""
from ftkit.core.families._family import Family, TinyModel, VocabSource, shape_kwargs

DATE = "26 Jul 2024"  # the template's own default; fixed so the training text never depends on the day
OLLAMA_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\n"
    f"Cutting Knowledge Date: December 2023\nToday Date: {DATE}\n\n"
    "{{ .System }}<|eot_id|>"
    '{{ range .Messages }}{{ if or (eq .Role "user") (eq .Role "assistant") }}'
    "<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
    "{{ end }}{{ end }}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)

SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
         r"\s*[\r\n]+|\s+(?!\S)|\s+")
VOCAB = VocabSource("ggml-vocab-llama-bpe.gguf", SPLIT, nfc=False, ignore_merges=True, add_bos="<|begin_of_text|>")
# Llama-3.1 names for ids the Llama-3 vocab file calls reserved
RENAMED = {128004: "<|finetune_right_pad_id|>", 128008: "<|eom_id|>", 128010: "<|python_tag|>"}


def detects(template: str, config: dict) -> bool:
    return "<|start_header_id|>" in template and "<|eot_id|>" in template


def added_tokens(tokens: list[str], types: list[int]) -> list[tuple[int, str, bool]]:
    """Every token after the normal ones, special, with Llama-3.1's names and the reserved ones renumbered."""
    first = next(i for i, t in enumerate(types) if t != 1)
    reserved, out = 0, []
    for i in range(first, len(tokens)):
        name = RENAMED.get(i, tokens[i])
        if name.startswith("<|reserved_special_token_"):
            name = f"<|reserved_special_token_{reserved}|>"
            reserved += 1
        out.append((i, name, True))
    return out


def tiny_config(shape: dict) -> dict:
    """Llama-3.1-8B-Instruct: llama3 rope scaling, 128k context, untied output layer."""
    return {"vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
            "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
            "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], **shape_kwargs(shape)}


FAMILY = Family(
    "llama3", "Llama-3.x Instruct", "<|eot_id|>", ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    OLLAMA_TEMPLATE, detects=detects, aliases=("llama3.1", "llama3.2", "llama3.3"), pins={"date_string": DATE},
    bos_text="<|begin_of_text|>", llama_cpp_pre="llama-bpe", template_file="meta-llama-Llama-3.1-8B-Instruct.jinja",
    extra_stop_tokens=("<|end_of_text|>", "<|eom_id|>"),
    examples=("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.2-3B-Instruct"),
    format_note=f"header blocks; the `Cutting Knowledge Date` system header pinned to `{DATE}`; `<|eot_id|>`",
    presets=("configs/llama3-8b-lora.yaml",),
    tiny_models=(TinyModel("llama3", "LlamaConfig", tiny_config, VOCAB, added_tokens,
                           {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>",
                            "eos_token": "<|eot_id|>", "model_max_length": 131072},
                           generation_eos=(128001, 128008, 128009)),))
