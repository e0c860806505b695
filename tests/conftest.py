"""Shared fixtures: the embedded tiny model, built once per test session into a temporary folder."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach the Hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from ftkit.tiny_model import build

    return build(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def family_model(tmp_path_factory):
    """family name -> the embedded tiny model of that family (qwen2.5, qwen3, llama3), built once on first use."""
    from ftkit.tiny_model import build_family

    built = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = build_family(tmp_path_factory.mktemp("models") / f"tiny-{name}", name)
        return built[name]
    return get


@pytest.fixture(scope="session")
def family_tokenizer(family_model):
    """family name -> its tiny model's tokenizer, bound to the family (its template pinned)."""
    from ftkit.loading import load_tokenizer

    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_tokenizer(str(family_model(name)))
        return cache[name]
    return get


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def sentencepiece_model(tiny_model_dir):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(tiny_model_dir / "tokenizer.model"))


@pytest.fixture(scope="session")
def prepared_data(tmp_path_factory, tiny_model_dir) -> Path:
    """The sample data through the real data stage: train/validation/test JSONL under one folder."""
    from ftkit import sample_data
    from ftkit.io import write_json_atomic
    from ftkit.prepare import PrepareConfig, prepare

    root = tmp_path_factory.mktemp("data")
    write_json_atomic(root / "sample_data.json", sample_data.generate())
    prepare(PrepareConfig(inputs=[str(root / "sample_data.json")], output_dir=str(root), tokenizer=str(tiny_model_dir)))
    return root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_model_dir, prepared_data) -> Path:
    """A LoRA run on the sample data with the tiny-model preset: learns enough to beat the base."""
    from ftkit.train import TrainConfig, run_training

    out = tmp_path_factory.mktemp("finetuned")
    run_training(TrainConfig(base_model=str(tiny_model_dir), train_data=str(prepared_data / "train_train.jsonl"),
                             val_data=str(prepared_data / "train_validation.jsonl"), output_dir=str(out),
                             epochs=5, batch_size=8, learning_rate=2e-3, lora_r=16, lora_alpha=32))
    return out


