"""Loading what a stage reads, with the safety policy: tokenizers (bound to their chat family), models
(safetensors unless --allow-pickle, no remote code unless --trust-remote-code) and prepared splits.

The floor below the stages: training, evaluation, merge, GGUF and acceptance all load through here,
so none of them imports another stage to read a model.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ftkit.core import prompts
from ftkit.core.cli import UserError, check_model_source


def read_jsonl(path: str) -> list[dict]:
    """A prepared split, read by the data stage's own JSONL reader (line numbers in errors)."""
    from ftkit.core.readers import InputError, read_records

    if not Path(path).is_file():
        raise UserError(f"{path}: no such file (run `make data` first)")
    try:
        return [record.data for record in read_records(path, "jsonl", "utf-8")]
    except InputError as err:
        raise UserError(str(err)) from None


def conversation_of(record: dict) -> prompts.Conversation:
    """A prepared record (messages) or a raw alpaca one."""
    return prompts.from_messages(record["messages"]) if "messages" in record else prompts.from_alpaca(record)


def load_tokenizer(name: str, trust_remote_code: bool = False, family: str | None = None, thinking: str | None = None):
    """The tokenizer, bound to its chat family (detected, or `family`) and thinking mode (`thinking`, or the
    one its template was marked with in training), with a pad token that is never the end of a turn."""
    from transformers import AutoTokenizer

    from ftkit.core import families

    check_model_source(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load the tokenizer of {name} ({str(err).splitlines()[0]})") from None
    families.bind(tokenizer, family, thinking)
    if tokenizer.pad_token is None or tokenizer.pad_token_id == families.end_of_turn_id(tokenizer):
        # Llama-2 and Llama-3 ship no pad token; DeepSeek-R1-Distill pads with its end of turn. Labels of padding
        # are -100 and attention masks them, so any id works; one that is not the end of a turn keeps it unambiguous.
        vocab = tokenizer.get_vocab()
        spare = next((t for t in ("<|finetune_right_pad_id|>", "<|reserved_special_token_0|>", "<|vision_pad|>",
                                  tokenizer.unk_token) if t in vocab), None)  # never a token the vocabulary lacks
        tokenizer.pad_token = spare or tokenizer.eos_token
    return tokenizer


def save_tokenizer(tokenizer, folder: Path, sentencepiece_from: str) -> None:
    """The tokenizer files of an adapter or a merged model: tokenizer.json and its config, the pinned chat
    template (chat_template.jinja) with the model's own beside it (chat_template.original.jinja), and the
    sentencepiece file llama.cpp needs."""
    from ftkit.core import families

    tokenizer.save_pretrained(folder)
    families.write_original_template(tokenizer, folder)
    copy_sentencepiece_model(sentencepiece_from, folder)


def copy_sentencepiece_model(base_model: str, dest: Path) -> None:
    """save_pretrained writes tokenizer.json but not tokenizer.model, which llama.cpp needs for exact
    sentencepiece conversion."""
    source = Path(base_model) / "tokenizer.model"
    if not source.exists():
        if Path(base_model).is_dir():
            return  # a local model without one: a byte-level BPE tokenizer (Qwen, Llama-3) needs none
        try:
            from huggingface_hub import hf_hub_download

            source = Path(hf_hub_download(base_model, "tokenizer.model"))
        except Exception:  # noqa: BLE001 - a model without a sentencepiece file is fine
            return
    shutil.copy(source, dest / "tokenizer.model")


def pickle_hint(path: str) -> str:
    """Why a folder that has only pickled weights would not load, and the way out."""
    if any(Path(path).glob("*.bin")) and not any(Path(path).glob("*.safetensors")):
        return ("; its weights are pickle files (*.bin), which can run code when loaded: convert them to "
                "safetensors, or pass --allow-pickle if you trust their source")
    return ""


# the short names the flags and reports use, and torch's
DTYPE_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def torch_dtype(name: str):
    """'bf16' -> torch.bfloat16."""
    import torch

    return getattr(torch, DTYPE_NAMES[name])


def dtype_name(dtype, default: str | None = None) -> str:
    """torch.bfloat16 (or 'bfloat16', 'torch.bfloat16') -> 'bf16'; `default` for anything else, when given."""
    torch_name = str(dtype).replace("torch.", "")
    names = {v: k for k, v in DTYPE_NAMES.items()}
    return names.get(torch_name, default) if default is not None else names[torch_name]


def load_hf(path: str, trust_remote_code: bool = False, allow_pickle: bool = False, keep_checkpoint_dtype: bool = False):
    """A causal LM in fp32 on the CPU or bf16 on a GPU, from safetensors unless allow_pickle.
    keep_checkpoint_dtype: on the CPU, the checkpoint's own dtype (a bf16 model stays bf16: half the
    memory of fp32)."""
    import torch
    from transformers import AutoModelForCausalLM

    check_model_source(path)
    cuda = torch.cuda.is_available()
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else \
        ("auto" if keep_checkpoint_dtype else torch.float32)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code,
                                                     use_safetensors=not allow_pickle, device_map="auto" if cuda else None)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load the model {path} ({str(err).splitlines()[0]}){pickle_hint(path)}") from None
    model.eval()
    return model
