"""The one prompt renderer against Meta's own Llama-2 construction, token id for token id.

The reference below is written independently of ftkit.core.prompts, the way Meta's `chat_completion`
builds dialogs, with sentencepiece called directly (dummy prefix on, so a turn starts with "▁[").
"""
import pytest

from ftkit.core import prompts
from ftkit.core.prompts import Conversation, PromptError, Turn


def meta_reference_ids(sp, dialog: list[dict]) -> list[int]:
    """Meta's llama/generation.py chat_completion, for a dialog that may end in an open user turn.

    One deliberate difference, from our spec: every content is stripped, the system prompt too (Meta
    strips the system block only together with the first user message).
    """
    dialog = [dict(m, content=m["content"].strip()) for m in dialog]
    if dialog[0]["role"] == "system":
        dialog = [{"role": dialog[1]["role"],
                   "content": "<<SYS>>\n" + dialog[0]["content"] + "\n<</SYS>>\n\n" + dialog[1]["content"]}] + dialog[2:]
    ids = []
    for user, answer in zip(dialog[::2], dialog[1::2], strict=False):
        ids += [sp.bos_id()] + sp.encode(f"[INST] {user['content'].strip()} [/INST] {answer['content'].strip()} ") + [sp.eos_id()]
    if len(dialog) % 2 == 1:
        ids += [sp.bos_id()] + sp.encode(f"[INST] {dialog[-1]['content'].strip()} [/INST]")
    return ids


DIALOGS = {
    "single-turn chinese": [{"role": "user", "content": "中国的首都是哪里？"},
                            {"role": "assistant", "content": "中国的首都是北京。"}],
    "single-turn english": [{"role": "user", "content": "What is LoRA?"},
                            {"role": "assistant", "content": "A low-rank adapter for fine-tuning."}],
    "mixed with system": [{"role": "system", "content": "你是一个helpful assistant。"},
                          {"role": "user", "content": "请把 apple 翻译成中文。"},
                          {"role": "assistant", "content": "apple 的中文是“苹果”。"}],
    "multi-turn with system": [{"role": "system", "content": "Answer briefly."},
                               {"role": "user", "content": "1 + 1 = ?"},
                               {"role": "assistant", "content": "2"},
                               {"role": "user", "content": "再加三呢？"},
                               {"role": "assistant", "content": "等于5。"}],
    "multi-turn no system": [{"role": "user", "content": "你好"},
                             {"role": "assistant", "content": "你好！有什么可以帮你？"},
                             {"role": "user", "content": "讲个笑话"},
                             {"role": "assistant", "content": "从前有座山。"}],
    "leading and trailing spaces": [{"role": "system", "content": "  be nice \n"},
                                    {"role": "user", "content": "   空格  在 两边   "},
                                    {"role": "assistant", "content": "\n 答案 with  inner  spaces  "}],
    "newlines inside": [{"role": "user", "content": "请总结：\n第一行\n\n第二行"},
                        {"role": "assistant", "content": "两行\n内容"}],
}


@pytest.mark.parametrize("name", DIALOGS)
def test_answered_dialog_ids_equal_meta_reference(name, tiny_tokenizer, sentencepiece_model):
    dialog = DIALOGS[name]
    rendered = prompts.render_ids(prompts.from_messages(dialog), tiny_tokenizer)
    assert rendered.input_ids == meta_reference_ids(sentencepiece_model, dialog)
    # the answer part is exactly the final answer's pieces plus EOS
    answer = dialog[-1]["content"].strip()
    assert rendered.answer_ids[-1] == sentencepiece_model.eos_id()
    assert sentencepiece_model.decode(rendered.answer_ids[:-1]).strip() == answer
    assert rendered.prompt_ids.count(sentencepiece_model.bos_id()) == len(dialog) // 2  # one BOS a turn


@pytest.mark.parametrize("name", DIALOGS)
def test_open_turn_ids_equal_meta_reference(name, tiny_tokenizer, sentencepiece_model):
    dialog = DIALOGS[name][:-1]  # drop the final answer: the model is asked to answer
    rendered = prompts.render_ids(prompts.from_messages(dialog), tiny_tokenizer)
    assert rendered.answer_ids == []
    assert rendered.prompt_ids == meta_reference_ids(sentencepiece_model, dialog)
    assert sentencepiece_model.id_to_piece(rendered.prompt_ids[1]) == "▁["  # dummy prefix after BOS


