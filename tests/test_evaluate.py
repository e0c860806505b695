"""Evaluation stage: Chinese-correct metrics, base vs fine-tuned batch evaluation, human sheets, REPL."""
import csv
import functools
import json
from pathlib import Path

import pytest
from conftest import generate_alone, run_script

from ftkit.verify import metrics

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "scripts" / "evaluate_model.py")


eval_cli = functools.partial(run_script, "evaluate_model.py")


def test_rouge_on_chinese_has_the_hand_computed_values():
    scorer = metrics.Scorer()
    # 6 characters each; longest common subsequence 今天天气 (4); bigrams in common 今天 天天 天气 (3 of 5)
    s = scorer.score("今天天气很好", "今天天气不错")
    assert s["rouge1_char"] == pytest.approx(4 / 6)
    assert s["rouge2_char"] == pytest.approx(3 / 5)
    assert s["rougeL_char"] == pytest.approx(4 / 6)
    # same words in another order: every character matches, the LCS is 中国的首都 (5 of 8)
    s = scorer.score("北京是中国的首都", "中国的首都是北京")
    assert s["rouge1_char"] == pytest.approx(1.0) and s["rougeL_char"] == pytest.approx(5 / 8)
    assert scorer.score("中国的首都是北京。", "中国的首都是北京。")["exact_match"] == 1.0
    assert scorer.score("完全不同", "毫无关系")["rougeL_char"] == 0.0
    # the trap this avoids: rouge_score's own tokenizer scores any Chinese pair 0
    from rouge_score import rouge_scorer

    assert rouge_scorer.RougeScorer(["rougeL"]).score("今天天气很好", "今天天气不错")["rougeL"].fmeasure == 0.0


def test_bleu_and_word_rouge_see_chinese():
    scorer = metrics.Scorer()
    s = scorer.score("今天天气很好，我们去公园散步。", "今天天气很好，我们去公园玩。")
    assert 0 < s["bleu"] < 100 and 0 < s["rougeL_word"] < 1


def test_paired_bootstrap_interval():
    a = [0.1, 0.2, 0.3, 0.4, 0.5] * 8
    same = metrics.paired_bootstrap_ci(a, a)
    assert same["delta"] == same["ci_low"] == same["ci_high"] == 0
    shifted = metrics.paired_bootstrap_ci(a, [x + 0.1 for x in a])
    assert shifted["delta"] == pytest.approx(0.1) and shifted["ci_low"] == pytest.approx(0.1)
    noisy = metrics.paired_bootstrap_ci(a, [x + (0.2 if i % 2 else -0.1) for i, x in enumerate(a)])
    assert noisy["ci_low"] < noisy["delta"] < noisy["ci_high"]


