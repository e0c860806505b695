"""Thinking models: reasoning traces in the data, THINKING=off|on|mixed, rendered as the real template renders
a reasoning turn, the mode carried by the adapter's template into the GGUF, and Ollama's think=true / think=false
each rendering what training used for that case."""
import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from ftkit.core import families, ollama, prompts
from ftkit.core.cli import UserError
from ftkit.core.families import deepseek_r1
from ftkit.core.families.qwen3 import EMPTY_THINK
from ftkit.stages.data.prepare import PrepareConfig, prepare
from ftkit.verify import deploy_parity

# one record per layout users bring, then the bad ones (with the reason each must be rejected for)
LAYOUTS = [
    {"instruction": "1+1等于几？", "output": "<think>\n先算一下：1加1等于2。\n</think>\n\n等于2。"},
    {"instruction": "2+2等于几？", "output": "等于4。", "reasoning_content": "2加2等于4。"},
    {"instruction": "3+3等于几？", "output": "等于6。", "reasoning": "3加3等于6。"},
    {"instruction": "4+4等于几？", "output": "等于8。", "think": "4加4等于8。"},
    {"instruction": "5+5等于几？", "output": "等于10。"},
    {"instruction": "6+6等于几？", "output": "6加6……</think>等于12。"},  # a Qwen3-thinking output: the opener was in the prompt
    {"conversations": [{"from": "human", "value": "中国的首都是哪里？"},
                       {"from": "gpt", "value": "<think>中国的首都是北京。</think>北京。"}]},
    {"conversations": [{"from": "human", "value": "日本的首都是哪里？"},
                       {"from": "gpt", "value": "东京。", "reasoning_content": "日本首都是东京。"}]},
    {"messages": [{"role": "user", "content": "法国的首都是哪里？"},
                  {"role": "assistant", "content": "巴黎。", "reasoning_content": "法国首都是巴黎。"}]},
    {"messages": [{"role": "user", "content": "德国的首都是哪里？"},
                  {"role": "assistant", "content": "<think>\n德国首都柏林。\n</think>\n\n柏林。"}]},
    {"messages": [{"role": "user", "content": "英国的首都呢？"}, {"role": "assistant", "content": "<think>先想想</think>伦敦。"},
                  {"role": "user", "content": "意大利呢？"},
                  {"role": "assistant", "content": "罗马。", "thinking": "意大利首都罗马。"}]},
]
BAD = [
    ({"instruction": "坏1", "output": "<think>没有结束"}, "unclosed_think"),
    ({"instruction": "坏2", "output": "<think>只有思考</think>"}, "reasoning_without_answer"),
    ({"instruction": "坏3", "output": "<think>a</think>答<think>b</think>c"}, "two_think_blocks"),
    ({"instruction": "坏4", "output": "<think>a</think>答", "reasoning_content": "b"}, "two_traces"),
    ({"instruction": "坏5", "output": "答", "reasoning_content": 5}, "not_string"),
    ({"messages": [{"role": "user", "content": "坏6"}, {"role": "assistant", "content": "<think>x"}]}, "unclosed_think"),
]
TRACES = 10  # the layouts' records with a trace in their final answer (the multi-turn one has two)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def prepared(tmp_path: Path, tokenizer: str | None, family: str | None, thinking: str) -> tuple[object, Path]:
    raw = write_jsonl(tmp_path / "raw.jsonl", LAYOUTS + [record for record, _ in BAD])
    out = tmp_path / f"out-{family}-{thinking}"
    summary = prepare(PrepareConfig(inputs=[str(raw)], output_dir=str(out), tokenizer=tokenizer, family=family,
                                    thinking=thinking, val_ratio=0, test_ratio=0))
    return summary, out


@pytest.fixture(scope="module")
def qwen3_dir(family_model):
    return family_model("qwen3")


def qwen3(qwen3_dir, thinking: str):
    from ftkit.core.loading import load_tokenizer

    return load_tokenizer(str(qwen3_dir), family="qwen3", thinking=thinking)


@pytest.fixture(scope="module")
def thinker(family_model):
    """(family, mode) -> the family's tiny tokenizer bound to that thinking mode."""
    from ftkit.core.loading import load_tokenizer

    return lambda name, mode: load_tokenizer(str(family_model(name)), family=name, thinking=mode)