def test_prompt_of_answered_dialog_equals_open_turn(tiny_tokenizer):
    dialog = DIALOGS["multi-turn with system"]
    answered = prompts.render_ids(prompts.from_messages(dialog), tiny_tokenizer)
    asked = prompts.render_ids(prompts.from_messages(dialog[:-1]), tiny_tokenizer)
    assert answered.prompt_ids == asked.prompt_ids  # train and inference see the same prompt


@pytest.mark.parametrize("name", DIALOGS)
def test_prompt_chars_is_where_the_answer_starts(name):
    conv = prompts.from_messages(DIALOGS[name])
    text = prompts.render_llama2_text(conv)
    assert text[: prompts.llama2_prompt_chars(conv, text)] == prompts.render_llama2_text(conv.without_last_answer())


def test_text_is_exact_llama2_format():
    conv = prompts.from_messages(DIALOGS["multi-turn with system"])
    assert prompts.render_llama2_text(conv) == (
        "<s>[INST] <<SYS>>\nAnswer briefly.\n<</SYS>>\n\n1 + 1 = ? [/INST] 2 </s>"
        "<s>[INST] 再加三呢？ [/INST] 等于5。 </s>")
    open_conv = prompts.from_messages([{"role": "user", "content": " 你好 "}])
    assert prompts.render_llama2_text(open_conv) == "<s>[INST] 你好 [/INST]"


def test_system_block_only_in_first_turn_and_only_when_given():
    with_system = prompts.render_llama2_text(prompts.from_messages(DIALOGS["multi-turn with system"]))
    assert with_system.count("<<SYS>>") == 1 and with_system.index("<<SYS>>") < with_system.index("1 + 1")
    without = prompts.render_llama2_text(prompts.from_messages(DIALOGS["multi-turn no system"]))
    assert "<<SYS>>" not in without
    blank_system = prompts.from_alpaca({"instruction": "hi", "output": "ok", "system": "   "})
    assert blank_system.system is None


def test_text_tokenizes_to_the_same_ids(tiny_tokenizer):
    """The text form (with <s>/</s> as special tokens) is what data files and Ollama carry."""
    conv = prompts.from_messages(DIALOGS["multi-turn with system"])
    text = prompts.render_llama2_text(conv)
    pieces = text.replace("</s>", "</s>\x00").replace("<s>", "\x00<s>\x00").split("\x00")
    ids = []
    for piece in filter(None, pieces):
        if piece in ("<s>", "</s>"):
            ids.append(tiny_tokenizer.convert_tokens_to_ids(piece))
        else:
            ids += tiny_tokenizer.encode(piece, add_special_tokens=False)
    assert ids == prompts.render_ids(conv, tiny_tokenizer).input_ids


def test_alpaca_input_joined_with_newline_and_history():
    conv = prompts.from_alpaca({"instruction": " 翻译 ", "input": " apple ", "output": " 苹果 ",
                                "history": [["你好", "你好！"]], "system": "sys"})
    assert conv == Conversation((Turn("你好", "你好！"), Turn("翻译\napple", "苹果")), "sys")
    assert prompts.from_alpaca({"instruction": "问", "input": "", "output": "答"}).turns == (Turn("问", "答"),)


@pytest.mark.parametrize("record, message", [
    ({"instruction": "", "output": "x"}, "instruction is empty"),
    ({"instruction": "q", "output": "   "}, "output is empty"),
    ({"instruction": 3, "output": "x"}, "instruction must be a string"),
    ({"instruction": "q", "input": ["x"], "output": "x"}, "input must be a string"),
])
def test_bad_alpaca_records_are_refused(record, message):
    with pytest.raises(PromptError, match=message):
        prompts.from_alpaca(record)


@pytest.mark.parametrize("messages, message", [
    ([], "empty"),
    ([{"role": "assistant", "content": "hi"}], "role 'assistant' where 'user'"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "role 'user' where 'assistant'"),
    ([{"role": "system", "content": "s"}], "no user message"),
])
def test_bad_role_order_is_refused(messages, message):
    with pytest.raises(PromptError, match=message):
        prompts.from_messages(messages)


CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def test_a_chat_template_of_no_family_is_never_rendered(tiny_model_dir):
    """A plain ChatML template that no family file claims: refused at once, naming where a family is added."""
    from transformers import AutoTokenizer

    from ftkit.core.cli import UserError

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = CHATML
    with pytest.raises(UserError, match="no family ftkit knows .* ftkit/core/families/"):
        prompts.render_text(prompts.from_messages(DIALOGS["mixed with system"]), tokenizer)