@pytest.mark.slow
def test_batch_evaluation_finetuned_beats_base(trained_run, prepared_data, tiny_model_dir, tmp_path):
    output = tmp_path / "evaluation_results.csv"
    sheet = tmp_path / "sheet.csv"
    result = eval_cli("--base-model", str(tiny_model_dir), "--lora-model", str(trained_run / "lora_adapter"),
                      "--test-data", str(prepared_data / "train_test.jsonl"), "--output", str(output),
                      "--human-sheet", str(sheet), "--max-new-tokens", "48")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(Path(f"{output}.summary.json").read_text())
    base, tuned = summary["aggregate"]["base"], summary["aggregate"]["finetuned"]
    assert tuned["rougeL_char"] > base["rougeL_char"]
    assert tuned["loss"] < base["loss"]
    assert summary["finetuned_better_on_primary"] and summary["primary_delta_ci"]["ci_low"] > 0
    assert summary["deltas"]["rougeL_char"] == pytest.approx(tuned["rougeL_char"] - base["rougeL_char"])
    from ftkit.core.io import sha256_file

    assert summary["test_data"]["sha256"] == sha256_file(prepared_data / "train_test.jsonl")
    raw = output.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens the Chinese text correctly
    with open(output, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    test = [json.loads(x) for x in (prepared_data / "train_test.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(test) and [r["reference"] for r in rows] == [t["output"] for t in test]
    for column in ("base_answer", "finetuned_answer", "base_rougeL_char", "finetuned_loss", "finetuned_bleu"):
        assert column in rows[0]
    assert Path(f"{output}.png").read_bytes()[:4] == b"\x89PNG"
    assert "ROUGE-L (char) delta" in result.stdout and "95% CI" in result.stdout

    # the blind sheet: A/B shuffled per row, the key beside the results, away from the sheet
    assert not Path(f"{sheet}.key.json").exists()
    key_doc = json.loads(Path(f"{output}.human_key.json").read_text())
    key = key_doc["rows"]
    assert key_doc["answers_sha256"] == summary["answers_sha256"] and key_doc["adapter"] == summary["models"]["adapter_sha256"]
    assert {v["A"] for v in key.values()} == {"base", "finetuned"}
    with open(sheet, encoding="utf-8-sig", newline="") as f:
        sheet_rows = list(csv.DictReader(f))
    for row in sheet_rows:  # a rater who always prefers the fine-tuned answer
        tuned_side = "A" if key[row["row"]]["A"] == "finetuned" else "B"
        row.update({f"score_{tuned_side}": "4", f"score_{'B' if tuned_side == 'A' else 'A'}": "2", "preference": tuned_side})
    half = [dict(r) for r in sheet_rows]
    half[2]["score_B"] = ""
    for rows_to_write, name in ((half, "half.csv"), (sheet_rows, "sheet.csv")):
        path = tmp_path / name
        with open(path, "w", encoding="utf-8-sig", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(sheet_rows[0]))
            writer.writeheader()
            writer.writerows(rows_to_write)
    bad = eval_cli("--output", str(output), "--import-ratings", str(tmp_path / "half.csv"))
    assert bad.returncode == 2 and "half.csv:4 (row 3): score_B is empty" in bad.stderr and "Traceback" not in bad.stderr
    good = eval_cli("--output", str(output), "--import-ratings", str(sheet))
    assert good.returncode == 0, good.stderr
    human = json.loads(Path(f"{output}.summary.json").read_text())["human_evaluation"]
    assert human["win_rate"] == {"base": 0.0, "finetuned": 1.0}
    assert human["mean_score"] == {"base": 2.0, "finetuned": 4.0} and human["rows"] == len(test)

    # ratings are bound to what was rated: an edited answer, or a summary of other answers, is refused
    edited = [dict(r) for r in sheet_rows]
    edited[0]["answer_A"] += "（改）"
    with open(tmp_path / "edited.csv", "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(sheet_rows[0]))
        writer.writeheader()
        writer.writerows(edited)
    refused = eval_cli("--output", str(output), "--import-ratings", str(tmp_path / "edited.csv"))
    assert refused.returncode == 2 and "not the ones the sheet was written with" in refused.stderr
    summary_file = Path(f"{output}.summary.json")
    retrained = json.loads(summary_file.read_text())
    retrained["answers_sha256"] = "0" * 64  # what a re-evaluation of a retrained adapter records
    del retrained["human_evaluation"]
    summary_file.write_text(json.dumps(retrained))
    refused = eval_cli("--output", str(output), "--import-ratings", str(sheet))
    assert refused.returncode == 2 and "ratings are for other answers" in refused.stderr
    assert "human_evaluation" not in json.loads(summary_file.read_text())


@pytest.mark.slow
def test_interactive_session_through_stdin(trained_run, tiny_model_dir):
    script = "中国的首都是哪里？\n/system 你是一个地理老师。\n日本的首都是哪里？\n/reset\n/finetuned\n法国的首都是哪里？\n/quit\n"
    result = eval_cli("--base-model", str(tiny_model_dir), "--lora-model", str(trained_run / "lora_adapter"),
                      "--interactive", "--max-new-tokens", "16", stdin=script)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert out.count("[base] ") == 2 and out.count("[finetuned] ") == 3  # both, both, then only fine-tuned
    assert "(system prompt: '你是一个地理老师。'; conversation cleared)" in out
    assert "(conversation cleared)" in out and "(answering: finetuned)" in out and out.rstrip().endswith("bye")


def test_session_history_and_system_reach_the_prompt(tiny_tokenizer):
    """The REPL renders history and system prompt through the one renderer."""
    import io

    from ftkit.core import prompts
    from ftkit.core.inference import Decoding
    from ftkit.stages.evaluate.chat import ChatSession

    class Echo:  # records the prompt ids it is given; answers a fixed text
        name = "finetuned"

        def __init__(self):
            self.seen = []

        def stream(self, ids, decoding):
            self.seen.append(ids)
            yield "好的"

    echo = Echo()
    session = ChatSession({"finetuned": echo}, tiny_tokenizer, Decoding(max_new_tokens=4), out=io.StringIO())
    session.repl(io.StringIO("/system 简短回答\n你好\n再见\n/reset\n你好\n"))
    expected = prompts.Conversation((prompts.Turn("你好", "好的"), prompts.Turn("再见")), "简短回答")
    assert echo.seen[1] == prompts.render_ids(expected, tiny_tokenizer).prompt_ids
    assert echo.seen[2] == echo.seen[0]  # after /reset the conversation starts over


def test_batched_greedy_equals_one_by_one(tiny_model_dir, tiny_tokenizer):
    from ftkit.core import prompts
    from ftkit.core.inference import Decoding, load_models
    from ftkit.stages.data import sample_data

    _, base, _ = load_models(str(tiny_model_dir))
    ids = [prompts.render_ids(prompts.from_alpaca({"instruction": r["instruction"]}), tiny_tokenizer).prompt_ids
           for r in sample_data.generate(12, seed=5)]
    decoding = Decoding(max_new_tokens=12)
    one = base.generate(ids, decoding, batch_size=1)
    batched = base.generate(ids, decoding, batch_size=12)
    assert [g.token_ids for g in one] == [g.token_ids for g in batched]
    assert len({len(x) for x in ids}) > 1  # the prompts really needed padding


def test_nothing_to_do_and_bad_paths_are_clear_errors(tmp_path):
    assert eval_cli().returncode == 2
    missing = eval_cli("--lora-model", str(tmp_path), "--test-data", str(tmp_path / "t.jsonl"))
    assert missing.returncode == 2 and "no adapter_config.json" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.parametrize("ending", ["eof", "ctrl-c"])
def test_repl_leaves_cleanly_on_ctrl_d_and_ctrl_c(tiny_tokenizer, ending):
    import io

    from ftkit.core.inference import Decoding
    from ftkit.stages.evaluate.chat import ChatSession

    class Model:
        name = "finetuned"

        def stream(self, ids, decoding):
            yield "好"

    class Keyboard(io.StringIO):
        def readline(self, *args):
            line = super().readline(*args)
            if not line and ending == "ctrl-c":
                raise KeyboardInterrupt
            return line

    out = io.StringIO()
    ChatSession({"finetuned": Model()}, tiny_tokenizer, Decoding(max_new_tokens=2), out=out).repl(Keyboard("你好\n"))
    assert "[finetuned] 好" in out.getvalue() and out.getvalue().rstrip().endswith("bye")


@pytest.mark.slow
def test_shrinking_greedy_batches_equal_transformers_generate(trained_run, tiny_model_dir, tiny_tokenizer):
    """Rows leave the batch when they end; the tokens must be exactly what generate() gives alone."""
    from ftkit.core import prompts
    from ftkit.core.inference import Decoding, load_models
    from ftkit.stages.data import sample_data

    _, _, tuned = load_models(str(tiny_model_dir), str(trained_run / "lora_adapter"), with_base=False)
    ids = [prompts.render_ids(prompts.from_alpaca({"instruction": r["instruction"], "input": r["input"]}),
                              tiny_tokenizer).prompt_ids for r in sample_data.generate(24, seed=7)]
    reference = generate_alone(tuned.model, ids, 24, [tiny_tokenizer.eos_token_id], tiny_tokenizer.pad_token_id)
    batched = tuned.generate(ids, Decoding(max_new_tokens=24), batch_size=24)
    assert [g.token_ids for g in batched] == reference
    lengths = {len(r) for r in reference}
    assert len(lengths) > 1  # answers of different lengths: rows really left the batch early
