"""General ability: multiple-choice accuracy on C-Eval / CMMLU-style questions, for the base model, the
fine-tuned model and every GGUF type made — did fine-tuning (or quantization) cost what the model knew?

Scored the standard way (C-Eval's and lm-evaluation-harness's): the log-likelihood of each option letter
right after the prompt, the highest wins. A prompt is C-Eval's Chinese format, 0- or k-shot, as plain text
or as a chat turn rendered by the one renderer (ftkit.core.prompts). One forward pass per question scores all
four options (a letter of two tokens reads a second position of the same pass); HF models and GGUFs answer
the same question — "the log-probabilities of these next tokens after these ids" — so the two are
comparable, and everything after it (choice, accuracy, intervals) is one code path.

Folders read: C-Eval (`val/{subject}_val.csv` scored, `dev/{subject}_dev.csv` the shots), CMMLU
(`test/{subject}.csv`, `dev/{subject}.csv`) or a folder of CSVs (a subject each, no shots). Nothing is
downloaded. The shipped set (ftkit/stages/evaluate/general_set.py) is in C-Eval's layout.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

from ftkit import ASSETS
from ftkit.core import prompts
from ftkit.core.cli import UserError
from ftkit.verify.general_margins import DEFAULT_MARGINS

log = logging.getLogger(__name__)

LETTERS = ("A", "B", "C", "D")
HEADER = "以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。"
FORMATS = ("chat", "plain")
SUBJECT_NAMES = ASSETS / "benchmark_subjects.json"
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Question:
    subject: str
    question: str
    options: tuple[str, str, str, str]
    answer: str  # a letter
    source: str  # file:line, for errors

    def block(self) -> str:
        """The question as C-Eval writes it, ending where the answer letter goes."""
        lines = [self.question.strip(), *(f"{letter}. {text}" for letter, text in zip(LETTERS, self.options, strict=True))]
        return "\n".join(lines) + "\n答案："


@dataclass
class Benchmark:
    path: str
    layout: str
    names: dict[str, str]  # subject id -> the name the header uses
    questions: list[Question]  # scored, grouped by subject
    shots: dict[str, list[Question]]  # subject -> its dev examples

    @property
    def subjects(self) -> list[str]:
        return list(dict.fromkeys(q.subject for q in self.questions))

    @property
    def answers(self) -> str:
        return "".join(q.answer for q in self.questions)

    def digest(self, shots: int) -> str:
        """sha256 over what a model is asked: the scored questions and the shots used."""
        content = [[q.subject, q.question, q.options, q.answer] for q in self.questions]
        used = {s: [[q.question, q.options, q.answer] for q in self.shots.get(s, [])[:shots]] for s in self.subjects}
        text = json.dumps([content, used, self.names], ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


# --- reading --------------------------------------------------------------------------------------

def _field(row: dict, names: dict[str, str], key: str) -> str:
    return (row.get(names[key]) or "").strip()


def read_csv(path: Path, subject: str, need_answers: bool = True) -> list[Question]:
    """One subject's file: a header with question, A-D and answer (any case; other columns ignored)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            header = {name.strip().lower(): name for name in reader.fieldnames or [] if name}
            missing = [k for k in ("question", "a", "b", "c", "d", "answer") if k not in header]
            if missing:
                raise UserError(f"{path}:1: field '{missing[0]}': missing from the header (C-Eval: id,question,A,B,C,D,"
                                f"answer; CMMLU: ,Question,A,B,C,D,Answer)")
            questions = []
            for line, row in enumerate(reader, start=2):
                questions.append(_question(row, header, subject, f"{path}:{line}", need_answers))
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 ({err.reason} at byte {err.start})") from err
    except csv.Error as err:
        raise UserError(f"{path}: not a readable CSV ({err})") from err
    if not questions:
        raise UserError(f"{path}: no questions")
    return questions


def _question(row: dict, header: dict[str, str], subject: str, where: str, need_answers: bool) -> Question:
    for key in ("question", "a", "b", "c", "d"):
        if not _field(row, header, key):
            raise UserError(f"{where}: field '{header[key]}': empty")
    answer = _field(row, header, "answer").upper()
    if answer not in LETTERS and need_answers:
        hint = " (C-Eval's test split has no answers: point at the folder that holds val/ and dev/)" if not answer else ""
        raise UserError(f"{where}: field '{header['answer']}': {answer or 'empty'!s} is not one of A, B, C, D{hint}")
    options = tuple(_field(row, header, k) for k in ("a", "b", "c", "d"))
    return Question(subject, _field(row, header, "question"), options, answer, where)


