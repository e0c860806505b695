"""Qwen3 (ChatML with a thinking switch), dense and mixture-of-experts (Qwen3-30B-A3B): one chat format, two tiny
models. THINKING=off (the default) pins enable_thinking off: the answer follows an empty think block, in training,
evaluation and Ollama alike; on and mixed keep the switch the caller's."""
from ftkit.core.families._family import Family, TinyModel, shape_kwargs
from ftkit.core.families._qwen import (
    CHATML_STOPS,
    CHATML_TURNS,
    QWEN2_VOCAB,
    QWEN3_ADDED,
    QWEN_GENERATION_EOS,
    QWEN_TOKENIZER,
    added_after_vocab,
)

EMPTY_THINK = "<think>\n\n</think>\n\n"
OLLAMA_TEMPLATE = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    + CHATML_TURNS + "<|im_start|>assistant\n" + EMPTY_THINK
)
# a run trained with thinking (THINKING=on|mixed): Ollama's think=true renders the thinking prompt (it ends at the
# assistant header), think=false the empty think block, as the model's own template does with enable_thinking.
# .Thinking inside the range over .Messages is what makes Ollama declare thinking and parse <think>…</think> out
# of the answer (thinking.InferTags); like Qwen3's template it is written only for an assistant message after the
# last user message, so history goes without its reasoning.
THINKING_OLLAMA_TEMPLATE = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    '{{ $lastUser := -1 }}{{ range $i, $m := .Messages }}{{ if eq $m.Role "user" }}{{ $lastUser = $i }}{{ end }}{{ end }}'
    '{{ range $i, $m := .Messages }}{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
    '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n'
    "{{ if and .Thinking (gt $i $lastUser) }}<think>\n{{ .Thinking }}\n</think>\n\n{{ end }}"
    "{{ .Content }}<|im_end|>\n{{ end }}{{ end }}"
    "<|im_start|>assistant\n{{ if and .IsThinkSet (not .Think) }}" + EMPTY_THINK + "{{ end }}"
)


def detects(template: str, config: dict) -> bool:
    return "<|im_start|>" in template and ("enable_thinking" in template or "<think>" in template)


def dense_config(shape: dict) -> dict:
    """Qwen3-0.6B: q/k norms, explicit head_dim, tied embeddings, 40k context."""
    return {"vocab_size": 151936, "max_position_embeddings": 40960, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
            "head_dim": shape["hidden_size"] // shape["num_attention_heads"], "tie_word_embeddings": True,
            "attention_bias": False, "bos_token_id": 151643, "eos_token_id": 151645, **shape_kwargs(shape)}


def moe_config(shape: dict) -> dict:
    """Qwen3-30B-A3B at a tiny size: every layer a sparse block of 4 experts, 2 routed per token (the real one: 128,
    8), normalised top-k weights, untied output layer. Its config says what the real one does
    (output_router_logits off, router_aux_loss_coef 0.001): TRL's trainer turns the router logits on and adds the
    load-balancing loss with that coefficient, as transformers' own forward does with labels."""
    return {**dense_config(shape), "tie_word_embeddings": False, "num_experts": 4, "num_experts_per_tok": 2,
            "moe_intermediate_size": max(256, shape["intermediate_size"] // 3 // 256 * 256), "decoder_sparse_step": 1,
            "norm_topk_prob": True, "mlp_only_layers": [], "output_router_logits": False,
            "router_aux_loss_coef": 0.001}


_TOKENIZER = dict(added_tokens=added_after_vocab(None, QWEN3_ADDED), tokenizer_config=QWEN_TOKENIZER,
                  generation_eos=QWEN_GENERATION_EOS, generation_pad=QWEN_GENERATION_EOS[-1])
FAMILY = Family(
    "qwen3", "Qwen3 (ChatML, thinking off)", "<|im_end|>", CHATML_STOPS, OLLAMA_TEMPLATE, detects=detects,
    pins={"enable_thinking": False}, llama_cpp_pre="qwen2", template_file="Qwen-Qwen3-0.6B.jinja",
    extra_stop_tokens=("<|endoftext|>",), examples=("Qwen/Qwen3-8B", "Qwen/Qwen3-30B-A3B"),
    format_note="ChatML; thinking off: the answer follows an empty `<think>\\n\\n</think>\\n\\n`; `<|im_end|>`",
    presets=("configs/qwen3-8b-lora.yaml",),
    # the GGUF's template has <think> and tools: without a PARSER, Ollama >= 0.30 would prefer it and turn thinking
    # on by default; passthrough declares neither (think=true is refused, not ignored)
    ollama_parser="passthrough", thinking_ollama_template=THINKING_OLLAMA_TEMPLATE,
    tiny_models=(TinyModel("qwen3", "Qwen3Config", dense_config, QWEN2_VOCAB, **_TOKENIZER),
                 TinyModel("qwen3-moe", "Qwen3MoeConfig", moe_config, QWEN2_VOCAB, **_TOKENIZER,
                           note="mixture of experts: 4 experts, top-2 routing")))
