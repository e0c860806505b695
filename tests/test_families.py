"""Model families: real tokenizers and chat templates on the embedded tiny models, one rendering for
training, evaluation and Ollama, proven token for token and byte for byte."""
import hashlib
import json
import re
import shutil
import unicodedata
from pathlib import Path

import pytest
from conftest import generate_alone, go_render

from ftkit.core import families, ollama, prompts
from ftkit.core.cli import UserError
from ftkit.core.families import qwen2_5
from ftkit.tiny.tiny_tokenizers import reference_cases

ROOT = Path(__file__).resolve().parents[1]
# every family file's family and tiny model runs in every test below: a new file needs no edit here
BPE_FAMILIES = tuple(name for name, family in families.FAMILIES.items() if not family.meta_renderer)
TINY_MODELS = tuple(t.name for f in families.FAMILIES.values() for t in f.tiny_models if t.vocab)  # qwen3-moe too
VOCAB_FILES = {name: families.get(name).tiny_models[0].vocab.vocab_file for name in BPE_FAMILIES}
# what the converter recognises in each tiny tokenizer: the family's own pre-tokenizer, except for Qwen3.5, whose
# vocabulary the submodule ships only as Qwen2's under Qwen3.5's split (ftkit/tiny/tiny_tokenizers.py): its hash is Qwen2's
TINY_PRE = {"qwen3.5": "qwen2"}
# one `make all` per tiny model in make test. Qwen3.5's trains with THINKING=mixed and DeepSeek-R1's with on, so the
# same runs prove thinking modes end to end (tests/test_thinking.py); thinking off is the other families' (Qwen3's)
# and the unit tests'
RUN_THINKING = {"qwen3.5": "mixed", "deepseek-r1": "on"}
# llama.cpp's converter text for the pre-tokenizer hash (conversion/base.py, get_vocab_base_pre)
CHKTXT = ('\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ '
          '🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ '
          '------======= нещо на Български \'\'\'\'\'\'```````""""......!!!!!!?????? I\'ve been \'told he\'s there, '
          '\'RE you sure? \'M not sure I\'ll make it, \'D you like some tea? We\'Ve a\'lL')


def converter_pre_tokenizers() -> dict[str, str]:
    """hash -> name, as llama.cpp's converter (at the pinned commit) recognises pre-tokenizers."""
    text = (ROOT / "llama.cpp" / "conversion" / "base.py").read_text()
    return dict(re.findall(r'if chkhsh == "([0-9a-f]{64})":\s*\n(?:\s*#.*\n)*\s*res = "([^"]+)"', text))


# --- tokenizers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BPE_FAMILIES)
def test_tokenizer_is_the_real_one_as_llama_cpp_knows_it(name, family_tokenizer):
    tokenizer = family_tokenizer(name)
    family = families.get(name)
    digest = hashlib.sha256(str(tokenizer.encode(CHKTXT)).encode()).hexdigest()
    # the converter will accept it (and write this pre-tokenizer into the GGUF); it writes a SentencePiece-style
    # vocabulary (Gemma 4's) itself, naming its tokenizer model, with no hash
    if not family.tiny_models[0].vocab.sentencepiece_style:
        assert converter_pre_tokenizers().get(digest) == TINY_PRE.get(name, family.llama_cpp_pre)
    # transformers normalizes to NFC (Qwen) where llama.cpp does not: text that NFC changes is left out
    cases = [(text, ids) for text, ids in reference_cases(VOCAB_FILES[name]) if unicodedata.normalize("NFC", text) == text]
    assert len(cases) > 40
    wrong = [(text, ids) for text, ids in cases if tokenizer.encode(text, add_special_tokens=False) != ids]
    assert not wrong, wrong[:3]