def _layout(folder: Path) -> tuple[str, dict[str, Path], dict[str, Path]]:
    """(layout, subject -> scored file, subject -> shots file)."""
    if (folder / "val").is_dir():
        scored = {p.name.removesuffix("_val.csv"): p for p in sorted((folder / "val").glob("*_val.csv"))}
        shots = {p.name.removesuffix("_dev.csv"): p for p in sorted((folder / "dev").glob("*_dev.csv"))}
        return "ceval", scored, shots
    if (folder / "test").is_dir():
        scored = {p.stem: p for p in sorted((folder / "test").glob("*.csv"))}
        return "cmmlu", scored, {p.stem: p for p in sorted((folder / "dev").glob("*.csv"))}
    return "csv", {p.stem: p for p in sorted(folder.glob("*.csv"))}, {}


def subject_names(folder: Path, subjects: list[str]) -> dict[str, str]:
    """The Chinese name of each subject: the folder's subject_mapping.json (C-Eval's), else C-Eval's and
    CMMLU's own lists, else the id."""
    mapping = {}
    if (folder / "subject_mapping.json").is_file():
        try:
            mapping = {k: v[1] for k, v in json.loads((folder / "subject_mapping.json").read_text("utf-8")).items()}
        except (ValueError, TypeError, IndexError, AttributeError) as err:
            raise UserError(f"{folder / 'subject_mapping.json'}: not C-Eval's format ({{id: [English, 中文, category]}})") from err
    known = json.loads(SUBJECT_NAMES.read_text("utf-8"))
    return {s: mapping.get(s) or known["ceval"].get(s) or known["cmmlu"].get(s) or s.replace("_", " ") for s in subjects}


def read_benchmark(folder: str | Path, per_subject: int = 0, seed: int = 0) -> Benchmark:
    """Every subject of a benchmark folder; with per_subject N, a seeded draw of N questions from each
    (in file order), for a quick check or a CPU."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"{folder}: no such benchmark folder (C-Eval: the folder with val/ and dev/; CMMLU: with test/ and dev/)")
    layout, scored, shot_files = _layout(root)
    if not scored:
        raise UserError(f"{folder}: no subject files (C-Eval: val/<subject>_val.csv; CMMLU: test/<subject>.csv; or <subject>.csv)")
    questions = []
    for subject, path in scored.items():
        found = read_csv(path, subject)
        if per_subject and len(found) > per_subject:
            keep = sorted(random.Random(f"{seed}-{subject}").sample(range(len(found)), per_subject))
            found = [found[i] for i in keep]
        questions += found
    shots = {s: read_csv(p, s) for s, p in shot_files.items() if s in scored}
    return Benchmark(str(folder), layout, subject_names(root, list(scored)), questions, shots)


# --- prompts --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prompt:
    context: list[int]
    continuations: list[list[int]]  # the token ids of each option letter after the context


def plain_text(question: Question, shots: list[Question], subject_name: str) -> str:
    """C-Eval's prompt: the header, each shot with its answer, then the question up to 答案："""
    examples = "".join(f"{shot.block()}{shot.answer}\n\n" for shot in shots)
    return f"{HEADER.format(subject=subject_name)}\n\n{examples}{question.block()}"


def chat_conversation(question: Question, shots: list[Question], subject_name: str) -> prompts.Conversation:
    """The same as a chat: the header opens the first user turn, each shot is a turn answered by its letter."""
    header = f"{HEADER.format(subject=subject_name)}\n\n"
    asked = [*shots, question]
    turns = [prompts.Turn((header if i == 0 else "") + q.block(), q.answer if i < len(shots) else None)
             for i, q in enumerate(asked)]
    return prompts.Conversation(tuple(turns))


def encode_plain(tokenizer, text: str) -> Prompt:
    """As lm-evaluation-harness splits a context and a continuation: encode both together, and the
    continuation is what follows the context's own encoding (BOS as the tokenizer adds it)."""
    context = tokenizer.encode(text)
    return Prompt(context, [tokenizer.encode(text + letter)[len(context):] for letter in LETTERS])


