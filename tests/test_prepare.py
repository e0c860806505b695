"""Data stage: every format and encoding, every rejection reason, dedup before split, no leakage,
determinism, and the one-line error contract of scripts/prepare_data.py."""
import csv
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_script

from ftkit.core.readers import InputError, read_records
from ftkit.stages.data import sample_data
from ftkit.stages.data.prepare import PrepareConfig, normalise, prepare

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("train", "validation", "test")

GOOD = [
    {"instruction": "中国的首都是哪里？", "input": "", "output": "中国的首都是北京。", "category": "首都"},
    {"instruction": "请把下面的英文单词翻译成中文。", "input": "apple", "output": "“apple”的中文意思是“苹果”。", "category": "翻译"},
    {"instruction": "3 + 4 等于多少？", "input": "", "output": "3 + 4 = 7。", "category": "算术"},
    {"instruction": "什么是微调？", "input": "", "output": "微调是在预训练模型上继续训练。", "category": "定义"},
    {"instruction": "写一句关于春天的话，\n要押韵。", "input": "", "output": "春风吹，\n花儿开。", "category": "写作"},
]


def run_prepare(tmp_path, inputs, tokenizer=None, **kwargs):
    config = PrepareConfig(inputs=[str(p) for p in inputs], output_dir=str(tmp_path / "out"), tokenizer=tokenizer, **kwargs)
    summary = prepare(config)
    out = Path(config.output_dir)
    splits = {s: [json.loads(x) for x in (out / f"train_{s}.jsonl").read_text(encoding="utf-8").splitlines()] for s in SPLITS}
    rejected = [json.loads(x) for x in (out / "train_rejected.jsonl").read_text(encoding="utf-8").splitlines()]
    stats = json.loads((out / "train_stats.json").read_text(encoding="utf-8"))
    # the accounting identity, on every file any test prepares
    assert summary.kept + sum(summary.rejected.values()) + sum(summary.duplicates.values()) == summary.input_records
    assert sum(len(v) for v in splits.values()) == summary.kept
    assert len(rejected) == sum(summary.rejected.values()) + sum(summary.duplicates.values())
    c = stats["counts"]
    assert c["kept"] + c["rejected"] + c["duplicates"] == c["input"]
    return summary, splits, rejected, stats


def write_json(path, records, encoding="utf-8"):
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding=encoding)
    return path


def write_jsonl(path, records, encoding="utf-8"):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding=encoding)
    return path


def write_csv(path, records, delimiter=",", encoding="utf-8", fields=("instruction", "input", "output", "category")):
    with open(path, "w", encoding=encoding, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), delimiter=delimiter)
        writer.writeheader()
        for r in records:
            writer.writerow({k: r.get(k, "") for k in fields})
    return path


def outputs(splits):
    return sorted((r["instruction"], r["input"], r["output"]) for rows in splits.values() for r in rows)


EXPECTED = sorted((r["instruction"], r["input"], r["output"]) for r in GOOD)


@pytest.mark.parametrize("writer, suffix", [(write_json, ".json"), (write_jsonl, ".jsonl"),
                                            (write_csv, ".csv"), (lambda p, r, **k: write_csv(p, r, "\t", **k), ".tsv")])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_every_format_and_encoding_reads_the_same_records(tmp_path, writer, suffix, encoding):
    path = writer(tmp_path / f"data{suffix}", GOOD, encoding=encoding)
    summary, splits, rejected, _ = run_prepare(tmp_path, [path])
    assert rejected == []
    assert outputs(splits) == EXPECTED  # no mojibake: the Chinese text survives every encoding


def test_csv_with_embedded_newlines_quotes_and_commas(tmp_path):
    path = tmp_path / "tricky.csv"
    path.write_text('instruction,output\n"第一行\n第二行, 带逗号","他说：""你好""，\n然后走了。"\n简单问题,简单回答\n',
                    encoding="utf-8")
    records = list(read_records(str(path)))
    assert [(r.line, r.index) for r in records] == [(2, 0), (5, 1)]  # the first record spans lines 2-4
    _, splits, _, _ = run_prepare(tmp_path, [path])
    assert ("第一行\n第二行, 带逗号", "", "他说：“你好”，\n然后走了。".replace("“", '"').replace("”", '"')) in outputs(splits)