REAL_IDS = {
    "qwen2.5": {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|vision_start|>": 151652,
                "<tool_call>": 151657, "<|file_sep|>": 151664},
    "qwen3": {"<|im_end|>": 151645, "<tool_response>": 151665, "<think>": 151667, "</think>": 151668},
    "qwen3.5": {"<|im_end|>": 151645, "<think>": 151667, "</think>": 151668},
    "llama3": {"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|finetune_right_pad_id|>": 128004,
               "<|start_header_id|>": 128006, "<|eom_id|>": 128008, "<|eot_id|>": 128009, "<|python_tag|>": 128010,
               "<|reserved_special_token_247|>": 128255},
    "deepseek-r1": {"<｜end▁of▁sentence｜>": 151643, "<｜User｜>": 151644, "<｜Assistant｜>": 151645,
                    "<｜begin▁of▁sentence｜>": 151646, "<think>": 151648, "</think>": 151649, "<|file_sep|>": 151664},
    "gemma4": {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<|think|>": 98, "<|channel>": 100, "<channel|>": 101,
               "<|turn>": 105, "<turn|>": 106},
}
# (model type, vocabulary, context, tied embeddings) of each family's real checkpoint
REAL_CONFIGS = {"qwen2.5": ("qwen2", 151936, 32768, True), "qwen3": ("qwen3", 151936, 40960, True),
                "qwen3.5": ("qwen3_5_text", 151936, 262144, True), "llama3": ("llama", 128256, 131072, False),
                "deepseek-r1": ("qwen2", 151936, 131072, False), "gemma4": ("gemma4_text", 262144, 262144, True)}


