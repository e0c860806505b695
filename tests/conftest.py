"""Shared fixtures: the embedded tiny model, built once per test session into a temporary folder."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach the Hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `make test` runs one pytest-xdist worker per core: each computes on one thread (torch, and llama.cpp through
# ftkit.core.threads.compute_threads), and so does every process it starts. Two torch processes of two threads
# each on two cores trained 3.7x slower than one alone; one thread is only 1.46x slower than two.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which reads the groups into the tests' ids
def pytest_collection_modifyitems(config, items):
    """A family's tests run on the worker that runs its `make all` (--dist loadgroup): a test that asks for
    family_run joins the group of the family it is parametrized with, or of the one its own mark names."""
    for item in items:
        if "family_run" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("xdist_group"):
            name = getattr(item, "callspec", None) and item.callspec.params.get("name")
            assert name, f"{item.nodeid}: asks for family_run without a name parameter; mark it xdist_group(family-NAME)"
            item.add_marker(pytest.mark.xdist_group(f"family-{name}"))
        if config.getoption("loadgroup", False) and not hasattr(item, "_nodeid"):  # set in a worker
            group_in_the_id(item)


def group_in_the_id(item) -> None:
    """pytest-xdist 3.8 groups a test by the '@group' it appends to the test's id, which it sets as `_nodeid`;
    pytest 9 keeps ids in `_id` and ignores that, and every group is then scattered over the workers (measured:
    a test asking for a family's run waited 155 s on another worker's make all). Here the id gets the suffix."""
    from _pytest.nodeid import NodeId

    groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                     for m in item.iter_markers("xdist_group")})
    if groups:
        item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory) -> Path:
    """This test run's folder, shared by all its workers (pytest-xdist gives each worker its own base folder
    inside the run's)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def measurements_reused(run_folder):
    """Acceptance re-measures deployment parity and validation loss; the tamper tests check every item after
    changing one file, so a measurement of files whose digests did not change is reused (ftkit.acceptance
    measured_once), within this run only."""
    from ftkit.acceptance import REUSE_ENV

    os.environ[REUSE_ENV] = str(run_folder / "measurements")
    yield
    del os.environ[REUSE_ENV]


def built_once(run_folder: Path, name: str, build) -> Path:
    """run_folder/name, made by build(path) once for the whole run: the first worker to ask builds it under a
    lock, the others wait for it and read it. A build that failed leaves no mark, and the next asker tries again."""
    import shutil

    from filelock import FileLock

    target, done = run_folder / name, run_folder / f"{name}.built"
    with FileLock(str(run_folder / f"{name}.lock")):
        if not done.exists():
            if target.exists():
                shutil.rmtree(target)
            build(target)
            done.touch()
    return target


@pytest.fixture(scope="session")
def tiny_model_dir(run_folder) -> Path:
    from ftkit.tiny.tiny_model import build

    return built_once(run_folder, "tiny-llama", build)


@pytest.fixture(scope="session")
def family_model(run_folder):
    """family or tiny model name -> that embedded tiny model (qwen2.5, qwen3-moe, ...), built once on first use."""
    from ftkit.tiny.tiny_model import build_family

    return lambda name: built_once(run_folder, f"tiny-{name}", lambda target: build_family(target, name))


@pytest.fixture(scope="session")
def family_tokenizer(family_model):
    """family name -> its tiny model's tokenizer, bound to the family (its template pinned)."""
    from ftkit.core.loading import load_tokenizer

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
def prepared_data(run_folder, tiny_model_dir) -> Path:
    """The sample data through the real data stage: train/validation/test JSONL under one folder."""
    from ftkit.core.io import write_json_atomic
    from ftkit.stages.data import sample_data
    from ftkit.stages.data.prepare import PrepareConfig, prepare

    def build(root: Path) -> None:
        root.mkdir()
        write_json_atomic(root / "sample_data.json", sample_data.generate())
        prepare(PrepareConfig(inputs=[str(root / "sample_data.json")], output_dir=str(root), tokenizer=str(tiny_model_dir)))
    return built_once(run_folder, "data", build)