def run_script(name, *args, cwd=ROOT, env=None, stdin=None, timeout=900) -> subprocess.CompletedProcess:
    """scripts/NAME ARGS as a user runs it: its own process, output captured (env adds variables)."""
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def merged(trained_run, tiny_model_dir, tmp_path_factory):
    """The trained adapter merged by scripts/merge_lora.py."""
    out = tmp_path_factory.mktemp("export") / "merged_model"
    result = run_script("merge_lora.py", "--base-model", str(tiny_model_dir), "--lora-model", str(trained_run / "lora_adapter"),
                    "--output", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def exported(merged, prepared_data):
    """F16, Q8_0 and Q4_K_M GGUFs + Modelfile by scripts/convert_to_gguf.py: (folder, completed process)."""
    out = merged.parent / "gguf"
    result = run_script("convert_to_gguf.py", "--model-path", str(merged), "--quantization", "F16", "Q8_0", "Q4_K_M",
                    "--output-dir", str(out), "--model-name", "tiny-ft", "--create-modelfile",
                    "--test-data", str(prepared_data / "train_test.jsonl"), "--system", "你是一个有用的助手。")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.fixture(scope="session")
def family_run(family_model, tmp_path_factory):
    """family name -> (run folder, make's output, the make variables): `make all FAMILY=<name>` on its tiny model
    and the sample data, every output under one temporary folder, exactly as a user runs it."""
    runs = {}

    def get(name: str, thinking: str = "off"):
        key = name if thinking == "off" else f"{name}-thinking-{thinking}"
        if key not in runs:
            run = tmp_path_factory.mktemp(f"run-{key}")
            variables = [f"FAMILY={name}", f"TINY_MODEL={family_model(name)}", f"SAMPLE_DIR={run / 'sample'}",
                         f"DATA_DIR={run / 'data'}", f"MODEL_DIR={run / 'model'}", f"GGUF_DIR={run / 'gguf'}",
                         f"REPORT_DIR={run / 'reports'}", "RUN=local",
                         # lighter than the demo, the same stages: the general check on 45 of the shipped
                         # questions, 120 training records (the checklist asks for 100), answers of 64 tokens
                         "GENERAL_PER_SUBJECT=5", "NUM_SAMPLES=150", "MAX_NEW_TOKENS=64"]
            if thinking != "off":
                variables.append(f"THINKING={thinking}")
            runs[key] = (run, run_make("all", *variables, check=False), variables)
        return runs[key]
    return get


# what a scratch copy of the project holds: the files make and the stages read; the environment, llama.cpp and its
# built tools are linked (read, never written by a make run)
PROJECT_FILES = ("Makefile", "Dockerfile", "docker", "ftkit", "scripts", "configs", "tests/go", "pyproject.toml",
                 "requirements.txt", "requirements-gpu.txt", "constraints.txt")
PROJECT_LINKS = (".venv", "llama.cpp", "build")


def scratch_project(folder: Path) -> Path:
    """A copy of the project to run make in: make records settings and stamps where it runs, and a test must
    never change the checkout's."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source, target = ROOT / name, folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, target)
    for name in PROJECT_LINKS:
        if (ROOT / name).exists():
            (folder / name).symlink_to(ROOT / name)
    return folder


def checkout_state() -> dict[str, bytes]:
    """What make records in the checkout: the settings file and the stages' stamps."""
    files = [ROOT / ".ftkit" / "settings.mk", *(p for d in ("data", "models") for p in (ROOT / d).rglob(".settings-*"))]
    return {str(f): f.read_bytes() for f in files if f.is_file()}


@pytest.fixture(scope="session", autouse=True)
def the_checkout_keeps_its_settings_and_stamps():
    """`make test` leaves every stamp as it was: a test that ran make in the checkout fails the session here."""
    before = checkout_state()
    yield
    assert checkout_state() == before, "a test ran make in the checkout: use run_make or scratch_project"


def run_make(*args, check=True, project: Path | None = None) -> subprocess.CompletedProcess:
    """`make ARGS` as a user would type it (not as a sub-make of `make test`), in `project`, by default a fresh
    scratch copy of the project: what one call records is seen by the next only when they share a project."""
    import tempfile

    if project is None:
        project = scratch_project(Path(tempfile.mkdtemp(prefix="ftkit-make-")) / "project")
    return subprocess.run(["make", "--no-print-directory", *args], cwd=project, capture_output=True, text=True,
                          check=check, env=make_env())


def start_make(*args, project: Path) -> subprocess.Popen:
    """`make ARGS` in `project`, started and left running (its output piped, text): one host of a run on several."""
    return subprocess.Popen(["make", "--no-print-directory", *args], cwd=project, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=make_env())


def make_env() -> dict[str, str]:
    """This environment without `make test`'s own make variables: the make a test runs is a user's, not a sub-make."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}


def free_port() -> int:
    """A TCP port free on this machine now: a run's rendezvous on a fixed one could meet another test's."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def go_render(template: str, messages: list[dict], system: str = "") -> str:
    """The prompt Ollama fills from a Modelfile TEMPLATE with Go's text/template (tests/go/ollama_chat.go), on an
    Ollama whose TEMPLATE renders every chat."""
    from ftkit import ollama
    from ftkit.deploy_parity import ollama_routes

    [route] = ollama_routes([{"modelfile": {"template": template, "system": system},
                              "ollama_version": ollama.LAST_GO_ONLY_VERSION, "messages": messages}])
    assert route["path"] == "go_template", route
    return route["prompt"]


# --- the suite's own time, recorded (ftkit.timings) when FTKIT_TIMINGS names the record file ------------------
_SESSION_START = []


def pytest_sessionstart(session):
    import time

    _SESSION_START.append(time.perf_counter())


def pytest_sessionfinish(session, exitstatus):
    """A whole-suite run that passed (`make test`, or `make test-fast`: -m "not slow") records its time and counts."""
    import time

    from ftkit import timings

    config = session.config
    marks = config.getoption("markexpr", "")
    whole = not config.args or [str(Path(a).resolve()) for a in config.args] == [str(ROOT / "tests")]
    if exitstatus != 0 or not whole or config.getoption("keyword", "") or marks not in ("", "not slow"):
        return
    stats = config.pluginmanager.get_plugin("terminalreporter").stats
    counts = {k: len([r for r in stats.get(k, []) if getattr(r, "when", "call") == "call" or k == "skipped"])
              for k in ("passed", "skipped")}
    step = "`make test` (slow tests included)" if not marks else "`make test-fast` (-m \"not slow\")"
    timings.record(step, time.perf_counter() - _SESSION_START[0], f"{counts['passed']} passed, {counts['skipped']} skipped")


def generate_alone(model, prompt_ids: list[list[int]], max_new_tokens: int, stop_ids, pad_token_id) -> list[list[int]]:
    """transformers' own greedy generate(), one prompt at a time, cut at the first stop id: what a batched
    decoder must reproduce row for row."""
    import torch

    stops = set(stop_ids)
    reference = []
    with torch.no_grad():
        for x in prompt_ids:
            out = model.generate(torch.tensor([x]), max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                 top_p=None, top_k=None, pad_token_id=pad_token_id,
                                 eos_token_id=list(stops))[0, len(x):].tolist()
            reference.append(next((out[:k] for k, t in enumerate(out) if t in stops), out))
    return reference
