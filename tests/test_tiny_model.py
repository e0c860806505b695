"""The embedded tiny Llama: deterministic, Llama-2-shaped, loadable offline, and llama.cpp-compatible."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftkit.core import prompts
from ftkit.core.io import sha256_file
from ftkit.tiny.tiny_model import TinyLlamaSpec, build

ROOT = Path(__file__).resolve().parents[1]


def test_same_seed_gives_identical_files(tiny_model_dir, tmp_path):
    again = build(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.model", "tokenizer.json", "config.json"):
        assert sha256_file(again / name) == sha256_file(tiny_model_dir / name), name
    other = build(tmp_path / "other", TinyLlamaSpec(seed=1))
    assert sha256_file(other / "model.safetensors") != sha256_file(tiny_model_dir / "model.safetensors")
    assert sha256_file(other / "tokenizer.model") == sha256_file(tiny_model_dir / "tokenizer.model")


def test_llama2_shape_and_special_tokens(tiny_model_dir, tiny_tokenizer):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert config["hidden_size"] % 256 == 0 and config["intermediate_size"] % 256 == 0  # k-quants apply
    assert (tiny_model_dir / "tokenizer.model").exists() and (tiny_model_dir / "tokenizer.json").exists()
    assert (tiny_tokenizer.unk_token_id, tiny_tokenizer.bos_token_id, tiny_tokenizer.eos_token_id) == (0, 1, 2)
    assert tiny_tokenizer.pad_token_id not in (None, tiny_tokenizer.eos_token_id)  # padding never masks EOS
    assert config["vocab_size"] == len(tiny_tokenizer)
    assert prompts.uses_llama2_format(tiny_tokenizer)
    assert tiny_tokenizer("你好").input_ids[0] == 1  # BOS added by default, once
    # byte fallback: a character the corpus never saw still round-trips
    assert tiny_tokenizer.decode(tiny_tokenizer.encode("鑫𝔘", add_special_tokens=False)) == "鑫𝔘"
    size_mb = (tiny_model_dir / "model.safetensors").stat().st_size / 2**20
    assert size_mb < 20


def test_loads_offline_and_generates_8_tokens(tiny_model_dir):
    code = f"""
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained({str(tiny_model_dir)!r})
model = AutoModelForCausalLM.from_pretrained({str(tiny_model_dir)!r}, dtype=torch.float32)
ids = tok("[INST] 你好 [/INST]", return_tensors="pt")
out = model.generate(**ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
print(out.shape[1] - ids["input_ids"].shape[1])
"""
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "8"


@pytest.mark.slow
def test_llama_cpp_converts_it_and_agrees_on_ids_and_greedy_tokens(tiny_model_dir, tiny_tokenizer, tmp_path):
    """Early proof for the export stage: same prompt ids and same greedy tokens in llama.cpp as in HF."""
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM

    converter = ROOT / "llama.cpp" / "convert_hf_to_gguf.py"
    assert converter.exists(), "run `make llama.cpp` first"
    gguf = tmp_path / "tiny-f16.gguf"
    result = subprocess.run([sys.executable, str(converter), str(tiny_model_dir), "--outfile", str(gguf),
                             "--outtype", "f16"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    conv = prompts.from_messages([{"role": "system", "content": "你是助手。"},
                                  {"role": "user", "content": "中国的首都是哪里？"}])
    prompt_ids = prompts.render_ids(conv, tiny_tokenizer).prompt_ids
    llm = Llama(model_path=str(gguf), n_ctx=256, verbose=False, seed=0)
    text = prompts.render_text(conv)
    assert llm.tokenize(text.encode(), add_bos=False, special=True) == prompt_ids

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    hf = model.generate(torch.tensor([prompt_ids]), max_new_tokens=12, min_new_tokens=12, do_sample=False)
    hf_new = hf[0, len(prompt_ids):].tolist()
    llm.reset()
    gguf_new = []
    for token in llm.generate(prompt_ids, temp=0.0, top_k=1, reset=True):
        gguf_new.append(token)
        if len(gguf_new) == 12:
            break
    assert gguf_new == hf_new
