"""DeepSeek-R1-Distill-Qwen: Qwen2's architecture and vocabulary, DeepSeek's own chat format and special tokens.

Its template writes every past answer without its reasoning (it keeps what follows `</think>`), the last one too,
and its generation prompt opens a think block: `<｜Assistant｜><think>\\n`. The template in llama.cpp's submodule
adds an enable_thinking switch (off, or unset: the block is closed at once, `<think>\\n</think>`); the Hub's
original has none and always thinks. So, as the template allows: with the switch THINKING=off (the default,
pinned), on and mixed; without it THINKING=on only (the others are refused at the first stage, with that reason).

Training text: the history as the template renders it, then the generation prompt, then the answer as the model
writes it there (`answer_after_prompt`): its reasoning, `\\n</think>\\n\\n` and the answer (thinking), or `\\n\\n`
and the answer after the closed block (thinking off), then `<｜end▁of▁sentence｜>`."""
from dataclasses import replace

from ftkit.core.families._family import Family, TinyModel
from ftkit.core.families._qwen import QWEN2_VOCAB, added_after_vocab
from ftkit.core.families.qwen2_5 import tiny_config as qwen2_config

BOS, EOS, USER, ASSISTANT = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"
# the template's system prompt is the last system message, written right after BOS (which llama.cpp adds as an id)
_SYSTEM = ('{{- $system := "" }}{{- range .Messages }}{{- if eq .Role "system" }}{{- $system = .Content }}{{- end }}'
           "{{- end }}{{ $system }}")
_TURNS = ('{{- range .Messages }}{{- if eq .Role "user" }}' + USER + "{{ .Content }}"
          '{{- else if eq .Role "assistant" }}' + ASSISTANT + "{{ .Content }}" + EOS + "{{- end }}{{- end }}")
OLLAMA_TEMPLATE = _SYSTEM + _TURNS + ASSISTANT + "<think>\n</think>"
# thinking: .Thinking inside the range over .Messages (in a branch that never writes: the template drops past
# reasoning) declares thinking and names its tags for Ollama's parser (thinking.InferTags); think=false closes
# the block, think=true (Ollama's default for a model that thinks) leaves it open, as enable_thinking does
THINKING_OLLAMA_TEMPLATE = (
    _SYSTEM + _TURNS.replace(ASSISTANT + "{{ .Content }}",
                             ASSISTANT + "{{ if and false .Thinking }}<think>\n{{ .Thinking }}\n</think>{{ end }}"
                                         "{{ .Content }}")
    + ASSISTANT + "<think>\n{{ if and .IsThinkSet (not .Think) }}</think>{{ end }}")
# the Hub's template (no switch): the block is always open, whatever think says
ALWAYS_THINKING_OLLAMA_TEMPLATE = THINKING_OLLAMA_TEMPLATE.replace("{{ if and .IsThinkSet (not .Think) }}</think>{{ end }}", "")

# the Hub tokenizer's added tokens: Qwen2's three control tokens renamed, then DeepSeek's where Qwen2.5 has its
# object-reference and box tokens, then Qwen2.5's from <|quad_start|> (151650) on
ADDED = ([(BOS, True), ("<|EOT|>", True), ("<think>", False), ("</think>", False)]
         + [(t, True) for t in ("<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
                                "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")]
         + [(t, False) for t in ("<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                                 "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>")])
VOCAB = replace(QWEN2_VOCAB, add_bos=BOS)  # its tokenizer adds BOS


def detects(template: str, config: dict) -> bool:
    return (USER in template and ASSISTANT in template and "</think>" in template
            and config.get("model_type", "qwen2") == "qwen2")


def answer_after_prompt(trace: str | None, answer: str, thinking: bool) -> str:
    return f"{trace or ''}\n</think>\n\n{answer}" if thinking else f"\n\n{answer}"


def tiny_config(shape: dict) -> dict:
    """DeepSeek-R1-Distill-Qwen-1.5B: Qwen2 with an untied output layer, 128k context, rope theta 10k, BOS and EOS
    both <｜end▁of▁sentence｜> in config.json (generation_config.json names the real BOS)."""
    return {**qwen2_config(shape), "max_position_embeddings": 131072, "rope_theta": 10000.0,
            "tie_word_embeddings": False, "bos_token_id": 151643, "eos_token_id": 151643}


FAMILY = Family(
    "deepseek-r1", "DeepSeek-R1-Distill-Qwen (DeepSeek chat, thinking off)", EOS, (USER, ASSISTANT, EOS), OLLAMA_TEMPLATE,
    detects=detects, aliases=("deepseek-r1-distill-qwen",), pins={"enable_thinking": False}, bos_text=BOS,
    llama_cpp_pre="deepseek-r1-qwen", template_file="deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
    # the GGUF's template has <think> and </think>: as for Qwen3, a PARSER keeps Ollama on the TEMPLATE
    ollama_parser="passthrough", thinking_ollama_template=THINKING_OLLAMA_TEMPLATE,
    always_thinking_ollama_template=ALWAYS_THINKING_OLLAMA_TEMPLATE, answer_after_prompt=answer_after_prompt,
    examples=("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"),
    format_note="`<｜User｜>…<｜Assistant｜><think>\\n`, past reasoning dropped; `<｜end▁of▁sentence｜>`",
    tiny_models=(TinyModel("deepseek-r1", "Qwen2Config", tiny_config, VOCAB,
                           added_after_vocab([EOS, USER, ASSISTANT], ADDED),
                           {"tokenizer_class": "LlamaTokenizerFast", "bos_token": BOS, "eos_token": EOS,
                            "pad_token": EOS, "add_bos_token": True, "model_max_length": 16384},
                           generation_eos=(151643,), note="Qwen2 body, DeepSeek's tokens and template"),))
