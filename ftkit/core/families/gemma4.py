"""Gemma 4 (text): Google's turn format, `<|turn>user\\n…<turn|>\\n`, the assistant as `model`, and a thinking
switch (enable_thinking) that writes `<|think|>` into the system turn.

Thinking off (the default, pinned like Qwen3's): the generation prompt closes an empty thought channel,
`<|turn>model\\n<|channel>thought\\n<channel|>`, and the answer follows it. The template writes a past answer
without any channel, so the training text is the template's history and generation prompt, then the answer as
the model writes it after that prompt (`answer_after_prompt`), then `<turn|>`.

Ollama: the GGUF's template mentions tool calls and the TEMPLATE does not, so Ollama >= 0.30 prefers the GGUF's
own template, through llama-server (the pinned one); OLLAMA_GO_TEMPLATE=1 and older versions run the TEMPLATE. The
deployment check proves both. Ollama also has a Go RENDERER for Gemma 4; ftkit's Modelfile never names it, since
nothing here can run it.

The Jinja template trims system and user text (`| trim`); the TEMPLATE cannot, so a message that begins or ends
with whitespace renders with it in Ollama's Go path (the llama-server path trims, as training did).
"""
from ftkit.core.families._family import Family, TinyModel, VocabSource, shape_kwargs

TURN, END = "<|turn>", "<turn|>"
EMPTY_THOUGHT = "<|channel>thought\n<channel|>"
_TURNS = ('{{- range .Messages }}' + TURN + '{{ if eq .Role "assistant" }}model{{ else }}{{ .Role }}{{ end }}\n'
          "{{ .Content }}" + END + "\n{{ end }}")
OLLAMA_TEMPLATE = _TURNS + TURN + "model\n" + EMPTY_THOUGHT
# a thinking run: think (Ollama's default for a model that thinks) opens the system turn with <|think|> (the chat's
# first system message follows it there) and leaves the thought channel to the model; .Thinking, in a branch that
# never writes (the template drops past thoughts), declares thinking and names the channel's tags
THINKING_OLLAMA_TEMPLATE = (
    "{{- $think := and .IsThinkSet .Think }}"
    '{{- if $think }}' + TURN + "system\n<|think|>\n"
    '{{ range $i, $m := .Messages }}{{ if and (eq $i 0) (eq $m.Role "system") }}{{ $m.Content }}{{ end }}{{ end }}'
    + END + "\n{{ end }}"
    '{{- range $i, $m := .Messages }}{{ if not (and $think (eq $i 0) (eq $m.Role "system")) }}'
    + TURN + '{{ if eq .Role "assistant" }}model{{ else }}{{ .Role }}{{ end }}\n'
    "{{ if and false .Thinking }}<|channel>thought\n{{ .Thinking }}\n<channel|>{{ end }}"
    "{{ .Content }}" + END + "\n{{ end }}{{ end }}"
    + TURN + "model\n{{ if not $think }}" + EMPTY_THOUGHT + "{{ end }}")

# the control tokens besides BOS, EOS, pad, unknown and mask: special to the tokenizer, so llama.cpp's converter
# marks them as control tokens, as in the vocab file
CONTROL = ["<|tool>", "<tool|>", "<|think|>", TURN, END, "<|image>", "<|audio>", "<|image|>", "<|audio|>", "<image|>",
           "<audio|>", "<|video|>"]
VOCAB = VocabSource("ggml-vocab-gemma-4.gguf", "", nfc=False, ignore_merges=False, add_bos="<bos>",
                    sentencepiece_style=True)


def detects(template: str, config: dict) -> bool:
    return TURN in template and END in template


def added_tokens(tokens: list[str], types: list[int]) -> list[tuple[int, str, bool]]:
    """The control tokens (<bos>, <|turn>, <|think|>, ...) as special, the visible ones (<|channel>, <|tool_call>, ...)
    as not: all are in the vocabulary at their ids already."""
    return [(i, tokens[i], types[i] == 3) for i in range(len(tokens)) if types[i] in (3, 4)]


def answer_after_prompt(trace: str | None, answer: str, thinking: bool) -> str:
    return f"<|channel>thought\n{trace or ''}\n<channel|>{answer}" if thinking else answer


def tiny_config(shape: dict) -> dict:
    """Gemma 4's text model at a tiny size: sliding-window layers then a full-attention one (the real models: five
    to one), a twice as wide head on the full layer with proportional rope on a quarter of it, logit soft-capping,
    tied embeddings, no per-layer input embeddings (as the 31B has none), 262k vocabulary and context."""
    heads, hidden = shape["num_attention_heads"], shape["hidden_size"]
    layers = max(2, shape["num_hidden_layers"])
    return {**shape_kwargs(shape), "num_hidden_layers": layers, "vocab_size": 262144, "max_position_embeddings": 262144,
            "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "head_dim": hidden // heads,
            "global_head_dim": 2 * hidden // heads, "layer_types": ["sliding_attention"] * (layers - 1) + ["full_attention"],
            "sliding_window": 1024, "final_logit_softcapping": 30.0, "hidden_size_per_layer_input": 0,
            "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0, "architectures": ["Gemma4ForCausalLM"]}


FAMILY = Family(
    "gemma4", "Gemma 4 (turns, thinking off)", END, (TURN, END, "<eos>"), OLLAMA_TEMPLATE, detects=detects,
    pins={"enable_thinking": False}, bos_text="<bos>", llama_cpp_pre="gemma4",
    template_file="google-gemma-4-31B-it.jinja", extra_stop_tokens=("<eos>",),
    thinking_ollama_template=THINKING_OLLAMA_TEMPLATE, answer_after_prompt=answer_after_prompt,
    think_tags=("<|channel>thought\n", "<channel|>"), examples=("google/gemma-4-31B-it",),
    format_note="`<|turn>user\\n…<turn|>`, the assistant as `model`, an empty thought channel when not thinking; "
                "`<turn|>`",
    tiny_models=(TinyModel("gemma4", "Gemma4TextConfig", tiny_config, VOCAB, added_tokens,
                           {"tokenizer_class": "GemmaTokenizer", "bos_token": "<bos>", "eos_token": "<eos>",
                            "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>", "add_bos_token": True,
                            "model_max_length": 262144, "extra_special_tokens": CONTROL},
                           generation_eos=(1, 106), generation_pad=0,
                           note="sliding-window and full attention, 262k vocabulary"),))
