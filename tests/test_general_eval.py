"""The general-ability check: the shipped set, the benchmark layouts users download, scoring that equals the
plain per-option computation and lm-evaluation-harness, llama.cpp agreeing with transformers, the figures."""
import calendar
import csv
import datetime
import json
import math
import re
from pathlib import Path

import pytest
from conftest import run_script

from ftkit.stages.evaluate import general_eval, general_set

ROOT = Path(__file__).resolve().parents[1]


# --- the shipped set ------------------------------------------------------------------------------

def test_the_shipped_set_is_what_its_generator_writes():
    written = {str(p.relative_to(general_set.SHIPPED)): p.read_text(encoding="utf-8")
               for p in general_set.SHIPPED.rglob("*") if p.is_file()}
    assert written == general_set.files()  # nobody edited an answer by hand


def test_the_shipped_set_has_eight_subjects_two_hundred_questions_and_balanced_letters():
    benchmark = general_eval.read_benchmark(general_set.SHIPPED)
    assert benchmark.layout == "ceval" and len(benchmark.subjects) >= 8 and len(benchmark.questions) >= 200
    assert all(len(benchmark.shots[s]) == general_set.DEV_PER_SUBJECT for s in benchmark.subjects)
    counts = [benchmark.answers.count(letter) for letter in "ABCD"]
    assert max(counts) - min(counts) <= len(benchmark.subjects)  # no letter wins by being always right
    assert all(len(set(q.options)) == 4 for q in benchmark.questions)
    assert benchmark.names["china_geography"] == "中国地理"  # from its subject_mapping.json


def _right(question) -> str:
    return question.options["ABCD".index(question.answer)]