@pytest.fixture(scope="session")
def trained_run(run_folder, tiny_model_dir, prepared_data) -> Path:
    """A LoRA run on the sample data with the tiny-model preset: learns enough to beat the base."""
    from ftkit.stages.train.train import TrainConfig, run_training

    def build(out: Path) -> None:
        run_training(TrainConfig(base_model=str(tiny_model_dir), train_data=str(prepared_data / "train_train.jsonl"),
                                 val_data=str(prepared_data / "train_validation.jsonl"), output_dir=str(out),
                                 epochs=5, batch_size=8, learning_rate=2e-3, lora_r=16, lora_alpha=32))
    return built_once(run_folder, "finetuned", build)


def run_script(name, *args, cwd=ROOT, env=None, stdin=None, timeout=900) -> subprocess.CompletedProcess:
    """scripts/NAME (or bench/NAME) ARGS as a user runs it: its own process, output captured (env adds variables)."""
    script = next(path for folder in ("scripts", "bench", "tools") if (path := ROOT / folder / name).is_file())
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def merged(trained_run, tiny_model_dir, run_folder):
    """The trained adapter merged by scripts/merge_lora.py."""
    def build(out: Path) -> None:
        result = run_script("merge_lora.py", "--base-model", str(tiny_model_dir), "--lora-model",
                            str(trained_run / "lora_adapter"), "--output", str(out / "merged_model"))
        assert result.returncode == 0, result.stderr[-3000:]
    return built_once(run_folder, "export", build) / "merged_model"


@pytest.fixture(scope="session")
def exported(merged, prepared_data, run_folder):
    """F16, Q8_0 and Q4_K_M GGUFs + Modelfile by scripts/convert_to_gguf.py: (folder, completed process)."""
    def build(out: Path) -> None:
        result = run_script("convert_to_gguf.py", "--model-path", str(merged), "--quantization", "F16", "Q8_0", "Q4_K_M",
                            "--output-dir", str(out), "--model-name", "tiny-ft", "--create-modelfile",
                            "--test-data", str(prepared_data / "train_test.jsonl"), "--system", "你是一个有用的助手。")
        keep_output(out, result)
        assert result.returncode == 0, result.stderr[-3000:]
    out = built_once(run_folder, "gguf", build)
    return out, kept_output(out)


@pytest.fixture(scope="session")
def demo_run(run_folder, tiny_model_dir) -> Path:
    """`make demo` (the newcomer's first command, which CI once ran apart) with its outputs in one folder of this
    run: data/ (the sample too), model/, gguf/, reports/ (a blind human sheet too). The Llama-2 acceptance
    tests read it; its make output is kept beside it (kept_output)."""
    def build(run: Path) -> None:
        run.mkdir()
        keep_output(run, run_make("demo", f"TINY_MODEL={tiny_model_dir}", f"SAMPLE_DIR={run / 'data'}",
                                  f"DATA_DIR={run / 'data'}", f"MODEL_DIR={run / 'model'}", f"GGUF_DIR={run / 'gguf'}",
                                  f"REPORT_DIR={run / 'reports'}", f"HUMAN_SHEET={run / 'reports' / 'sheet.csv'}",
                                  "MODEL_NAME=tiny-ft", "RUN=local", check=False))
    return built_once(run_folder, "demo", build)