def test_sharegpt_and_messages_and_columns(tmp_path):
    sharegpt = write_jsonl(tmp_path / "sg.jsonl", [{"conversations": [
        {"from": "system", "value": "你是助手"}, {"from": "human", "value": "你好"}, {"from": "gpt", "value": "你好！"},
        {"from": "human", "value": "1+1=?"}, {"from": "gpt", "value": "2"}]}])
    messages = write_jsonl(tmp_path / "msg.jsonl", [{"messages": [
        {"role": "user", "content": "天空是什么颜色？"}, {"role": "assistant", "content": "蓝色。"}]}])
    renamed = write_csv(tmp_path / "qa.csv", [{"问题": "水的化学式？", "答案": "H2O"}], fields=("问题", "答案"))
    _, splits, rejected, _ = run_prepare(tmp_path, [sharegpt, messages])
    rows = {r["instruction"]: r for rows in splits.values() for r in rows}
    multi = rows["1+1=?"]
    assert multi["system"] == "你是助手" and len(multi["messages"]) == 5
    assert multi["text"] == "<s>[INST] <<SYS>>\n你是助手\n<</SYS>>\n\n你好 [/INST] 你好！ </s><s>[INST] 1+1=? [/INST] 2 </s>"
    assert rows["天空是什么颜色？"]["output"] == "蓝色。"
    _, splits, _, _ = run_prepare(tmp_path / "c", [renamed], columns={"instruction": "问题", "output": "答案"})
    assert outputs(splits) == [("水的化学式？", "", "H2O")]