def _computed(question) -> str | None:
    """The answer worked out again from the question's text, independently of the generator."""
    text = question.question
    if m := re.fullmatch(r"(\d+) ([+\-×÷]) (\d+) 等于多少？", text):
        a, op, b = int(m[1]), m[2], int(m[3])
        return str({"+": a + b, "-": a - b, "×": a * b, "÷": a // b}[op])
    if m := re.fullmatch(r"(\d{4})年(\d+)月(\d+)日是星期几？", text):
        return "星期" + "一二三四五六日"[datetime.date(int(m[1]), int(m[2]), int(m[3])).weekday()]
    if m := re.fullmatch(r"(\d{4})年(\d+)月有多少天？", text):
        return str(calendar.monthrange(int(m[1]), int(m[2]))[1])
    if m := re.fullmatch(r"从(\d{4})年(\d+)月(\d+)日起再过(\d+)天是几月几日？", text):
        day = datetime.date(int(m[1]), int(m[2]), int(m[3])) + datetime.timedelta(days=int(m[4]))
        return f"{day.month}月{day.day}日"
    if m := re.fullmatch(r"(\d+) 和 (\d+) 的最大公因数是多少？", text):
        return str(math.gcd(int(m[1]), int(m[2])))
    if m := re.fullmatch(r"现在是 (\d+):(\d+)，再过 (?:(\d+) 小时)? ?(?:(\d+) 分钟)?是几点？", text):
        minutes = int(m[1]) * 60 + int(m[2]) + int(m[3] or 0) * 60 + int(m[4] or 0)
        return f"{minutes // 60}:{minutes % 60:02d}"
    factors = {(big, small): f for big, small, f in general_set.UNITS}
    if m := re.fullmatch(r"(\d+) (\S+?)等于多少(\S+)？", text):
        return str(int(m[1]) * factors[m[2], m[3]])
    return None


def test_every_computable_answer_in_the_shipped_set_checks_out():
    benchmark = general_eval.read_benchmark(general_set.SHIPPED)
    checked = 0
    for q in benchmark.questions:
        if q.question == "下列哪个数是质数？":
            primes = [o for o in q.options if all(int(o) % d for d in range(2, int(o)))]
            assert primes == [_right(q)], q
        elif q.question == "下列哪个数能被 9 整除？":
            assert [o for o in q.options if int(o) % 9 == 0] == [_right(q)], q
        elif (expected := _computed(q)) is not None:
            assert _right(q) == expected and q.options.count(expected) == 1, q
        else:
            continue
        checked += 1
    computed = ("arithmetic", "unit_conversion", "calendar", "number_properties", "clock_time")
    assert checked == sum(q.subject in computed for q in benchmark.questions)  # every one of them recomputed


# --- reading what users download ------------------------------------------------------------------

def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def test_cmmlu_layout_with_its_index_column_and_capitalized_header(tmp_path):
    rows = [[i, f"问题{i}", "甲", "乙", "丙", "丁", "ABCD"[i % 4]] for i in range(7)]
    write_csv(tmp_path / "test" / "agronomy.csv", ["", "Question", "A", "B", "C", "D", "Answer"], rows)
    write_csv(tmp_path / "dev" / "agronomy.csv", ["", "Question", "A", "B", "C", "D", "Answer"], rows[:5])
    benchmark = general_eval.read_benchmark(tmp_path)
    assert benchmark.layout == "cmmlu" and benchmark.names == {"agronomy": "农学"}  # CMMLU's own name
    assert benchmark.answers == "ABCDABC" and len(benchmark.shots["agronomy"]) == 5
    text = general_eval.plain_text(benchmark.questions[0], benchmark.shots["agronomy"][:1], "农学")
    assert text == ("以下是中国关于农学考试的单项选择题，请选出其中的正确答案。\n\n"
                    "问题0\nA. 甲\nB. 乙\nC. 丙\nD. 丁\n答案：A\n\n问题0\nA. 甲\nB. 乙\nC. 丙\nD. 丁\n答案：")


def test_a_seeded_draw_per_subject_is_stratified_and_repeatable():
    draw = general_eval.read_benchmark(general_set.SHIPPED, per_subject=5, seed=3)
    assert len(draw.questions) == 5 * len(draw.subjects)
    assert draw.answers == general_eval.read_benchmark(general_set.SHIPPED, per_subject=5, seed=3).answers
    assert draw.digest(0) != general_eval.read_benchmark(general_set.SHIPPED, per_subject=5, seed=4).digest(0)


@pytest.mark.parametrize("header,row,message", [
    (["id", "question", "A", "B", "C", "answer"], [0, "问", "甲", "乙", "丙", "A"], ":1: field 'd': missing from the header"),
    (["id", "question", "A", "B", "C", "D", "answer"], [0, "问", "甲", "乙", "丙", "丁", "E"], ":3: field 'answer': E is not"),
    (["id", "question", "A", "B", "C", "D", "answer"], [0, "问", "甲", "", "丙", "丁", "A"], ":3: field 'B': empty"),
    (["id", "question", "A", "B", "C", "D", "answer"], [0, "问", "甲", "乙", "丙", "丁", ""],
     "C-Eval's test split has no answers"),
])
def test_a_malformed_file_is_one_line_naming_file_line_and_field(tmp_path, header, row, message):
    good = [0, "问", "甲", "乙", "丙", "丁", "A"][: len(header) - 1] + ["A"]
    write_csv(tmp_path / "bench" / "val" / "logic_val.csv", header, [good, row])
    output = tmp_path / "out.json"
    result = run_script("eval_general.py", "--benchmark", str(tmp_path / "bench"), "--output", str(output))
    assert result.returncode == 2 and not output.exists()
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {tmp_path / 'bench' / 'val' / 'logic_val.csv'}") and message in line, line


# --- figures --------------------------------------------------------------------------------------

def small_benchmark(answers: str) -> general_eval.Benchmark:
    questions = [general_eval.Question("s" if i % 2 else "t", f"q{i}", ("a", "b", "c", "d"), a, f"x:{i}")
                 for i, a in enumerate(answers)]
    return general_eval.Benchmark("x", "csv", {"s": "S", "t": "T"}, questions, {})


def test_accuracy_intervals_and_paired_differences():
    answers = "ABCD" * 50
    benchmark = small_benchmark(answers)
    half = "".join(a if i % 2 else "A" if a != "A" else "B" for i, a in enumerate(answers))
    figures = general_eval.accuracy_figures(benchmark, half)
    assert figures["accuracy"] == 0.5 and figures["ci95"][0] < 0.5 < figures["ci95"][1]
    assert figures["per_subject"]["s"]["accuracy"] == 1.0 and figures["per_subject"]["t"]["accuracy"] == 0.0
    same = general_eval.difference(benchmark, half, half)
    assert same == {"difference": 0.0, "ci95": [0.0, 0.0], "changed_answers": 0}
    lost = general_eval.difference(benchmark, half, answers)
    assert lost["difference"] == -0.5 and lost["ci95"][1] < 0 and lost["changed_answers"] == 100
    assert general_eval.forgetting_verdict(lost)[0] == "FAIL"
    assert general_eval.forgetting_verdict(same)[0] == "PASS"


def test_the_highest_log_likelihood_wins_and_a_tie_goes_to_the_first_letter():
    assert general_eval.choices_of([[-3, -1, -2, -5], [-1, -1, -4, -4], [-9, -9, -9, -0.5]]) == "BAD"


# --- scoring on real models -----------------------------------------------------------------------

@pytest.mark.parametrize("fmt,shots", [("plain", 0), ("chat", 2), ("plain", 5)])
def test_batched_scoring_equals_one_option_at_a_time(tiny_model_dir, fmt, shots):
    from ftkit.core.inference import load_models

    tokenizer, base, _ = load_models(str(tiny_model_dir))
    benchmark = general_eval.read_benchmark(general_set.SHIPPED, per_subject=3)
    built = general_eval.build_prompts(benchmark, tokenizer, shots, fmt)
    ours = general_eval.option_logprobs(base, built, batch_size=8)  # left-padded batches of mixed lengths
    reference = general_eval.option_logprobs_one_at_a_time(base, built)
    assert max(abs(a - b) for r, s in zip(ours, reference, strict=True) for a, b in zip(r, s, strict=True)) < 1e-4
    assert general_eval.choices_of(ours) == general_eval.choices_of(reference)


def test_batched_scoring_equals_one_option_at_a_time_through_linear_attention(family_model):
    """Qwen3.5's recurrent layers: a batch shares no prefix cache and pads before the start only."""
    from ftkit.core.inference import load_models

    tokenizer, base, _ = load_models(str(family_model("qwen3.5")))
    assert base.recurrent
    benchmark = general_eval.read_benchmark(general_set.SHIPPED, per_subject=1)
    built = general_eval.build_prompts(benchmark, tokenizer, 2, "chat")
    ours = general_eval.option_logprobs(base, built, batch_size=8)
    reference = general_eval.option_logprobs_one_at_a_time(base, built)
    assert max(abs(a - b) for r, s in zip(ours, reference, strict=True) for a, b in zip(r, s, strict=True)) < 1e-4


def test_a_chat_prompt_is_the_training_renderer_and_the_letter_is_what_training_supervises(tiny_model_dir):
    from ftkit.core import prompts
    from ftkit.core.inference import load_models

    tokenizer, _, _ = load_models(str(tiny_model_dir), with_base=False)
    benchmark = general_eval.read_benchmark(general_set.SHIPPED, per_subject=1)
    question, shot = benchmark.questions[0], benchmark.shots[benchmark.questions[0].subject][0]
    [built] = general_eval.build_prompts(general_eval.Benchmark("x", "ceval", benchmark.names, [question],
                                                                {question.subject: [shot]}), tokenizer, 1, "chat")
    header = general_eval.HEADER.format(subject=benchmark.names[question.subject])
    conversation = prompts.Conversation((prompts.Turn(f"{header}\n\n{shot.block()}", shot.answer),
                                         prompts.Turn(question.block(), "B")))
    rendered = prompts.render_ids(conversation, tokenizer)
    assert built.context == rendered.prompt_ids
    assert rendered.answer_ids[: len(built.continuations[1])] == built.continuations[1]
    assert tokenizer.decode(built.continuations[1]).strip() == "B"


@pytest.mark.slow
def test_llama_cpp_and_transformers_choose_the_same_letters(exported, merged):
    """The merged model in transformers and its F16 GGUF in llama.cpp, the same prompt ids: the same letters
    (a near tie aside) and log-likelihoods within F16's rounding."""
    from ftkit.core.inference import GGUFChatModel, load_models

    tokenizer, hf, _ = load_models(str(merged))
    benchmark = general_eval.read_benchmark(general_set.SHIPPED, per_subject=4)
    built = general_eval.build_prompts(benchmark, tokenizer, 1, "chat")
    ours = general_eval.option_logprobs(hf, built)
    gguf = GGUFChatModel(str(exported[0] / "tiny-ft-F16.gguf"), tokenizer, "F16")
    theirs = general_eval.option_logprobs(gguf, built)
    gaps = [max(abs(a - b) for a, b in zip(r, s, strict=True)) for r, s in zip(ours, theirs, strict=True)]
    assert max(gaps) < 0.05, max(gaps)
    ties = [i for i, row in enumerate(ours) if sorted(row)[-1] - sorted(row)[-2] < 2 * max(gaps)]
    differ = [i for i, (a, b) in enumerate(zip(general_eval.choices_of(ours), general_eval.choices_of(theirs), strict=True))
              if a != b]
    assert set(differ) <= set(ties), (differ, ties)


LM_EVAL_TASK = {  # lm-evaluation-harness's C-Eval task (tasks/ceval/_default_ceval_yaml), over local CSVs
    "dataset_path": "csv", "validation_split": "validation", "fewshot_split": "dev",
    "fewshot_config": {"sampler": "first_n"}, "output_type": "multiple_choice",
    "doc_to_text": "{{question.strip()}}\nA. {{A}}\nB. {{B}}\nC. {{C}}\nD. {{D}}\n答案：",
    "doc_to_choice": ["A", "B", "C", "D"], "doc_to_target": "{{['A', 'B', 'C', 'D'].index(answer)}}",
    # the one difference from its C-Eval task: no space before the letter (its default target_delimiter " "),
    # as in C-Eval's own prompt, where the letter follows 答案： directly
    "target_delimiter": "",
    "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
}


@pytest.mark.slow
@pytest.mark.parametrize("shots", [0, 3])
def test_the_choices_and_accuracy_equal_lm_evaluation_harness(tiny_model_dir, tmp_path, shots):
    """lm-evaluation-harness (the field's reference) on the same CSVs and model: every question's letter, each
    option's log-likelihood and each subject's accuracy are the same as ours (plain format)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from ftkit.core.inference import load_models

    benchmark = general_eval.read_benchmark(general_set.SHIPPED)
    subjects = benchmark.subjects[:3]
    for s in subjects:
        task = {**LM_EVAL_TASK, "task": f"ftkit_{s}", "description": general_eval.HEADER.format(subject=benchmark.names[s]) + "\n\n",
                "dataset_kwargs": {"data_files": {"validation": str(general_set.SHIPPED / "val" / f"{s}_val.csv"),
                                                  "dev": str(general_set.SHIPPED / "dev" / f"{s}_dev.csv")}}}
        (tmp_path / f"ftkit_{s}.yaml").write_text(json.dumps(task, ensure_ascii=False), encoding="utf-8")
    result = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={tiny_model_dir},dtype=float32", device="cpu",
                                     tasks=[f"ftkit_{s}" for s in subjects], num_fewshot=shots, batch_size=8,
                                     task_manager=TaskManager(include_path=str(tmp_path)), log_samples=True)
    tokenizer, base, _ = load_models(str(tiny_model_dir))
    picked = general_eval.Benchmark(benchmark.path, benchmark.layout, benchmark.names,
                                    [q for q in benchmark.questions if q.subject in subjects], benchmark.shots)
    ours = general_eval.option_logprobs(base, general_eval.build_prompts(picked, tokenizer, shots, "plain"))
    figures = general_eval.accuracy_figures(picked, general_eval.choices_of(ours))
    for s in subjects:
        index = [i for i, q in enumerate(picked.questions) if q.subject == s]
        for sample in result["samples"][f"ftkit_{s}"]:
            theirs = [r[0] for r in sample["filtered_resps"]]
            mine = ours[index[sample["doc_id"]]]
            assert max(abs(a - b) for a, b in zip(theirs, mine, strict=True)) < 1e-4, (s, sample["doc_id"])
            assert general_eval.choices_of([theirs]) == general_eval.choices_of([mine])
        assert result["results"][f"ftkit_{s}"]["acc,none"] == pytest.approx(figures["per_subject"][s]["accuracy"])


@pytest.mark.slow
def test_the_script_scores_base_fine_tuned_and_each_gguf_type(tiny_model_dir, trained_run, exported, tmp_path):
    output = tmp_path / "eval_general.json"
    result = run_script("eval_general.py", "--base-model", str(tiny_model_dir), "--lora-model",
                        str(trained_run / "lora_adapter"), "--quant-report", str(exported[0] / "quant_report.json"),
                        "--per-subject", "2", "--shots", "1", "--output", str(output))
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(output.read_text())
    assert list(data["models"]) == ["base", "fine-tuned", "F16", "Q8_0", "Q4_K_M"]
    assert set(data["differences"]) == {"fine-tuned - base", "Q8_0 - F16", "Q4_K_M - F16"}
    assert data["benchmark"]["questions"] == 18 and data["benchmark"]["shots"] == 1
    assert data["forgetting"]["status"] in ("PASS", "WARN", "FAIL")
    assert "fine-tuned" in result.stdout and "Q4_K_M" in result.stdout and "forgetting:" in result.stdout


@pytest.mark.slow
def test_the_benchmark_compares_against_one_option_at_a_time(tiny_model_dir):
    result = run_script("bench_eval_general.py", "--base-model", str(tiny_model_dir), "--per-subject", "4",
                        "--baseline-questions", "8",
                        "--gpu-check", "/nonexistent.json", "--runs", "none")
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"speed-up \d+\.\dx; the same letter chosen for 8/8 questions", result.stdout), result.stdout
    assert "7B estimate: 1,000 questions" in result.stdout and "published anchor" in result.stdout


def test_make_runs_the_general_check_after_the_export_and_in_make_eval_when_a_benchmark_is_given():
    from conftest import run_make

    planned = run_make("-n", "-B", "all").stdout
    order = [line.split("scripts/")[1].split()[0] for line in planned.splitlines() if "scripts/" in line]
    assert order.index("eval_general.py") > order.index("convert_to_gguf.py")  # every GGUF type is there to score
    assert "--quant-report" in next(line for line in planned.splitlines() if "eval_general.py" in line)
    assert "eval_general.py" not in run_make("-n", "-B", "eval").stdout
    asked = run_make("-n", "-B", "eval", "GENERAL_EVAL=ftkit/assets/general_zh", "GENERAL_SHOTS=5").stdout
    line = next(line for line in asked.splitlines() if "eval_general.py" in line)
    assert "--shots 5" in line and "--quant-report" not in line and "touch -t 200001010000" in line