def keep_output(folder: Path, result: subprocess.CompletedProcess) -> None:
    """A command's exit status and output, beside what it made: every worker reads the one run."""
    import json

    (folder / ".command-output.json").write_text(json.dumps(
        {"args": result.args, "returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr}))


def kept_output(folder: Path) -> subprocess.CompletedProcess:
    import json

    kept = json.loads((folder / ".command-output.json").read_text())
    return subprocess.CompletedProcess(kept["args"], kept["returncode"], kept["stdout"], kept["stderr"])


@pytest.fixture(scope="session")
def family_run(family_model, run_folder):
    """family or tiny model name -> (run folder, make's output, the make variables): `make all FAMILY=<family>` on
    its tiny model
    and the sample data, every output under one temporary folder, exactly as a user runs it. A family's tests
    share one worker (pytest_collection_modifyitems), and the run is made once whoever asks."""
    from ftkit.core import families

    def get(name: str, thinking: str = "off"):
        key = name if thinking == "off" else f"{name}-thinking-{thinking}"
        run = run_folder / f"run-{key}"
        family, tiny = families.tiny_model(name)  # a family's own tiny model, or another by its name (qwen3-moe)
        variables = [f"FAMILY={family.name}", f"TINY_MODEL={family_model(tiny.name)}", f"SAMPLE_DIR={run / 'sample'}",
                     f"DATA_DIR={run / 'data'}", f"MODEL_DIR={run / 'model'}", f"GGUF_DIR={run / 'gguf'}",
                     f"REPORT_DIR={run / 'reports'}", "RUN=local",
                     # lighter than the demo, the same stages: the general check on 45 of the shipped
                     # questions, 120 training records (the checklist asks for 100), answers of 64 tokens
                     "GENERAL_PER_SUBJECT=5", "NUM_SAMPLES=150", "MAX_NEW_TOKENS=64"]
        if thinking != "off":
            variables.append(f"THINKING={thinking}")

        def build(folder: Path) -> None:
            folder.mkdir()
            keep_output(folder, run_make("all", *variables, check=False))  # a failed run is the tests' finding
        built_once(run_folder, run.name, build)
        return run, kept_output(run), variables
    return get


# what a scratch copy of the project holds: the files make and the stages read; the environment, llama.cpp and its
# built tools are linked (read, never written by a make run)
PROJECT_FILES = ("Makefile", "Dockerfile", "docker", "ftkit", "scripts", "bench", "tools", "configs", "tests/go", "pyproject.toml",
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
    from ftkit.core import ollama
    from ftkit.verify.deploy_parity import ollama_routes

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
    """A whole-suite run that passed (`make test`, or `make test-fast`: -m "not slow") records its time and counts,
    and the time of each test file (its tests' setup, call and teardown, on whichever worker ran them)."""
    import time

    from ftkit import timings

    config = session.config
    if hasattr(config, "workerinput"):
        return  # a pytest-xdist worker: the controller records the whole run
    marks = config.getoption("markexpr", "")
    whole = not config.args or [str(Path(a).resolve()) for a in config.args] == [str(ROOT / "tests")]
    if exitstatus != 0 or not whole or config.getoption("keyword", "") or marks not in ("", "not slow"):
        return
    stats = config.pluginmanager.get_plugin("terminalreporter").stats
    counts = {k: len([r for r in stats.get(k, []) if getattr(r, "when", "call") == "call" or k == "skipped"])
              for k in ("passed", "skipped")}
    workers = getattr(config.option, "numprocesses", None) or 1
    # one process (TEST_WORKERS=1) is a step of its own: the table's make test and test-file rows are the default's
    one = " TEST_WORKERS=1" if workers == 1 else ""
    step = f"`make test{one}` (slow tests included)" if not marks else f"`make test-fast{one}` (-m \"not slow\")"
    timings.record(step, time.perf_counter() - _SESSION_START[0],
                   f"{counts['passed']} passed, {counts['skipped']} skipped, {workers} worker(s)")
    if not marks and not one:
        for file, seconds in sorted(_FILE_SECONDS.items()):
            timings.record(f"`{file}` in `make test`", seconds, f"{workers} worker(s); time on its worker")


_FILE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    """Each test's setup, call and teardown, added to its file's time (the controller sees every worker's)."""
    file = report.nodeid.split("::")[0]
    _FILE_SECONDS[file] = _FILE_SECONDS.get(file, 0.0) + report.duration


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
