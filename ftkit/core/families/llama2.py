"""Llama-2 chat: Meta's own construction (ftkit.core.prompts renders it; there is no Jinja to pin). The embedded
default: a tiny Llama with a sentencepiece tokenizer trained on local text."""
from ftkit.core.families._family import Family, TinyModel, shape_kwargs

# .System is the last system message (Meta's construction keeps one); BOS opens every exchange after the first
OLLAMA_TEMPLATE = (
    '{{- $system := .System }}{{- range .Messages }}{{- if eq .Role "system" }}{{- $system = .Content }}{{- end }}{{- end }}'
    '{{- $first := true }}{{- range .Messages }}'
    '{{- if eq .Role "user" }}{{- if not $first }}<s>{{- end }}'
    '[INST] {{ if and $first $system }}<<SYS>>\n{{ $system }}\n<</SYS>>\n\n{{ end }}{{ .Content }} [/INST]'
    '{{- $first = false }}'
    '{{- else if eq .Role "assistant" }} {{ .Content }} </s>{{- end }}'
    '{{- end }}'
)


def detects(template: str, config: dict) -> bool:
    return not template or ("[INST]" in template and "<<SYS>>" in template)


def tiny_config(shape: dict) -> dict:
    return {"rms_norm_eps": 1e-5, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 3,
            "tie_word_embeddings": False, **shape_kwargs(shape)}


FAMILY = Family(
    "llama2", "Llama-2 chat", "</s>", ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "</s>"), OLLAMA_TEMPLATE,
    detects=detects, bos_text="<s>", examples=("meta-llama/Llama-2-7b-chat-hf",),
    format_note="`[INST] … [/INST]`, Meta's construction (BOS/EOS as ids); `</s>`",
    presets=("configs/llama2-7b-lora.yaml", "configs/llama2-7b-qlora.yaml"),
    tiny_models=(TinyModel("llama", "LlamaConfig", tiny_config,
                           note="sentencepiece BPE trained on local text, a few MB, built in seconds"),))
