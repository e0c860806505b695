"""Qwen3.5 (hybrid Gated DeltaNet + gated attention; Qwen3.8 reuses its architecture and template). Thinking off
renders as Qwen3's; its GGUF template too has <think> and tools, hence the same PARSER. Its template opens the
think block in the generation prompt itself (thinking on: it ends "<think>\\n")."""
from ftkit.core.families import qwen3
from ftkit.core.families._family import Family, TinyModel, VocabSource, shape_kwargs
from ftkit.core.families._qwen import CHATML_STOPS, QWEN3_ADDED, QWEN_GENERATION_EOS, QWEN_TOKENIZER, added_after_vocab

# Ollama feeds a prompt that ends with the opening tag to its thinking parser (server/routes.go ~L2728), so the
# answer's thinking is still parsed out
THINKING_OLLAMA_TEMPLATE = qwen3.THINKING_OLLAMA_TEMPLATE.replace(
    "{{ if and .IsThinkSet (not .Think) }}" + qwen3.EMPTY_THINK + "{{ end }}",
    "{{ if and .IsThinkSet (not .Think) }}" + qwen3.EMPTY_THINK + "{{ else }}<think>\n{{ end }}")

# Qwen3.5 (llama.cpp src/llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_QWEN35): letters keep their combining marks. The
# submodule ships Qwen2's 151,936 tokens under this pattern, not Qwen3.5's own 248,320 (ftkit/tiny/tiny_tokenizers.py)
SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|"
         r"\s*[\r\n]+|\s+(?!\S)|\s+")
VOCAB = VocabSource("ggml-vocab-qwen35.gguf", SPLIT, nfc=True, ignore_merges=False, add_bos=None)
# the hybrid stack: three Gated DeltaNet (linear attention) layers, then one full attention layer, as in every
# Qwen3.5 checkpoint (full_attention_interval 4)
LAYER_TYPES = ["linear_attention"] * 3 + ["full_attention"]


def detects(template: str, config: dict) -> bool:
    return "<|im_start|>" in template and "<function=" in template and "<|vision_start|>" in template


def tiny_config(shape: dict) -> dict:
    """Every config field of the real text model (gated attention with a quarter of each head rotated, q/k norms,
    Gated DeltaNet layers with their own head counts and a 4-wide causal convolution, tied embeddings, 262k
    context) at a tiny size; the linear-attention value width (heads x head dim) is a multiple of 256, like the
    hidden size, so k-quants apply to its output projection too."""
    heads, hidden = shape["num_attention_heads"], shape["hidden_size"]
    blocks = max(1, shape["num_hidden_layers"] // 4)
    return {"vocab_size": 151936, "max_position_embeddings": 262144, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
            "head_dim": hidden // heads, "layer_types": LAYER_TYPES * blocks, "linear_num_key_heads": max(1, heads // 2),
            "linear_num_value_heads": heads, "linear_key_head_dim": hidden // heads,
            "linear_value_head_dim": hidden // heads, "linear_conv_kernel_dim": 4,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25},
            "bos_token_id": 151643, "eos_token_id": 151645, "architectures": ["Qwen3_5ForCausalLM"],
            **shape_kwargs(shape), "num_hidden_layers": 4 * blocks}


FAMILY = Family(
    "qwen3.5", "Qwen3.5 (ChatML, thinking off)", "<|im_end|>", CHATML_STOPS, qwen3.OLLAMA_TEMPLATE, detects=detects,
    priority=1,  # its template also matches Qwen3's rule
    aliases=("qwen3.8",), pins={"enable_thinking": False}, llama_cpp_pre="qwen35", template_file="Qwen3.5-4B.jinja",
    extra_stop_tokens=("<|endoftext|>",), examples=("Qwen/Qwen3.5-4B",),
    format_note="as Qwen3; its thinking prompt opens the block itself (`<think>\\n`)", ollama_parser="passthrough", thinking_ollama_template=THINKING_OLLAMA_TEMPLATE,
    tiny_models=(TinyModel("qwen3.5", "Qwen3_5TextConfig", tiny_config, VOCAB, added_after_vocab(None, QWEN3_ADDED),
                           # transformers' own class (Qwen2Tokenizer would impose Qwen2's split pattern on loading)
                           {**QWEN_TOKENIZER, "tokenizer_class": "Qwen3_5Tokenizer", "model_max_length": 262144},
                           QWEN_GENERATION_EOS, generation_pad=QWEN_GENERATION_EOS[-1],
                           note="three Gated DeltaNet layers and one gated-attention layer"),))