REJECTS = [
    ({"input": "x", "output": "y"}, "missing_field"),
    ({"instruction": "q"}, "missing_field"),
    ({"instruction": "", "output": "y"}, "empty_field"),
    ({"instruction": "q", "output": 5}, "not_string"),
    ({"instruction": "q", "output": "  \n "}, "empty_answer"),
    ({"instruction": "q\x07bell", "output": "y"}, "control_characters"),
    ({"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "q"}]}, "bad_role_order"),
    ({"conversations": [{"from": "alien", "value": "q"}]}, "unknown_role"),
    ({"question": "q", "answer": "a"}, "unknown_format"),
    (["not", "an", "object"], "not_an_object"),
    ({"instruction": "太长" * 700, "output": "y"}, "too_long"),
]


def test_each_rejection_reason_is_recorded_with_file_and_line(tmp_path, tiny_model_dir):
    path = write_jsonl(tmp_path / "bad.jsonl", [r for r, _ in REJECTS] + GOOD)
    summary, splits, rejected, stats = run_prepare(tmp_path, [path], tokenizer=str(tiny_model_dir), max_length=1024)
    assert [(r["line"], r["reason"]) for r in rejected] == [(i + 1, reason) for i, (_, reason) in enumerate(REJECTS)]
    assert all(r["source"] == str(path) and r["detail"] for r in rejected)
    assert "> --max-length 1024" in rejected[-1]["detail"]
    assert stats["rejected_by_reason"] == {k: sum(1 for _, r in REJECTS if r == k) for _, k in REJECTS}
    assert summary.kept == len(GOOD)


def test_malformed_csv_row_is_rejected(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("instruction,output\n问,答\n多,了,一列\n", encoding="utf-8")
    _, _, rejected, _ = run_prepare(tmp_path, [path])
    assert [(r["line"], r["reason"]) for r in rejected] == [(3, "malformed_row")]


def test_duplicates_removed_before_split_so_no_question_leaks(tmp_path):
    base = sample_data.generate(200, seed=1)
    variants = []
    for r in base[:60]:  # same questions, written differently: full-width, spaces, punctuation, case
        q = r["instruction"]
        variants.append(dict(r, instruction=" " + q.replace("？", "?").replace("，", ",") + "！ ", output="另一个答案"))
    exact = [dict(r) for r in base[60:80]]
    path = write_jsonl(tmp_path / "dups.jsonl", base + variants + exact)
    summary, splits, rejected, stats = run_prepare(tmp_path, [path])
    assert summary.kept == 200 and summary.duplicates["exact"] == 20 and summary.duplicates["normalised"] == 60
    keys = {s: {normalise(r["instruction"] + r["input"]) for r in rows} for s, rows in splits.items()}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["validation"] and not keys["validation"] & keys["test"]
    assert all(r["reason"].startswith("duplicate_") and "#" in r["detail"] for r in rejected)
    assert all(r["output"] != "另一个答案" for rows in splits.values() for r in rows)  # the first one wins


def test_full_width_and_half_width_are_the_same_question():
    assert normalise("ＡＢＣ１２３，你好！") == normalise("abc123, 你好 !")
    assert normalise("2 + 3") != normalise("2 × 3")


def test_split_is_deterministic_stratified_and_sized(tmp_path):
    path = write_json(tmp_path / "s.json", sample_data.generate(240, seed=3))
    _, first, _, stats = run_prepare(tmp_path / "a", [path], seed=7)
    _, again, _, _ = run_prepare(tmp_path / "b", [path], seed=7)
    _, other, _, _ = run_prepare(tmp_path / "c", [path], seed=8)
    assert first == again
    assert [r["id"] for r in first["test"]] != [r["id"] for r in other["test"]]
    assert {s: len(v) for s, v in first.items()} == {"train": 192, "validation": 24, "test": 24}
    categories = {r["category"] for r in sample_data.generate(240, seed=3)}
    for split in ("validation", "test"):  # stratified: every family has unseen members in test
        assert {r["category"] for r in first[split]} == categories, split


@pytest.mark.parametrize("n", [3, 4, 7])
def test_each_split_non_empty_from_three_records(tmp_path, n):
    path = write_jsonl(tmp_path / "few.jsonl", sample_data.generate(n, seed=0))
    summary, splits, _, _ = run_prepare(tmp_path, [path])
    assert all(len(rows) >= 1 for rows in splits.values()), {s: len(r) for s, r in splits.items()}


def test_several_inputs_are_combined_and_sources_kept(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", GOOD[:2])
    b = write_csv(tmp_path / "b.csv", GOOD[2:])
    _, splits, _, stats = run_prepare(tmp_path, [a, b])
    assert outputs(splits) == EXPECTED
    sources = {r["source"].rsplit(":", 1)[0] for rows in splits.values() for r in rows}
    assert sources == {str(a), str(b)}
    assert [i["path"] for i in stats["inputs"]] == [str(a), str(b)]


def test_token_length_percentiles_in_stats(tmp_path, tiny_model_dir):
    path = write_json(tmp_path / "s.json", sample_data.generate(50, seed=0))
    _, splits, _, stats = run_prepare(tmp_path, [path], tokenizer=str(tiny_model_dir))
    lengths = stats["token_lengths"]["total"]
    assert 0 < lengths["p50"] <= lengths["p90"] <= lengths["max"] <= 1024


@pytest.mark.parametrize("content, encoding, message", [
    ('[{"instruction": "a", "output": "b"},\n {"instruction": "c" "output": "d"}]', "utf-8", ":2: invalid JSON"),
    ('{"instruction": "a", "output": "b"}\n{"instruction": oops}\n', "utf-8", ":2: invalid JSON"),
    ('{"instruction": "a", "output": "b"}', "utf-8", "expected a JSON array"),
    ('[{"instruction": "a", "output": "b"}', "utf-8", "the array is not closed"),
])
def test_unparseable_files_name_file_and_line(tmp_path, content, encoding, message):
    suffix = ".jsonl" if "oops" in content else ".json"
    path = tmp_path / f"broken{suffix}"
    path.write_text(content, encoding=encoding)
    with pytest.raises(InputError, match=message):
        run_prepare(tmp_path, [path])
    assert not (tmp_path / "out" / "train_train.jsonl").exists()


def test_undecodable_file_is_an_error_not_mojibake(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(json.dumps({"instruction": "问", "output": "答"}, ensure_ascii=False).encode("utf-8") + b"\n"
                     + b'{"instruction": "\xff\xfe\xfd", "output": "x"}\n')
    with pytest.raises(InputError, match=r"latin.jsonl:2: not valid utf-8"):
        run_prepare(tmp_path, [path], encoding="utf-8")


cli = functools.partial(run_script, "prepare_data.py")


def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{broken\n', encoding="utf-8")
    out = tmp_path / "out"
    result = cli("--input", str(bad), "--output-dir", str(out), "--tokenizer", "none")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {bad}:2: invalid JSON (Expecting property name enclosed in double quotes at column 2)"]
    assert not out.exists() or not any(out.iterdir())


def test_cli_nothing_valid_fails_and_keeps_earlier_outputs(tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    out = tmp_path / "out"
    assert cli("--input", str(good), "--output-dir", str(out), "--tokenizer", "none").returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    empty = write_jsonl(tmp_path / "empty.jsonl", [{"instruction": "", "output": ""}])
    result = cli("--input", str(empty), "--output-dir", str(out), "--tokenizer", "none")
    assert result.returncode == 2 and "no valid record remains" in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing half-written, nothing lost


def test_cli_missing_file_and_warning_below_checklist_minimum(tmp_path):
    result = cli("--input", str(tmp_path / "nope.json"), "--tokenizer", "none")
    assert result.returncode == 2 and result.stderr.strip().endswith("nope.json: no such file")
    few = write_jsonl(tmp_path / "few.jsonl", GOOD)
    result = cli("--input", str(few), "--output-dir", str(tmp_path / "o"), "--tokenizer", "none")
    assert result.returncode == 0 and "3 training records < 100: the acceptance checklist will fail" in result.stderr


def test_guide_steps_1_and_2_verbatim(tmp_path, tiny_model_dir):
    """The guide's commands, with scripts/ for finetune/, run from a project folder."""
    for d in ("scripts", "ftkit"):
        (tmp_path / d).symlink_to(ROOT / d)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny-llama").symlink_to(tiny_model_dir)
    step1 = subprocess.run([sys.executable, "scripts/create_sample_data.py", "--output-dir", "data/sample"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert step1.returncode == 0, step1.stderr
    step2 = cli("--input", "data/sample/sample_data.json", "--input-format", "json", "--format-type", "alpaca",
                "--output-dir", "data/finetune", "--output-name", "train", cwd=tmp_path)
    assert step2.returncode == 0, step2.stderr
    for split in SPLITS:
        assert (tmp_path / "data" / "finetune" / f"train_{split}.jsonl").stat().st_size > 0
    stats = json.loads((tmp_path / "data" / "finetune" / "train_stats.json").read_text())
    assert stats["counts"]["kept"] >= 100 and stats["token_lengths"]["tokenizer"] == "models/tiny-llama"


def test_records_in_no_known_layout_get_their_fields_and_a_columns_mapping(tmp_path):
    from conftest import run_script

    path = write_jsonl(tmp_path / "zh.jsonl", [{"zh_instruction": f"问题{i}", "zh_input": "", "zh_output": f"回答{i}"}
                                               for i in range(20)])
    result = run_script("prepare_data.py", "--input", str(path), "--output-dir", str(tmp_path / "o"), "--tokenizer", "none")
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert "zh_instruction, zh_input, zh_output" in line
    assert "--columns instruction=zh_instruction,input=zh_input,output=zh_output" in line and "make data COLUMNS=" in line
    mapped = run_script("prepare_data.py", "--input", str(path), "--output-dir", str(tmp_path / "o"), "--tokenizer", "none",
                        "--columns", "instruction=zh_instruction,input=zh_input,output=zh_output")
    assert mapped.returncode == 0, mapped.stderr[-2000:]  # the proposed mapping works as printed
    vague = write_jsonl(tmp_path / "v.jsonl", [{"a": "x", "b": "y"}])
    result = run_script("prepare_data.py", "--input", str(vague), "--output-dir", str(tmp_path / "p"), "--tokenizer", "none")
    assert "fields are: a, b" in result.stderr and "--columns instruction=FIELD,output=FIELD" in result.stderr
