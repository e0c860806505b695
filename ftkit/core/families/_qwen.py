"""What the Qwen-derived family files share: Qwen2's byte-level BPE vocabulary and split pattern, the tokens Qwen
adds after it, and the ChatML turns of an Ollama TEMPLATE."""
from __future__ import annotations

from ftkit.core.families._family import VocabSource

QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_VOCAB = VocabSource("ggml-vocab-qwen2.gguf", QWEN2_SPLIT, nfc=True, ignore_merges=False, add_bos=None)

# (token, special) after <|endoftext|> <|im_start|> <|im_end|>, in id order from 151646
QWEN25_ADDED = ([(t, True) for t in ("<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
                                     "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
                                     "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")]
                + [(t, False) for t in ("<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
                                        "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>")])
QWEN3_ADDED = QWEN25_ADDED + [(t, False) for t in ("<tool_response>", "</tool_response>", "<think>", "</think>")]

# what the Qwen Hub checkpoints put in tokenizer_config.json and generation_config.json
QWEN_TOKENIZER = {"tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                  "model_max_length": 131072}
QWEN_GENERATION_EOS = (151645, 151643)
CHATML_STOPS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")


def added_after_vocab(control: list[str] | None, extra: list[tuple[str, bool]]):
    """The added tokens of a Qwen2-vocabulary tokenizer: the vocab file's three control tokens (renamed to
    `control` where the family renames them), then `extra` at the ids that follow."""
    def added(tokens: list[str], types: list[int]) -> list[tuple[int, str, bool]]:
        first = next(i for i, t in enumerate(types) if t != 1)
        names = control or [tokens[i] for i in range(first, first + 3)]
        return ([(first + k, name, True) for k, name in enumerate(names)]
                + [(first + 3 + k, text, special) for k, (text, special) in enumerate(extra)])
    return added


# Ollama fills a template that mentions .Messages with: .Messages (consecutive messages of one role merged,
# system messages kept), .System (every system message, joined by a blank line; the Modelfile's SYSTEM enters
# as a first system message when the chat has none) and .Tools.
CHATML_TURNS = (
    '{{ range .Messages }}{{ if or (eq .Role "user") (eq .Role "assistant") }}'
    "<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
    "{{ end }}{{ end }}"
)

