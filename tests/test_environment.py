"""The foundation itself: pins, the llama.cpp checkout, idempotent set-up, and the Makefile's contract."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_make, run_script

ROOT = Path(__file__).resolve().parents[1]


def pinned(name: str) -> str:
    text = (ROOT / "requirements.txt").read_text()
    return re.search(rf"^{re.escape(name)}==(\S+)", text, re.M).group(1)


def git(*args, cwd=ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def test_installed_versions_match_the_pins():
    from importlib.metadata import version

    for name in ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "bitsandbytes",
                 "sentencepiece", "llama-cpp-python", "rouge-score", "sacrebleu", "jieba"):
        assert version(name).split("+")[0] == pinned(name), name


def test_llama_cpp_checkout_is_at_the_commit_llama_cpp_python_vendors():
    gitlink = git("ls-files", "-s", "llama.cpp").split()
    assert gitlink[0] == "160000", "llama.cpp must be a submodule (gitlink)"
    commit = gitlink[1]
    assert (ROOT / "docker" / "llama_cpp_commit").read_text().strip() == commit
    assert git("rev-parse", "HEAD", cwd=ROOT / "llama.cpp") == commit
    assert git("status", "--porcelain", cwd=ROOT / "llama.cpp") == ""
    assert (ROOT / "llama.cpp" / "convert_hf_to_gguf.py").exists()


def test_fetch_script_populates_an_empty_folder(tmp_path):
    dest = tmp_path / "llama.cpp"
    dest.mkdir()  # what a fresh clone has: an empty submodule folder
    result = subprocess.run(["bash", "docker/fetch_llama_cpp.sh", str(dest)], cwd=ROOT, capture_output=True,
                            text=True, env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr
    assert git("rev-parse", "HEAD", cwd=dest) == (ROOT / "docker" / "llama_cpp_commit").read_text().strip()
    assert "includeif" not in (dest / ".git" / "config").read_text().lower()  # the sdist CI's credentials are gone
    again = subprocess.run(["bash", "docker/fetch_llama_cpp.sh", str(dest)], cwd=ROOT, capture_output=True, text=True)
    assert "already populated" in again.stdout


def test_setup_is_idempotent():
    venv = Path(sys.prefix)
    result = subprocess.run(["bash", "docker/install_python_deps.sh", str(venv)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_make_help_lists_every_target():
    out = run_make("help").stdout
    makefile = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split()
    for target in phony:
        assert re.search(rf"^\s+{re.escape(target)}\s", out, re.M), f"`make help` misses {target}"


def test_make_variables_are_overridable():
    out = run_make("-n", "-B", "tiny-model", "TINY_MODEL=/tmp/elsewhere", "PYTHON=mypython", "RUN=local").stdout
    assert "mypython scripts/build_tiny_model.py --family llama2 --output-dir /tmp/elsewhere" in out


def test_every_script_has_help():
    for script in sorted(p for d in ("scripts", "bench", "tools") for p in (ROOT / d).glob("*.py")):
        result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "usage:" in result.stdout, script.name


def test_scripts_readme_is_generated_from_the_current_help(tmp_path):
    fresh = tmp_path / "README.md"
    subprocess.run([sys.executable, str(ROOT / "tools" / "write_scripts_readme.py"), "--output", str(fresh), "--tables", "none"],
                   check=True, capture_output=True, timeout=300)
    assert fresh.read_text() == (ROOT / "scripts" / "README.md").read_text(), "run `make docs` and commit scripts/README.md"
    listed = set(re.findall(r"^## (\S+\.py)$", fresh.read_text(), re.M))
    assert listed == {str(p.relative_to(ROOT)) for d in ("scripts", "bench", "tools") for p in (ROOT / d).glob("*.py")}


@pytest.mark.parametrize("script, args", [
    ("train_lora.py", ["--base-model", "/no/such/model", "--max-steps", "1"]),
    ("merge_lora.py", ["--base-model", "./missing-model", "--lora-model", ".", "--output", "/tmp/ftkit-never"]),
    ("prepare_data.py", ["--input", "README.md", "--input-format", "jsonl", "--tokenizer", "../missing",
                         "--output-dir", "/tmp/ftkit-never"]),
])
def test_a_missing_local_model_folder_is_named_plainly(script, args):
    result = run_script(script, *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "no such" in last and "folder" in last, last


def test_an_old_make_is_refused_with_a_clear_message_and_failed_targets_are_deleted():
    from conftest import run_make

    old = run_make("help", ".FEATURES=", check=False)  # what make 3.81 (macOS) reports: no grouped targets
    assert old.returncode != 0 and "needs GNU make 4.3 or newer" in old.stderr and "brew install make" in old.stderr
    database = run_make("-pn", "help").stdout
    assert "\n.DELETE_ON_ERROR:" in database


def test_package_modules_import_each_other_in_one_direction_only():
    """No import circles, at module level or inside functions: arrows point down."""
    import ast
    from collections import defaultdict

    graph = defaultdict(set)
    for path in (ROOT / "ftkit").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ftkit":
                targets = [node.module.split(".")[1]] if "." in node.module else [a.name for a in node.names]
                graph[path.stem].update(t for t in targets if t != path.stem)

    def reaches(start, goal, seen):
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in graph.get(start, ()))

    circles = sorted(m for m in list(graph) if reaches(m, m, {m}))
    assert not circles, circles


def test_the_benchmark_table_is_made_from_the_recorded_runs():
    from ftkit.benchmarks import START, load_runs, page_with, render_table, section

    runs = load_runs(ROOT / "docs" / "benchmarks.json")
    assert runs, "no recorded `make bench` run"
    page = page_with(ROOT, START)
    assert section(page.read_text(encoding="utf-8")) == render_table(runs), f"run `make docs` ({page.name})"


def test_every_table_of_measured_figures_is_made_from_the_records(tmp_path):
    """make docs writes them: benchmarks, export at scale, training (the sparse-logits rows), the measured times
    (the test suite's among them). A page edited by hand, or a record without its table, fails here."""
    import shutil

    from ftkit import timings
    from ftkit.benchmarks import load_runs, pages, write_tables

    for name in ("benchmarks.json", "bench_scale.json", "bench_train.json", "bench_eval_general.json", "timings.json"):
        assert load_runs(ROOT / "docs" / name), f"docs/{name}: no run recorded"
    steps = [run["step"] for run in load_runs(ROOT / "docs" / "timings.json")]
    assert any(step.startswith("`make test` (slow tests included)") for step in steps), "no whole make test recorded"
    (tmp_path / "docs").mkdir()
    for page in pages(ROOT):
        shutil.copy(page, tmp_path / page.relative_to(ROOT))
    write_tables(tmp_path, ROOT / "docs")
    for page in pages(ROOT):
        fresh = (tmp_path / page.relative_to(ROOT)).read_text(encoding="utf-8")
        assert fresh == page.read_text(encoding="utf-8"), f"run `make docs` ({page.relative_to(ROOT)})"
    assert timings.duration(2370) == "39 min 30 s" and timings.duration(3.46) == "3.5 s"


def test_the_export_at_scale_table_is_made_from_the_recorded_run_and_meets_its_targets():
    from ftkit.benchmarks import SCALE_END, SCALE_START, load_runs, page_with, render_scale_table, section

    runs = load_runs(ROOT / "docs" / "bench_scale.json")
    assert runs, "no recorded `make bench-scale` run"
    page = page_with(ROOT, SCALE_START).read_text(encoding="utf-8")
    assert section(page, SCALE_START, SCALE_END) == render_scale_table(runs), "run `make docs`"
    latest = runs[-1]
    assert {row["model"] for row in latest["models"]} == {"tinyllama-1.1b", "qwen2.5-0.5b", "llama3.2-1b"}
    assert latest["checks_passed"]
    for row in latest["models"]:
        for stage, figures in row["stages"].items():
            assert figures["model_rss"] / row["checkpoint_bytes"] == pytest.approx(figures["ratio"])
            assert figures["met"] == (figures["ratio"] <= latest["targets"][stage]), (row["model"], stage)


def test_make_test_keeps_each_group_on_one_worker(tmp_path):
    """--dist loadgroup with this suite's hook: a family's tests (by their name parameter) and an xdist_group share
    one worker, other tests spread (pytest 9 ignores the id pytest-xdist 3.8 writes, tests/conftest.py)."""
    (tmp_path / "conftest.py").write_text(  # the suite's conftest under another name: this one is "conftest"
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('suite_conftest', {str(ROOT / 'tests' / 'conftest.py')!r})\n"
        "suite = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(suite)\n"
        "family_model, family_run, run_folder = suite.family_model, suite.family_run, suite.run_folder\n"
        "pytest_collection_modifyitems = suite.pytest_collection_modifyitems\n")
    (tmp_path / "test_probe.py").write_text(
        "import time\nimport pytest\n\n"
        "@pytest.mark.parametrize('i', range(4))\n@pytest.mark.parametrize('name', ['qwen3'])\n"
        "def test_family(name, i, family_run):\n    time.sleep(0.3)\n\n"
        "@pytest.mark.xdist_group('pair')\n@pytest.mark.parametrize('i', range(4))\n"
        "def test_grouped(i):\n    time.sleep(0.3)\n\n"
        "@pytest.mark.parametrize('i', range(6))\ndef test_free(i):\n    time.sleep(0.3)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup",
                             "-v", "test_probe.py"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    workers = {}
    for worker, test in re.findall(r"\[(gw\d)\] \[ *\d+%\] PASSED test_probe.py::(test_\w+)", result.stdout):
        workers.setdefault(test, set()).add(worker)
    assert workers["test_family"] and len(workers["test_family"]) == 1, result.stdout
    assert len(workers["test_grouped"]) == 1 and len(set().union(*workers.values())) == 2, result.stdout


def test_the_installed_ftkit_command_runs_every_stage_with_the_scripts_flags():
    """`make setup` installs the checkout: `ftkit --help` lists the stages, and `ftkit <stage>` is the guide's script."""
    from ftkit.__main__ import STAGES

    ftkit = Path(sys.executable).parent / "ftkit"
    listing = subprocess.run([str(ftkit), "--help"], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and all(re.search(rf"^\s+{re.escape(s)}\s", listing.stdout, re.M) for s in STAGES)
    env = dict(os.environ, COLUMNS="100")
    for stage, (module, _) in STAGES.items():
        command = subprocess.run([str(ftkit), stage, "--help"], capture_output=True, text=True, env=env, timeout=120)
        script = subprocess.run([sys.executable, str(ROOT / "scripts" / f"{module}.py"), "--help"], capture_output=True,
                                text=True, env=env, timeout=120)
        assert command.returncode == script.returncode == 0, stage
        assert command.stdout.startswith(f"usage: ftkit {stage} ")
        flags = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", command.stdout))
        assert flags and flags == set(re.findall(r"(?<![\w-])--[a-z][\w-]*", script.stdout)), stage
    unknown = subprocess.run([str(ftkit), "trian"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "no such stage" in unknown.stderr and "train" in unknown.stderr


def test_no_code_edits_the_import_path_and_each_guide_script_is_a_thin_entry_point():
    edit = "sys.path." + "insert"  # spelled in two, so this test does not find itself
    found = [str(p.relative_to(ROOT)) for d in ("ftkit", "scripts", "bench", "tools", "tests")
             for p in (ROOT / d).rglob("*.py") if edit in p.read_text(encoding="utf-8")]
    assert found == []
    for script in (ROOT / "scripts").glob("*.py"):
        code = script.read_text(encoding="utf-8")
        assert f"from ftkit.commands.{script.stem} import main" in code and len(code.splitlines()) < 15, script.name