def encode_chat(tokenizer, conversation: prompts.Conversation) -> Prompt:
    """The context is the rendered prompt up to the assistant's turn; each letter's ids are the first ids
    the renderer gives an answer of that letter (what training supervises), up to the letter itself (not
    the end of turn, nor Llama-2's trailing space). A model trained with thinking is asked to answer at once
    (think=false): a letter is the whole answer."""
    conversation = conversation._replace(think=False)
    context = prompts.render_ids(conversation, tokenizer).prompt_ids
    last = conversation.turns[-1]
    continuations = []
    for letter in LETTERS:
        answered = conversation._replace(turns=conversation.turns[:-1] + (prompts.Turn(last.user, letter),))
        answer = prompts.render_ids(answered, tokenizer).answer_ids
        length = next((k for k in range(1, len(answer) + 1) if tokenizer.decode(answer[:k]).strip() == letter), None)
        if length is None:
            raise UserError(f"the chat format renders an answer {letter!r} as {tokenizer.decode(answer)!r}, which does not "
                            "begin with the letter: use --format plain")
        continuations.append(answer[:length])
    return Prompt(context, continuations)


def build_prompts(benchmark: Benchmark, tokenizer, shots: int, fmt: str) -> list[Prompt]:
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: one of {', '.join(FORMATS)}")
    built = []
    for q in benchmark.questions:
        examples = benchmark.shots.get(q.subject, [])[:shots]
        if shots and len(examples) < shots:
            raise UserError(f"{benchmark.path}: subject {q.subject} has {len(examples)} dev examples, --shots {shots} "
                            "asks for more")
        name = benchmark.names[q.subject]
        built.append(encode_plain(tokenizer, plain_text(q, examples, name)) if fmt == "plain"
                     else encode_chat(tokenizer, chat_conversation(q, examples, name)))
    return built


# --- scoring (one path for every backend) ---------------------------------------------------------

def option_logprobs(model, built: list[Prompt], batch_size: int = 16) -> list[list[float]]:
    """The log-likelihood of each option's letter ids after each prompt.

    Every request is "log p(next token | ids)"; an option of several tokens (a tokenizer that merges the
    letter with what precedes it) is the sum over its tokens, each one more request. `model` is an
    HFChatModel or a GGUFChatModel: both answer `next_token_logprobs`."""
    requests: dict[tuple[int, ...], set[int]] = {}
    for prompt in built:
        for ids in prompt.continuations:
            for k in range(len(ids)):
                requests.setdefault(tuple(prompt.context + ids[:k]), set()).add(ids[k])
    contexts = list(requests)
    answers = model.next_token_logprobs([list(c) for c in contexts], [sorted(requests[c]) for c in contexts], batch_size)
    table = {c: dict(zip(sorted(requests[c]), a, strict=True)) for c, a in zip(contexts, answers, strict=True)}
    return [[sum(table[tuple(p.context + ids[:k])][ids[k]] for k in range(len(ids))) for ids in p.continuations]
            for p in built]


def option_logprobs_one_at_a_time(model, built: list[Prompt]) -> list[list[float]]:
    """The textbook computation, the baseline of `make bench-eval-general` and the reference of the tests:
    prompt + option through an HF model, one option at a time, log-softmax at every position, the option's
    ids summed."""
    import torch

    rows = []
    for prompt in built:
        row = []
        for ids in prompt.continuations:
            with torch.no_grad(), model._context():
                logits = model.model(input_ids=torch.tensor([prompt.context + ids], device=model.device)).logits[0]
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            row.append(sum(logprobs[len(prompt.context) - 1 + k, t].item() for k, t in enumerate(ids)))
        rows.append(row)
    return rows


def choices_of(logprobs: list[list[float]]) -> str:
    """The letter with the highest log-likelihood for each question (the first on a tie, as argmax)."""
    return "".join(LETTERS[max(range(4), key=lambda i: (row[i], -i))] for row in logprobs)


# --- figures --------------------------------------------------------------------------------------

def _resamples(n: int, seed: int = 0):
    import numpy as np

    return np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))