@pytest.mark.parametrize("name", BPE_FAMILIES)
def test_special_tokens_at_their_real_ids_and_the_real_architecture(name, family_model, family_tokenizer):
    tokenizer = family_tokenizer(name)
    family = families.get(name)
    for token in (family.end_of_turn, *family.stops, *filter(None, [family.bos_text])):
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1, token  # every marker is one token
    for token, token_id in REAL_IDS.get(name, {}).items():
        assert tokenizer.convert_tokens_to_ids(token) == token_id, token
        assert tokenizer.encode(token, add_special_tokens=False) == [token_id]  # one token, never split
    config = json.loads((family_model(name) / "config.json").read_text())
    assert (config["model_type"], config["vocab_size"], config["max_position_embeddings"],
            config["tie_word_embeddings"]) == REAL_CONFIGS.get(name, (config["model_type"], len(tokenizer), *[
                config[k] for k in ("max_position_embeddings", "tie_word_embeddings")]))
    assert config["num_key_value_heads"] < config["num_attention_heads"]  # grouped-query attention
    if name == "llama3":
        assert config["rope_parameters"]["rope_type"] == "llama3"
    from safetensors import safe_open

    with safe_open(family_model(name) / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert ("model.layers.0.self_attn.q_proj.bias" in keys) == (name in ("qwen2.5", "deepseek-r1"))  # Qwen2: q/k/v bias
    assert ("model.layers.0.self_attn.q_norm.weight" in keys) == (name in ("qwen3", "gemma4"))  # q/k norms
    if name == "qwen3.5":  # hybrid: Gated DeltaNet layers, then gated attention (q_proj twice as wide: the gate)
        assert config["layer_types"] == ["linear_attention"] * 3 + ["full_attention"]
        assert {"model.layers.0.linear_attn.in_proj_qkv.weight", "model.layers.0.linear_attn.conv1d.weight",
                "model.layers.0.linear_attn.A_log", "model.layers.3.self_attn.q_norm.weight"} <= keys
        with safe_open(family_model(name) / "model.safetensors", "pt") as f:
            q = f.get_slice("model.layers.3.self_attn.q_proj.weight").get_shape()
        assert q[0] == 2 * config["num_attention_heads"] * config["head_dim"]
    generation = json.loads((family_model(name) / "generation_config.json").read_text())
    assert families.end_of_turn_id(tokenizer) in generation["eos_token_id"]
    assert tokenizer.pad_token_id != families.end_of_turn_id(tokenizer)  # padding never hides the end of a turn


# --- detection -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BPE_FAMILIES)
def test_family_is_detected_from_the_model(name, family_tokenizer):
    assert families.family_of(family_tokenizer(name)).name == name


# a real ChatML model of no known family, with a default system prompt of its own (the new user)
OWN_CHATML = ("{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are Xiaoyu, a helpful assistant.<|im_end|>\n"
              "{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
              "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def model_copy(source: Path, folder: Path, template: str | None = None) -> Path:
    """A model folder like `source` (its tokenizer and config, no weights) with another chat template."""
    folder.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json", "chat_template.jinja"):
        if (source / name).exists():
            shutil.copy(source / name, folder / name)
    if template is not None:
        (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    return folder


def test_llama2_is_detected_without_a_template_and_a_model_of_no_family_stops_the_first_stage(
        tiny_tokenizer, family_model, tmp_path):
    import subprocess
    import sys

    from ftkit.core.io import write_json_atomic
    from ftkit.stages.data import sample_data

    assert families.detect(tiny_tokenizer).name == "llama2"
    model = model_copy(family_model("qwen2.5"), tmp_path / "xiaoyu-7b-chat", OWN_CHATML)
    write_json_atomic(tmp_path / "raw.json", sample_data.generate(num=20))
    script = [sys.executable, str(ROOT / "scripts" / "prepare_data.py"), "--input", str(tmp_path / "raw.json"),
              "--tokenizer", str(model), "--output-dir", str(tmp_path / "data")]
    for family in ([], ["--family", "qwen2.5"]):  # detected as none; named as one it does not render as
        result = subprocess.run(script + family, capture_output=True, text=True, timeout=120)
        assert result.returncode != 0
        [line] = [line for line in result.stderr.splitlines() if "error" in line.lower()]
        assert "xiaoyu-7b-chat" in line and "ftkit/core/families/" in line and "FAMILY=" in line, line
        assert ", ".join(families.FAMILIES) in line or "You are Xiaoyu" in line, line
        assert not any((tmp_path / "data").glob("*.jsonl"))  # nothing written


def test_a_model_named_as_an_alias_is_detected_as_its_family_and_the_log_says_so(family_model, tmp_path, caplog):
    import logging

    from ftkit.core.loading import load_tokenizer

    model = model_copy(family_model("qwen3.5"), tmp_path / "Qwen3.8-9B")  # Qwen3.8: Qwen3.5's architecture and template
    with caplog.at_level(logging.INFO):
        assert families.family_of(load_tokenizer(str(model))).name == "qwen3.5"
    assert "qwen3.8 is an alias of qwen3.5" in caplog.text
    assert families.get("Qwen3.8").name == "qwen3.5" and families.tiny_model("qwen3.8")[1].name == "qwen3.5"


def test_a_family_file_is_all_a_new_family_needs(family_model, tmp_path, monkeypatch):
    """The registry collects every file of the package: one more file, and a model of that format is known."""
    from ftkit.core.loading import load_tokenizer

    (tmp_path / "xiaoyu.py").write_text(
        "from ftkit.core.families._family import Family\n"
        "FAMILY = Family('xiaoyu', 'Xiaoyu (ChatML)', '<|im_end|>', ('<|im_start|>', '<|im_end|>'), 'TEMPLATE',\n"
        "                detects=lambda template, config: 'You are Xiaoyu' in template)\n", encoding="utf-8")
    monkeypatch.setattr(families, "__path__", [*families.__path__, str(tmp_path)])
    monkeypatch.setattr(families, "FAMILIES", families._collect())
    model = model_copy(family_model("qwen2.5"), tmp_path / "xiaoyu-7b-chat", OWN_CHATML)
    assert families.family_of(load_tokenizer(str(model))).name == "xiaoyu"


def test_a_wrong_family_override_is_refused(family_model):
    from ftkit.core.loading import load_tokenizer

    with pytest.raises(UserError, match="<\\|eot_id\\|>"):
        load_tokenizer(str(family_model("qwen2.5")), family="llama3")


# --- training rendering ----------------------------------------------------------------------------

DIALOG = [{"role": "system", "content": "你是一个地理老师。"}, {"role": "user", "content": "中国的首都是哪里？"},
          {"role": "assistant", "content": "北京。"}, {"role": "user", "content": "日本的呢？"},
          {"role": "assistant", "content": "日本的首都是东京。"}]


@pytest.mark.parametrize("name", BPE_FAMILIES)
def test_labels_cover_the_answer_and_its_end_of_turn_and_the_prompt_is_the_generation_prompt(name, family_tokenizer):
    tokenizer = family_tokenizer(name)
    family = families.get(name)
    conv = prompts.from_messages(DIALOG)
    rendered = prompts.render_ids(conv, tokenizer)
    asked = prompts.render_ids(conv.without_last_answer(), tokenizer)
    assert rendered.prompt_ids == asked.prompt_ids  # trained on exactly the prompt used at inference
    assert rendered.answer_ids[-1] == tokenizer.convert_tokens_to_ids(family.end_of_turn)
    assert tokenizer.decode(rendered.answer_ids[:-1]).strip() == "日本的首都是东京。"  # DeepSeek-R1: after "\n\n"
    # the same ids as the model's own (unpinned) chat template, rendered by transformers with the training's choices
    real = tokenizer.apply_chat_template(DIALOG[:-1], add_generation_prompt=True, tokenize=False,
                                         chat_template=families.original_template(tokenizer.chat_template), **family.pins)
    assert tokenizer.encode(real, add_special_tokens=False) == asked.prompt_ids
    if family.bos_text:
        assert asked.prompt_ids.count(tokenizer.convert_tokens_to_ids(family.bos_text)) == 1  # BOS once


def test_qwen3_thinking_off_agrees_between_training_and_inference(family_tokenizer):
    tokenizer = family_tokenizer("qwen3")
    conv = prompts.from_messages(DIALOG)
    prompt = prompts.render_text(conv.without_last_answer(), tokenizer)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    full = prompts.render_text(conv, tokenizer)
    assert full == prompt + "日本的首都是东京。<|im_end|>\n"
    assert full.count("<think>") == 1  # history answers carry no think block, as the real template renders them


def test_qwen25_default_system_is_in_the_training_text(family_tokenizer):
    tokenizer = family_tokenizer("qwen2.5")
    text = prompts.render_text(prompts.from_alpaca({"instruction": "你好", "output": "你好！"}), tokenizer)
    assert text.startswith(f"<|im_start|>system\n{qwen2_5.DEFAULT_SYSTEM}<|im_end|>\n")


@pytest.mark.slow
@pytest.mark.parametrize("name", BPE_FAMILIES)
def test_data_and_training_rows_from_the_one_renderer(name, family_model, family_tokenizer, tmp_path):
    from ftkit.core.io import write_json_atomic
    from ftkit.stages.data import sample_data
    from ftkit.stages.data.prepare import PrepareConfig, prepare
    from ftkit.stages.train.train import encode_split

    write_json_atomic(tmp_path / "raw.json", sample_data.generate(num=40))
    prepare(PrepareConfig(inputs=[str(tmp_path / "raw.json")], output_dir=str(tmp_path), tokenizer=str(family_model(name))))
    tokenizer = family_tokenizer(name)
    record = json.loads((tmp_path / "train_train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert record["text"] == prompts.render_text(prompts.from_messages(record["messages"]), tokenizer)
    row = encode_split(str(tmp_path / "train_train.jsonl"), tokenizer, 1024).rows[0]
    ids = prompts.render_ids(prompts.from_messages(record["messages"]), tokenizer)
    assert row["input_ids"] == ids.input_ids
    assert row["labels"] == [-100] * len(ids.prompt_ids) + ids.answer_ids


# --- the Ollama TEMPLATE, filled the way Ollama fills it ----------------------------------------------

def generation_prompt(name: str, tokenizer, messages: list[dict]) -> str:
    """What the model was trained to answer: the HF chat template's generation prompt (Llama-2: Meta's
    construction), without the first BOS, which llama.cpp adds as an id."""
    family = families.get(name)
    if family.meta_renderer:
        text = prompts.render_llama2_text(prompts.from_messages(messages))
    else:
        text = prompts.render_text(prompts.from_messages(messages), tokenizer)
    if family.bos_text:
        assert text.startswith(family.bos_text)
        text = text[len(family.bos_text):]
    return text


SHAPES = {  # (chat messages, the Modelfile's SYSTEM)
    "one turn, default system": ([{"role": "user", "content": "中国的首都是哪里？"}], ""),
    "system in the chat": ([{"role": "system", "content": "你是一个地理老师。"}, {"role": "user", "content": "日本的首都是哪里？"}], ""),
    "system from the Modelfile": ([{"role": "user", "content": "日本的首都是哪里？"}], "你是一个地理老师。"),
    "multi-turn with history": (DIALOG[:-1], ""),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ("llama2", *BPE_FAMILIES))
def test_ollama_template_renders_the_training_prompt_byte_for_byte(name, shape, family_tokenizer, tiny_tokenizer):
    tokenizer = tiny_tokenizer if name == "llama2" else family_tokenizer(name)
    messages, modelfile_system = SHAPES[shape]
    as_trained = messages if not modelfile_system else [{"role": "system", "content": modelfile_system}] + messages
    expected = generation_prompt(name, tokenizer, as_trained)
    assert go_render(families.get(name).ollama_template, messages, modelfile_system) == expected


def test_the_harness_catches_a_template_without_the_default_system(family_tokenizer):
    tokenizer = family_tokenizer("qwen2.5")
    messages = SHAPES["one turn, default system"][0]
    broken = qwen2_5.OLLAMA_TEMPLATE.replace(qwen2_5.DEFAULT_SYSTEM, "")
    assert go_render(broken, messages) != generation_prompt("qwen2.5", tokenizer, messages)


@pytest.mark.parametrize("name", ("llama2", *BPE_FAMILIES))
def test_modelfile_has_the_family_template_and_every_stop(name, tmp_path):
    family = families.get(name)
    path = ollama.write_modelfile(tmp_path / "Modelfile", str(tmp_path / "m-Q4_K_M.gguf"), family=family, num_ctx=4096)
    assert ollama.template_of(path) == family.ollama_template
    assert ollama.stops_of(path) == list(family.stops) and family.end_of_turn in family.stops
    assert ollama.family_of_modelfile(path) == name


# --- the whole pipeline, per family ------------------------------------------------------------------

def acceptance_of(run: Path) -> dict[str, str]:
    return {item["key"]: item["status"] for item in json.loads((run / "reports" / "acceptance.json").read_text())["items"]}


def modelfile_verdict_ok(status: str, evidence: str) -> bool:
    """deploy.modelfile passed, or warned only that a quantized type costs more than its margins (the Modelfile
    itself, TEMPLATE, stops, PARSER, is right: any fault there is a FAIL)."""
    return status == "PASS" or (status == "WARN" and "beyond the margins" in evidence)


def modelfile_ok(run: Path) -> bool:
    [item] = [i for i in json.loads((run / "reports" / "acceptance.json").read_text())["items"]
              if i["key"] == "deploy.modelfile"]
    return modelfile_verdict_ok(item["status"], item["evidence"])


@pytest.mark.slow
@pytest.mark.parametrize("name", TINY_MODELS)
def test_make_all_passes_acceptance_for_the_family(name, family_run):
    run, result, _ = family_run(name, RUN_THINKING.get(name, "off"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    statuses = acceptance_of(run)
    assert "FAIL" not in statuses.values(), statuses
    # the Modelfile is the family's (a WARN here is only the advice of a smaller GGUF type's cost, measured on
    # 15 test records)
    assert modelfile_ok(run) and statuses["deploy.quality"] in ("PASS", "WARN")
    assert statuses["deploy.parity"] == "PASS"  # every Ollama path and llama-server render the training prompt
    assert ollama.family_of_modelfile(run / "gguf" / "Modelfile") == families.tiny_model(name)[0].name
    general = json.loads((run / "reports" / "eval_general.json").read_text())  # the family's chat template asked
    assert list(general["models"]) == ["base", "fine-tuned", "F16", "Q4_K_M"] and general["benchmark"]["format"] == "chat"
    assert general["benchmark"]["questions"] == 45 and statuses["eval.forgetting"] in ("PASS", "WARN")
    assert "General ability (multiple choice" in (run / "reports" / "training_report.md").read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("name", BPE_FAMILIES)
def test_the_gguf_tokenizes_like_hf_and_ends_turns_like_the_family(name, family_run):
    from llama_cpp import Llama

    from ftkit.core.loading import load_tokenizer

    run, result, _ = family_run(name, RUN_THINKING.get(name, "off"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((run / "gguf" / "quant_report.json").read_text())
    v = report["verification"]
    for quant in report["files"]:
        assert v[quant]["token_ids"]["identical"] == v[quant]["token_ids"]["prompts"] == 3, v[quant]["token_ids"]
    assert v["F16"]["greedy_vs_hf"]["identical"] == v["F16"]["greedy_vs_hf"]["prompts"]  # same answers as HF
    q4 = report["files"]["Q4_K_M"]
    # the tiny models' widths are multiples of 256: every weight is a k-quant, none falls back
    assert q4["fallback_tensors"] == 0 and set(q4["tensor_types"]) == {"q4_K", "q6_K"}, q4
    tokenizer = load_tokenizer(str(run / "model" / "merged_model"))
    family = families.get(name)
    llm = Llama(model_path=report["files"]["F16"]["path"], vocab_only=True, verbose=False)
    meta = llm.metadata
    pre = meta.get("tokenizer.ggml.pre", meta["tokenizer.ggml.model"])  # Gemma 4: its tokenizer model is its own
    assert pre == TINY_PRE.get(name, family.llama_cpp_pre)  # the converter recognised it
    # llama.cpp ends generation at the end of a turn: it is the GGUF's EOS, or one llama.cpp knows as an end
    # (Gemma 4's EOS is <eos>, and <turn|> ends a turn)
    import llama_cpp

    end = families.end_of_turn_id(tokenizer)
    assert llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(llm.model), end)
    assert int(meta["tokenizer.ggml.eos_token_id"]) in (end, tokenizer.eos_token_id)
    # llama.cpp's own tokenizer: a conversation's generation prompt gives HF's ids, BOS once
    conv = prompts.from_messages(DIALOG[:-1])
    text = prompts.render_text(conv, tokenizer)
    assert llm.tokenize(text.encode(), add_bos=False, special=True) == prompts.render_ids(conv, tokenizer).prompt_ids
    # the merged model carries what export and serving need
    merged = run / "model" / "merged_model"
    for name_ in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        assert (merged / name_).exists(), name_
    del llm


@pytest.mark.slow
@pytest.mark.parametrize("name", BPE_FAMILIES)
def test_generation_stops_at_the_end_of_turn_in_hf_and_in_llama_cpp(name, family_run):
    """A model that always answers 'x <end of turn>' stops there, in transformers and in llama.cpp."""
    from ftkit.core.inference import Decoding, GGUFChatModel, HFChatModel
    from ftkit.core.loading import load_hf, load_tokenizer

    run, result, _ = family_run(name, RUN_THINKING.get(name, "off"))
    assert result.returncode == 0, result.stderr[-3000:]
    merged = str(run / "model" / "merged_model")
    tokenizer = load_tokenizer(merged)
    end = families.end_of_turn_id(tokenizer)
    # a direct answer (think=false, for the run trained with thinking): the turn's end is what is learned here
    ids = prompts.render_ids(prompts.from_alpaca({"instruction": "你好"})._replace(think=False), tokenizer).prompt_ids
    hf = HFChatModel(load_hf(merged), tokenizer, "merged")
    gguf = GGUFChatModel(str(run / "gguf" / f"{name}-finetuned-F16.gguf"), tokenizer)
    assert end in hf.stop_ids and end in gguf.stop_ids
    for model in (hf, gguf):
        out = model.generate([ids], Decoding(max_new_tokens=64))[0]
        assert end not in out.token_ids
        assert len(out.token_ids) < 64  # the fine-tuned tiny model learned to end its turn


@pytest.mark.slow
@pytest.mark.parametrize("name", BPE_FAMILIES)
def test_a_modelfile_without_a_stop_or_the_default_system_fails_acceptance(name, family_run, tmp_path):
    from ftkit.acceptance import Thresholds, run_checks
    from ftkit.core.artifacts import Paths

    run, result, _ = family_run(name, RUN_THINKING.get(name, "off"))
    assert result.returncode == 0, result.stderr[-3000:]
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("*.lock"))
    paths = Paths(str(copy / "data"), "train", str(copy / "model"), str(copy / "reports" / "evaluation_results.csv"),
                  str(copy / "gguf"), str(copy / "reports" / "training_report.md"))
    modelfile = copy / "gguf" / "Modelfile"
    original = modelfile.read_text()
    family = families.get(name)

    def modelfile_status(text):
        modelfile.write_text(text)
        [item] = run_checks(paths, Thresholds(min_records=10), only={"deploy.modelfile"})
        return "PASS" if modelfile_verdict_ok(item.status, item.evidence) else item.status

    assert modelfile_status(original) == "PASS"
    assert modelfile_status(original.replace(f'PARAMETER stop "{family.end_of_turn}"\n', "")) == "FAIL"
    template = ollama.template_of(modelfile)
    assert modelfile_status(original.replace(template, template.replace("\n", "\n\n", 1))) == "FAIL"  # one newline more
    if family.default_system:
        assert modelfile_status(original.replace(family.default_system, "")) == "FAIL"


@pytest.mark.slow
@pytest.mark.xdist_group("family-qwen3.5")
def test_shrinking_greedy_batches_equal_generate_through_linear_attention_caches(family_run):
    """Qwen3.5's Gated DeltaNet layers keep recurrent states, not keys and values: rows that end leave the batch
    from those too, and every row's tokens are what transformers' generate gives it alone."""
    from ftkit.core.inference import Decoding, HFChatModel
    from ftkit.core.loading import load_hf, load_tokenizer

    run, result, _ = family_run("qwen3.5", RUN_THINKING["qwen3.5"])
    assert result.returncode == 0, result.stderr[-3000:]
    merged = str(run / "model" / "merged_model")
    tokenizer = load_tokenizer(merged)
    model = HFChatModel(load_hf(merged), tokenizer, "merged")
    records = [json.loads(line) for line in (run / "data" / "train_test.jsonl").read_text(encoding="utf-8").splitlines()]
    ids = [prompts.render_ids(prompts.from_messages(r["messages"]).without_last_answer(), tokenizer).prompt_ids
           for r in records[:12]]
    reference = generate_alone(model.model, ids, 24, model.stop_ids, tokenizer.pad_token_id)
    batched = model.generate(ids, Decoding(max_new_tokens=24), batch_size=len(ids))
    assert [g.token_ids for g in batched] == reference
    assert len({len(r) for r in reference}) > 1  # answers of different lengths: rows really left the batch early


@pytest.mark.slow
@pytest.mark.xdist_group("family-qwen3-moe")
def test_the_mixture_of_experts_trains_attention_experts_and_router_with_its_loss_and_converts_as_qwen3moe(
        family_run, family_model):
    """make all on the tiny Qwen3 MoE (FAMILY=qwen3): LoRA adapts attention, every expert's fused weights and the
    router (PEFT's all-linear on transformers' MoE layout), training adds the router's load-balancing loss, and
    llama.cpp converts the merged model as qwen3moe with its experts."""
    from llama_cpp import Llama

    run, result, _ = family_run("qwen3-moe")
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((run / "model" / "run_manifest.json").read_text())
    assert manifest["lora_dropout_used"] == 0 < manifest["arguments"]["lora_dropout"]  # PEFT's expert adapters need 0
    assert {"self_attn.q_proj", "self_attn.o_proj", "mlp.experts.gate_up_proj", "mlp.experts.down_proj",
            "mlp.gate"} <= set(manifest["lora_modules"]), manifest["lora_modules"]
    steps = [json.loads(line) for line in (run / "model" / "train_log.jsonl").read_text().splitlines()]
    assert [s["aux_loss"] for s in steps if "loss" in s] and all(s["aux_loss"] > 0 for s in steps if "loss" in s)
    report = json.loads((run / "gguf" / "quant_report.json").read_text())
    meta = Llama(model_path=report["files"]["F16"]["path"], vocab_only=True, verbose=False).metadata
    assert meta["general.architecture"] == "qwen3moe"
    assert (int(meta["qwen3moe.expert_count"]), int(meta["qwen3moe.expert_used_count"])) == (4, 2)
    # llama.cpp's adapter converter cannot carry LoRA on weight tensors: the adapter export says so before it starts
    from ftkit.stages.export.adapter_export import check_convertible

    with pytest.raises(UserError, match="mixture of experts.*make gguf"):
        check_convertible(run / "model" / "lora_adapter", family_model("qwen3-moe"))