# --- the data stage ---------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ("llama2", "llama3", "qwen2.5", "qwen3"))
def test_every_reasoning_layout_reaches_every_family_and_bad_traces_are_rejected_with_reasons(
        family, family_model, tiny_model_dir, tmp_path):
    model = tiny_model_dir if family == "llama2" else family_model(family)
    summary, out = prepared(tmp_path, str(model), family, "off")
    assert summary.kept == len(LAYOUTS) and summary.input_records == len(LAYOUTS) + len(BAD)
    rejected = [json.loads(line) for line in (out / "train_rejected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["line"], r["reason"]) for r in rejected] == [(len(LAYOUTS) + 1 + k, reason) for k, (_, reason) in enumerate(BAD)]
    assert all(r["detail"] for r in rejected)
    stats = json.loads((out / "train_stats.json").read_text(encoding="utf-8"))
    # THINKING=off: every trace dropped and counted, every answer trained alone
    assert stats["reasoning"] == {"thinking": "off", "with_reasoning": 0, "without_reasoning": len(LAYOUTS),
                                  "traces_dropped": TRACES}
    records = [json.loads(line) for line in (out / "train_train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert not any("<think>" in r["output"] or r["reasoning"] for r in records)
    assert {r["output"] for r in records} >= {"等于2。", "等于12。", "北京。", "柏林。", "罗马。"}
    if family == "qwen3":
        assert all(r["text"].count("<think>\n\n</think>") == 1 for r in records)  # the empty block of thinking off
    else:
        assert not any("think" in r["text"] for r in records)


def test_a_thinking_mode_keeps_each_trace_apart_from_its_answer(qwen3_dir, tmp_path):
    summary, out = prepared(tmp_path, str(qwen3_dir), "qwen3", "mixed")
    stats = json.loads((out / "train_stats.json").read_text(encoding="utf-8"))
    assert stats["reasoning"] == {"thinking": "mixed", "with_reasoning": TRACES,
                                  "without_reasoning": len(LAYOUTS) - TRACES, "traces_dropped": 0}
    by_answer = {r["output"]: r for r in map(json.loads, (out / "train_train.jsonl").read_text(encoding="utf-8").splitlines())}
    assert by_answer["等于2。"]["reasoning"] == "先算一下：1加1等于2。"
    assert by_answer["等于12。"]["reasoning"] == "6加6……"
    assert by_answer["东京。"]["messages"][-1] == {"role": "assistant", "content": "东京。", "reasoning_content": "日本首都是东京。"}
    assert by_answer["等于10。"]["reasoning"] is None
    rome = by_answer["罗马。"]
    assert rome["reasoning"] == "意大利首都罗马。" and "先想想" not in rome["text"]  # history goes without its reasoning
    assert rome["text"].endswith("<|im_start|>assistant\n<think>\n意大利首都罗马。\n</think>\n\n罗马。<|im_end|>\n")


@pytest.mark.parametrize("family", ("llama2", "qwen2.5"))
def test_a_thinking_mode_is_refused_for_a_family_that_does_not_think(family, family_model, tiny_model_dir, tmp_path):
    from ftkit.core.readers import InputError

    model = tiny_model_dir if family == "llama2" else family_model(family)
    with pytest.raises(InputError, match="has no thinking mode"):
        prepared(tmp_path, str(model), family, "mixed")
    assert not list(tmp_path.glob("out-*/*.jsonl"))  # nothing written


def test_a_record_the_template_cannot_split_is_rejected_and_counted_not_fatal(family_model, tmp_path):
    # a Qwen2.5 template that renders some final answers apart from their generation prompt (as Qwen3's did with
    # an inline <think> block before traces were read): the split fails for that record only
    model = tmp_path / "odd-template"
    tokenizer = AutoTokenizer.from_pretrained(family_model("qwen2.5"))
    tokenizer.chat_template = tokenizer.chat_template.replace(
        "{{- '<|im_start|>' + message.role + '\\n' + message.content",
        "{{- '<|im_start|>' + ('bot' if message.role == 'assistant' and '！' in message.content else message.role)"
        " + '\\n' + message.content", 1)
    assert "'bot'" in tokenizer.chat_template
    tokenizer.save_pretrained(model)
    raw = write_jsonl(tmp_path / "raw.jsonl", [{"instruction": "你好", "output": "你好！"}, {"instruction": "在吗", "output": "在。"}])
    summary = prepare(PrepareConfig(inputs=[str(raw)], output_dir=str(tmp_path / "out"), tokenizer=str(model),
                                    val_ratio=0, test_ratio=0))
    assert summary.kept == 1 and dict(summary.rejected) == {"unsplittable": 1}
    [rejected] = [json.loads(x) for x in (tmp_path / "out" / "train_rejected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rejected["line"] == 1 and "prompt + answer" in rejected["detail"]


# --- rendering: the real template's own, byte for byte ------------------------------------------------

TRACED = {"instruction": "1+1等于几？", "output": "等于2。", "reasoning_content": "1加1等于2。"}
PLAIN = {"instruction": "中国的首都是哪里？", "output": "北京。"}
HISTORY = {"messages": [{"role": "user", "content": "英国的首都呢？"},
                        {"role": "assistant", "content": "伦敦。", "reasoning_content": "英国首都伦敦。"},
                        {"role": "user", "content": "意大利呢？"},
                        {"role": "assistant", "content": "罗马。", "reasoning_content": "意大利首都罗马。"}]}


def conversation(record: dict) -> prompts.Conversation:
    return prompts.from_messages(record["messages"]) if "messages" in record else prompts.from_alpaca(record)


def real(tokenizer, messages: list[dict], generation_prompt: bool, **kwargs) -> str:
    """The model's own (unpinned, unmarked) Qwen3 template, rendered by transformers."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt,
                                         chat_template=families.original_template(tokenizer.chat_template), **kwargs)


@pytest.mark.parametrize("mode", ("on", "mixed"))
@pytest.mark.parametrize("record", (TRACED, PLAIN, HISTORY), ids=("trace", "no-trace", "history"))
@pytest.mark.parametrize("name", ("qwen3", "qwen3.5"))
def test_a_thinking_run_renders_as_the_real_template_renders_a_reasoning_turn(name, mode, record, thinker):
    tokenizer = thinker(name, mode)
    conv = conversation(record)
    messages = conv.to_messages()
    thinking = mode == "on" or conv.turns[-1].reasoning is not None
    # the whole text: the template's own rendering with reasoning_content (past reasoning dropped by the template)
    assert prompts.render_text(conv, tokenizer) == real(tokenizer, messages, False)
    # the prompt: the generation prompt of think=true (thinking) or think=false (the empty block, no loss)
    expected_prompt = real(tokenizer, messages[:-1], True, enable_thinking=thinking)
    ids = prompts.render_ids(conv, tokenizer)
    assert tokenizer.decode(ids.prompt_ids) == expected_prompt
    assert tokenizer.decode(ids.input_ids) == real(tokenizer, messages, False).removesuffix("\n")
    answer = tokenizer.decode(ids.answer_ids)
    opened = "<think>\n" if name == "qwen3" else ""  # Qwen3.5's thinking prompt opens the block itself
    if conv.turns[-1].reasoning:
        assert answer == f"{opened}{conv.turns[-1].reasoning}\n</think>\n\n{conv.turns[-1].answer}<|im_end|>"
    elif mode == "on":  # the empty block is the answer's: the model learns to close it itself
        empty_block = EMPTY_THINK.removeprefix("<think>\n" if not opened else "")
        assert answer == f"{empty_block}{conv.turns[-1].answer}<|im_end|>"
        if not opened:  # the prompt ends inside the "\n\n" token of the whole text: the rest is encoded as generated
            assert ids.answer_ids[:2] == tokenizer.encode("\n</think>", add_special_tokens=False)
    else:  # mixed: the empty block sits in the prompt, as think=false renders it
        assert answer == f"{conv.turns[-1].answer}<|im_end|>" and expected_prompt.endswith(EMPTY_THINK)
    if record is HISTORY:
        assert "英国首都伦敦" not in prompts.render_text(conv, tokenizer)


@pytest.mark.parametrize("mode", ("off", "on", "mixed"))
@pytest.mark.parametrize("record", (TRACED, PLAIN, HISTORY), ids=("trace", "no-trace", "history"))
def test_deepseek_r1_trains_its_generation_prompt_then_the_answer_as_the_model_writes_it(mode, record, thinker):
    """DeepSeek-R1's template renders every past answer without its reasoning, the last one too: the training text
    is the template's history and generation prompt, then the answer as the model writes it after that prompt."""
    tokenizer = thinker("deepseek-r1", mode)
    conv = conversation(record)
    messages = conv.to_messages()
    thinking = mode == "on" or (mode == "mixed" and conv.turns[-1].reasoning is not None)
    prompt = real(tokenizer, messages[:-1], True, enable_thinking=thinking)
    ids = prompts.render_ids(conv, tokenizer)
    assert tokenizer.decode(ids.prompt_ids) == prompt
    assert prompt.endswith("<｜Assistant｜><think>\n" if thinking else "<｜Assistant｜><think>\n</think>")
    last = conv.turns[-1]
    trace = last.reasoning if mode != "off" else None
    expected = (f"{trace or ''}\n</think>\n\n" if thinking else "\n\n") + f"{last.answer}<｜end▁of▁sentence｜>"
    assert tokenizer.decode(ids.answer_ids) == expected
    assert prompts.render_text(conv, tokenizer) == prompt + expected
    assert "英国首都伦敦" not in prompt  # past reasoning dropped, as the template drops it


HUB_DEEPSEEK = "{% if not enable_thinking %}{{- '</think>' -}}{% endif %}"  # the switch llama.cpp's copy adds


def test_a_deepseek_r1_template_without_the_switch_trains_thinking_only_and_ollama_always_opens_the_block(
        family_model, tmp_path):
    """The Hub's DeepSeek-R1-Distill template always opens a think block: THINKING=on is the one mode it allows
    (off and mixed are refused, naming it), and its Modelfile opens the block whatever think says."""
    import shutil

    from ftkit.core.loading import load_tokenizer

    model = tmp_path / "DeepSeek-R1-Distill-Qwen-1.5B"
    shutil.copytree(family_model("deepseek-r1"), model, ignore=shutil.ignore_patterns("*.safetensors"))
    template = (model / "chat_template.jinja").read_text(encoding="utf-8")
    assert HUB_DEEPSEEK in template
    (model / "chat_template.jinja").write_text(template.replace(HUB_DEEPSEEK, ""), encoding="utf-8")
    for mode in ("off", "mixed"):
        with pytest.raises(UserError, match=f"THINKING={mode}: .*always opens a think block.*THINKING=on"):
            load_tokenizer(str(model), thinking=mode)
    tokenizer = load_tokenizer(str(model), thinking="on")
    family = families.family_of(tokenizer)
    assert family.ollama_template == deepseek_r1.ALWAYS_THINKING_OLLAMA_TEMPLATE
    path = ollama.write_modelfile(tmp_path / "Modelfile", str(tmp_path / "m.gguf"), family=family)
    modelfile = ollama.read_modelfile(path)
    chat = [{"role": "user", "content": "你好"}]
    cases = [dict(ollama_case(modelfile, tokenizer.chat_template, chat, think, env), model_family="qwen2")
             for think in (None, True, False) for env in ("", "1")]
    for case, result in zip(cases, deploy_parity.ollama_routes(cases), strict=True):
        rendered = result.get("prompt") or real(tokenizer, chat, True, **result["llama_server"]["chat_template_kwargs"])
        # (llama-server's rendering writes BOS as text, and tokenizes it as the BOS id llama.cpp would add)
        assert rendered.removeprefix(family.bos_text) == real(tokenizer, chat, True).removeprefix(family.bos_text), (
            case["think"], result["path"])
        assert rendered.endswith("<｜Assistant｜><think>\n")


def test_thinking_off_trains_the_answer_alone_even_when_a_trace_is_given(qwen3_dir):
    tokenizer = qwen3(qwen3_dir, "off")
    ids = prompts.render_ids(conversation(TRACED), tokenizer)
    assert tokenizer.decode(ids.prompt_ids).endswith("<|im_start|>assistant\n" + EMPTY_THINK)
    assert tokenizer.decode(ids.answer_ids) == "等于2。<|im_end|>"


def closes_the_block(prompt: str, tokenizer) -> bool:
    """A direct-answer prompt: the think block closed in it (Qwen3: empty block; DeepSeek-R1: `<think>\\n</think>`;
    Gemma 4: an empty thought channel)."""
    return prompt.rstrip().endswith(prompts.think_tags(tokenizer)[1])


@pytest.mark.parametrize("think", (None, True, False))
@pytest.mark.parametrize("name", families.THINKERS)
def test_an_open_chat_gets_the_prompt_of_its_think_request(name, think, thinker):
    tokenizer = thinker(name, "mixed")
    chat = prompts.from_alpaca({"instruction": "你好"})._replace(think=think)
    expected = real(tokenizer, chat.to_messages(), True, **({"enable_thinking": True} if think is None else
                                                           {"enable_thinking": think}))
    assert prompts.render_text(chat, tokenizer) == expected
    assert closes_the_block(expected, tokenizer) == (think is False)


def test_the_mode_travels_in_the_template_and_survives_save_and_reload(qwen3_dir, tmp_path):
    from ftkit.core.loading import load_tokenizer

    tokenizer = qwen3(qwen3_dir, "mixed")
    assert families.thinking_mark(tokenizer.chat_template) == "mixed"
    assert "enable_thinking = false" not in tokenizer.chat_template  # not pinned: the caller's think decides
    assert families.pin_template(tokenizer.chat_template, {}, "mixed") == tokenizer.chat_template  # idempotent
    tokenizer.save_pretrained(tmp_path / "adapter")
    again = load_tokenizer(str(tmp_path / "adapter"))  # a later stage: no flag, the mark decides
    assert families.family_of(again).thinking == "mixed" and families.family_of(again).ollama_parser is None
    off = load_tokenizer(str(tmp_path / "adapter"), thinking="off")  # an explicit mode re-pins
    assert families.thinking_mark(off.chat_template) is None and "enable_thinking = false" in off.chat_template
    assert families.original_template(off.chat_template) == families.original_template(tokenizer.chat_template)
    with pytest.raises(UserError, match="choose off, on or mixed"):
        families.get("qwen3").with_thinking("sometimes")


# --- Ollama: think=true and think=false each render what training used ------------------------------------

def ollama_case(modelfile: ollama.Modelfile, gguf_template: str, chat, think, env, version=ollama.CHECKED_VERSION):
    """One chat request to a model made from `modelfile`, as tests/go/ollama_chat.go takes it."""
    return {"modelfile": {"template": modelfile.template, "system": "", "parser": modelfile.parser or "",
                          "renderer": ""},
            "gguf_chat_template": gguf_template, "model_family": "qwen3", "ollama_version": version,
            "env": {"OLLAMA_GO_TEMPLATE": env}, "messages": chat, "think": think}


ARCHITECTURE = {"qwen3": "qwen3", "qwen3.5": "qwen35", "deepseek-r1": "qwen2", "gemma4": "gemma4"}  # what Ollama reads from the GGUF


@pytest.mark.parametrize("mode", ("off", "on", "mixed"))
@pytest.mark.parametrize("name", families.THINKERS)
def test_each_think_value_renders_its_training_prompt_on_every_ollama_path(name, mode, thinker, tmp_path):
    tokenizer = thinker(name, mode)
    family = families.family_of(tokenizer)
    path = ollama.write_modelfile(tmp_path / "Modelfile", str(tmp_path / "m-Q8_0.gguf"), family=family)
    modelfile = ollama.read_modelfile(path)
    thinks = mode != "off"
    # a thinking run declares thinking (the TEMPLATE's .Thinking) and keeps no PARSER; off keeps the family's
    assert modelfile.parser == (None if thinks else families.get(name).ollama_parser)
    assert ("{{ .Thinking }}" in modelfile.template) == thinks
    chats = [[{"role": "user", "content": "日本的首都是哪里？"}],
             [{"role": "user", "content": "中国的首都是哪里？"}, {"role": "assistant", "content": "北京。"},
              {"role": "user", "content": "日本的呢？"}]]
    cases = [dict(ollama_case(modelfile, tokenizer.chat_template, chat, think, env, version),
                  model_family=ARCHITECTURE[name])
             for chat in chats for think in (None, True, False) for env in ("", "1")
             for version in (ollama.CHECKED_VERSION, ollama.LAST_GO_ONLY_VERSION)]
    routes = deploy_parity.ollama_routes(cases)
    for case, result in zip(cases, routes, strict=True):
        assert ("thinking" in result["capabilities"]) == thinks, result
        if not thinks and case["think"] is True:
            assert result["path"] == "refused" and "does not support thinking" in result["error"]
            continue
        think = case["think"] if case["think"] is not None else thinks  # Ollama's default: think if it can
        trained, _ = deploy_parity.training_prompt(tokenizer, case["messages"], think)
        if result["path"] == "go_template":
            assert result["prompt"] == trained, (case["think"], case["env"], case["ollama_version"])
        else:  # 0.30+: the GGUF's own template in llama-server (a thinking run's told the think value)
            assert result["path"] == "llama_server" and case["env"]["OLLAMA_GO_TEMPLATE"] == ""
            kwargs = result["llama_server"].get("chat_template_kwargs") or {}
            assert kwargs == ({"enable_thinking": think} if thinks or case["think"] is not None else {})
            # the GGUF carries the tokenizer's template (pinned, or marked); its text has the BOS llama.cpp adds
            gguf = tokenizer.apply_chat_template(case["messages"], tokenize=False, add_generation_prompt=True, **kwargs)
            assert gguf.removeprefix(family.bos_text or "") == trained
        # think=false: the direct prompt, after the closed block; think=true: the thinking prompt
        assert closes_the_block(trained, tokenizer) == (not think)
    # which path Ollama takes is its decision (the GGUF's template wins where it declares more, e.g. Gemma 4's
    # tools when thinking is off); every one taken rendered the training prompt above, and only a run trained
    # without thinking refuses think=true
    paths = {r["path"] for r in routes}
    assert "go_template" in paths and ("refused" in paths) == (not thinks)


def test_a_thinking_run_fails_the_check_when_ollama_would_refuse_think(qwen3_dir, tmp_path):
    """The thinking-off Modelfile (PARSER passthrough) on a model trained with thinking: think=true is refused,
    which for this model is a failure, not the expected answer."""
    tokenizer = qwen3(qwen3_dir, "mixed")
    off_modelfile = ollama.read_modelfile(ollama.write_modelfile(tmp_path / "Modelfile", str(tmp_path / "m.gguf"),
                                                                 family=families.get("qwen3")))
    checks = deploy_parity.PromptChecks(server=None, tokenizer=tokenizer)
    cases = [dict(ollama_case(off_modelfile, tokenizer.chat_template, [{"role": "user", "content": "你好"}], True, ""),
                  label={"shape": "one turn", "think": True})]
    checks.ollama(cases)
    assert checks.failures and "refused" in checks.failures[0]["problem"]


# --- evaluation and the REPL ------------------------------------------------------------------------------

def test_evaluation_scores_the_answer_without_its_trace_and_reports_the_trace_length():
    from ftkit.core.inference import Decoding, Generation
    from ftkit.verify import metrics
    from ftkit.verify.task import TestCase, run_model

    class Answers:  # a model that thinks, then answers (its texts given): only scoring is under test here
        name = "finetuned"

        def generate(self, prompt_ids, decoding, batch_size):
            return [Generation("<think>\n北京是首都。\n</think>\n\n北京。", [1, 2, 3], 0.1), Generation("北京。", [4], 0.1)]

        def answer_losses(self, pairs, batch_size):
            return [1.0, 1.0]

    cases = [TestCase(str(i), "中国的首都是哪里？", "", "北京。", [0], [1]) for i in range(2)]
    result = run_model(Answers(), cases, Decoding(), 2, metrics.Scorer())
    assert [r["answer"] for r in result["rows"]] == ["北京。", "北京。"]
    assert [r["exact_match"] for r in result["rows"]] == [1.0, 1.0]
    assert [r["reasoning_chars"] for r in result["rows"]] == [len("北京是首都。"), 0]
    assert result["aggregate"]["answers_with_reasoning"] == 1


@pytest.mark.parametrize("pieces,shown", [
    (["<th", "ink>\n先", "想想", "\n\n", "</think>\n\n", "答", "案"], "(thinking) 先想想\n答案"),
    (["答", "案"], "答案"),
    (["<think>", "只想", "没答"], "(thinking) 只想没答\n"),
])
def test_the_repl_shows_thinking_apart_from_the_answer(pieces, shown):
    from ftkit.stages.evaluate.chat import ThinkingPrinter

    out = []
    printer = ThinkingPrinter(out.append)
    for piece in pieces:
        printer.feed(piece)
    printer.close()
    assert "".join(out) == shown


# --- the whole pipeline: make all FAMILY=qwen3.5 THINKING=mixed ----------------------------------------------
# (the run tests/test_families.py makes for Qwen3.5; `make demo FAMILY=qwen3 THINKING=mixed` is the same code
# on Qwen3's template, whose thinking prompt does not open the block)

@pytest.mark.slow
@pytest.mark.xdist_group("family-qwen3.5")
def test_make_all_with_mixed_thinking_passes_acceptance_and_each_think_value_renders_as_trained(family_run):
    from llama_cpp import Llama

    run, result, _ = family_run("qwen3.5", "mixed")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    items = {i["key"]: i for i in json.loads((run / "reports" / "acceptance.json").read_text())["items"]}
    assert not [k for k, i in items.items() if i["status"] == "FAIL"], items
    # the sample data carried traces, and they were trained
    stats = json.loads((run / "data" / "train_stats.json").read_text())
    assert stats["reasoning"]["thinking"] == "mixed" and stats["reasoning"]["with_reasoning"] >= 50
    assert stats["reasoning"]["without_reasoning"] >= 50  # half of the 150 sample records carry a trace
    # the mode travels: the adapter's and the GGUF's template are marked, not pinned off
    adapter_template = (run / "model" / "lora_adapter" / "chat_template.jinja").read_text(encoding="utf-8")
    assert families.thinking_mark(adapter_template) == "mixed"
    [gguf] = [p for p in (run / "gguf").glob("*-F16.gguf")] or sorted((run / "gguf").glob("*.gguf"))[:1]
    gguf_template = Llama(model_path=str(gguf), vocab_only=True, verbose=False).metadata["tokenizer.chat_template"]
    assert families.thinking_mark(gguf_template) == "mixed"
    # Ollama: the Modelfile declares thinking, and every path, each think value, renders the training prompt
    modelfile = ollama.read_modelfile(run / "gguf" / "Modelfile")
    assert modelfile.parser is None and "{{ .Thinking }}" in modelfile.template
    parity = json.loads((run / "gguf" / "deploy_parity.json").read_text())["Modelfile"]
    assert parity["passed"] and parity["thinking"] == "mixed" and parity["prompts"]["failed"] == 0
    assert {"go_template", "llama_server"} <= set(parity["prompts"]["ollama_paths"])
    assert items["deploy.parity"]["status"] == "PASS"
    # evaluation scored answers without their traces; the fine-tuned model thinks where its records did
    summary = json.loads((run / "reports" / "evaluation_results.csv.summary.json").read_text())
    tuned = summary["aggregate"]["finetuned"]
    assert tuned["answers_with_reasoning"] > 0 and tuned["mean_reasoning_chars"] > 0


def test_the_repl_sets_apart_a_trace_whose_opening_tag_was_in_the_prompt():
    from ftkit.stages.evaluate.chat import ThinkingPrinter

    out = []
    printer = ThinkingPrinter(out.append, opened=True)  # Qwen3.5's thinking prompt ends "<think>\n"
    for piece in ("先想", "想", "\n</think>\n\n", "答案"):
        printer.feed(piece)
    printer.close()
    assert "".join(out) == "(thinking) 先想想\n答案"


@pytest.mark.parametrize("text,opened,expected", [
    ("<think>\n想一想\n</think>\n\n北京。", False, ("想一想", "北京。")),
    ("北京。", False, (None, "北京。")),
    ("<think>\n想到一半", False, ("想到一半", "")),  # the token budget ran out while thinking
    ("想一想\n</think>\n\n北京。", True, ("想一想", "北京。")),  # Qwen3.5: the prompt opened the block
    ("想到一半", True, ("想到一半", "")),
])
def test_a_generation_splits_into_its_trace_and_its_answer(text, opened, expected):
    assert prompts.split_generation(text, opened) == expected