def interval(values, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval of a mean (the same resamples for every model: paired)."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    means = values[_resamples(len(values), seed)].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def correct_of(choices: str, answers: str) -> list[int]:
    return [int(c == a) for c, a in zip(choices, answers, strict=True)]


def accuracy_figures(benchmark: Benchmark, choices: str) -> dict:
    """Accuracy overall (micro: every question counts once) and per subject, each with its interval."""
    correct = correct_of(choices, benchmark.answers)
    per_subject = {}
    for subject in benchmark.subjects:
        rows = [c for c, q in zip(correct, benchmark.questions, strict=True) if q.subject == subject]
        per_subject[subject] = {"questions": len(rows), "accuracy": sum(rows) / len(rows), "ci95": interval(rows)}
    return {"accuracy": sum(correct) / len(correct), "ci95": interval(correct), "per_subject": per_subject}


def difference(benchmark: Benchmark, choices: str, reference: str) -> dict:
    """Paired accuracy difference (choices - reference) on the same questions, with its interval."""
    a, b = correct_of(choices, benchmark.answers), correct_of(reference, benchmark.answers)
    diff = [x - y for x, y in zip(a, b, strict=True)]
    return {"difference": sum(diff) / len(diff), "ci95": interval(diff), "changed_answers": sum(x != y for x, y in zip(
        choices, reference, strict=True))}


def forgetting_verdict(diff: dict, margins: dict = DEFAULT_MARGINS) -> tuple[str, str]:
    """PASS, WARN or FAIL for fine-tuned - base: a loss beyond a margin whose interval excludes 0."""
    loss, upper = -diff["difference"], diff["ci95"][1]
    text = f"fine-tuned - base = {100 * diff['difference']:+.1f} points (95% CI {100 * diff['ci95'][0]:+.1f} to {100 * upper:+.1f})"
    if upper < 0 and loss > margins["fail"]:
        return "FAIL", f"{text}: lost more than {100 * margins['fail']:g} points"
    if upper < 0 and loss > margins["warn"]:
        return "WARN", f"{text}: lost more than {100 * margins['warn']:g} points"
    return "PASS", f"{text}: within {100 * margins['warn']:g} points, or not distinguishable from 0"


# --- one run --------------------------------------------------------------------------------------

@dataclass
class Scored:
    choices: str
    seconds: float


def score_model(model, built: list[Prompt], batch_size: int) -> Scored:
    started = time.perf_counter()
    choices = choices_of(option_logprobs(model, built, batch_size))
    return Scored(choices, time.perf_counter() - started)


def model_entry(benchmark: Benchmark, scored: Scored, **identity) -> dict:
    return {**identity, "choices": scored.choices, **accuracy_figures(benchmark, scored.choices),
            "seconds": round(scored.seconds, 3), "questions_per_second": len(scored.choices) / max(scored.seconds, 1e-9)}


def summarize(benchmark: Benchmark, models: dict[str, dict], settings: dict, margins: dict = DEFAULT_MARGINS) -> dict:
    """eval_general.json: the benchmark, each model's choices and accuracy, the paired differences
    (fine-tuned - base; each GGUF type - F16) and the forgetting verdict."""
    differences = {}
    if "base" in models and "fine-tuned" in models:
        differences["fine-tuned - base"] = difference(benchmark, models["fine-tuned"]["choices"], models["base"]["choices"])
    if "F16" in models:
        for name, entry in models.items():
            if entry.get("kind") == "gguf" and name != "F16":
                differences[f"{name} - F16"] = difference(benchmark, entry["choices"], models["F16"]["choices"])
    result = {"benchmark": {"path": benchmark.path, "layout": benchmark.layout, "subjects": benchmark.names,
                            "questions": len(benchmark.questions), **settings,
                            "digest": benchmark.digest(settings["shots"])},
              "models": models, "differences": differences, "margins": margins}
    if "fine-tuned - base" in differences:
        status, text = forgetting_verdict(differences["fine-tuned - base"], margins)
        result["forgetting"] = {"status": status, "evidence": text}
    return result


def _wide(text: str) -> int:
    """Extra columns a terminal gives Chinese characters (two each), for aligned tables."""
    import unicodedata

    return sum(unicodedata.east_asian_width(c) in "WF" for c in text)


def _clip(text: str, width: int) -> str:
    while len(text) + _wide(text) > width:
        text = text[:-1]
    return text


def format_table(result: dict) -> str:
    """Accuracy per model (and per subject), with intervals and the paired differences."""
    bench, models = result["benchmark"], result["models"]
    lines = [f"general ability: {bench['questions']} questions, {len(bench['subjects'])} subjects from {bench['path']} "
             f"({bench['shots']}-shot, {bench['format']} format)",
             f"{'model':<14}{'accuracy':>10}{'95% CI':>16}{'vs':>8}{'difference':>12}{'95% CI':>18}{'q/s':>8}"]
    for name, entry in models.items():
        reference = "base" if name == "fine-tuned" else "F16" if entry.get("kind") == "gguf" and name != "F16" else None
        diff = result["differences"].get(f"{name} - {reference}") if reference else None
        lo, hi = entry["ci95"]
        cells = f"{100 * entry['accuracy']:>9.1f}%{f'{100 * lo:.1f}-{100 * hi:.1f}%':>16}"
        if diff:
            dlo, dhi = diff["ci95"]
            cells += f"{reference:>8}{100 * diff['difference']:>+11.1f}p{f'{100 * dlo:+.1f} to {100 * dhi:+.1f}p':>18}"
        else:
            cells += f"{'':>8}{'':>12}{'':>18}"
        lines.append(f"{name:<14}{cells}{entry['questions_per_second']:>8.1f}")
    lines.append("per subject, accuracy %:")
    lines.append(f"{'subject':<22}{'questions':>10}" + "".join(f"{name:>12}" for name in models))
    for subject, name in bench["subjects"].items():
        counts = next(iter(models.values()))["per_subject"][subject]["questions"] if models else 0
        lines.append(f"{_clip(name, 20):<{22 - _wide(_clip(name, 20))}}{counts:>10}" + "".join(
            f"{100 * m['per_subject'][subject]['accuracy']:>11.1f}%" for m in models.values()))
    if "forgetting" in result:
        lines.append(f"forgetting: {result['forgetting']['status']} — {result['forgetting']['evidence']}")
    return "\n".join(lines)


def gguf_files(quant_report: str | Path) -> dict[str, dict]:
    """Each GGUF type the export made: {type: {path, sha256}}, the paths beside the report."""
    from ftkit.core.io import read_json

    report = read_json(quant_report, "run `make gguf` first")
    return {q: {"path": str(Path(quant_report).parent / Path(info["path"]).name), "sha256": info.get("sha256")}
            for q, info in report.get("files", {}).items()}


def evaluate(benchmark_dir: str, base_model: str, lora_model: str, output: str, shots: int = 0, fmt: str = "chat",
             per_subject: int = 0, seed: int = 0, batch_size: int = 16, quant_report: str | None = None,
             family: str | None = None, n_gpu_layers: int = 0, margins: dict = DEFAULT_MARGINS,
             with_base: bool = True) -> dict:
    """Score the base, the fine-tuned model (adapter on the base) and each GGUF type of `quant_report` on
    one benchmark, with the same prompt ids for all; write `output` atomically and return it."""
    from ftkit.core.artifacts import adapter_digest
    from ftkit.core.inference import GGUFChatModel, load_models
    from ftkit.core.io import write_json_atomic

    benchmark = read_benchmark(benchmark_dir, per_subject, seed)
    log.info("general: %d questions, %d subjects (%s layout) from %s; %d-shot, %s format", len(benchmark.questions),
             len(benchmark.subjects), benchmark.layout, benchmark_dir, shots, fmt)
    tokenizer, base, tuned = load_models(base_model, lora_model, with_base=with_base, family=family)
    built = build_prompts(benchmark, tokenizer, shots, fmt)
    models = {}
    for name, model in (("base", base), ("fine-tuned", tuned)):
        if model is not None:
            identity = {"kind": "hf", "source": base_model}
            if name == "fine-tuned":
                identity.update(adapter=str(lora_model), adapter_sha256=adapter_digest(Path(lora_model)))
            models[name] = model_entry(benchmark, score_model(model, built, batch_size), **identity)
            log.info("general: %s %.1f%%", name, 100 * models[name]["accuracy"])
    if quant_report:
        longest = max(len(p.context) + max(map(len, p.continuations)) for p in built)
        for quant, info in gguf_files(quant_report).items():
            gguf = GGUFChatModel(info["path"], tokenizer, quant, n_ctx=longest + 1, n_gpu_layers=n_gpu_layers)
            models[quant] = model_entry(benchmark, score_model(gguf, built, 1), kind="gguf", source=info["path"],
                                        sha256=info["sha256"])
            log.info("general: %s %.1f%%", quant, 100 * models[quant]["accuracy"])
            del gguf
    settings = {"shots": shots, "format": fmt, "per_subject": per_subject, "seed": seed}
    result = summarize(benchmark, models, settings, margins)
    write_json_atomic(output, result)
    return result
