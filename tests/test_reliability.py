"""Nothing lost, nothing half-written, nothing trusted blindly: bad input, kill -9, concurrent runs,
full disks, remote code, pickles, secrets, and input limits."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_script
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftkit.core.cli import UserError
from ftkit.core.readers import InputError
from ftkit.stages.data.prepare import PrepareConfig, prepare

ROOT = Path(__file__).resolve().parents[1]
PREPARE = str(ROOT / "scripts" / "prepare_data.py")


cli = run_script


def one_line_error(result) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# --- bad input, property-tested ----------------------------------------------------------------

texts = st.text(max_size=40) | st.text(alphabet="你好世界，。！？\n\t \x00\x07\u3000", max_size=40)
values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | texts,
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=8)
fields = st.sampled_from(["instruction", "input", "output", "system", "history", "messages", "conversations",
                          "category", "question", "answer"])
records = st.dictionaries(fields, values | texts, max_size=5) | values


def check_prepare(tmp_path, path, **kwargs):
    out = tmp_path / "out"
    try:
        summary = prepare(PrepareConfig(inputs=[str(path)], output_dir=str(out), **kwargs))
    except InputError:
        assert not (out / "train_train.jsonl").exists()  # failed: nothing written
        return
    stats = json.loads((out / "train_stats.json").read_text(encoding="utf-8"))
    c = stats["counts"]
    assert c["kept"] + c["rejected"] + c["duplicates"] == c["input"] == summary.input_records
    # JSONL lines end at \n only (str.splitlines would also split inside a record at U+0085 or U+2028)
    kept = sum((out / f"train_{s}.jsonl").read_bytes().count(b"\n") for s in ("train", "validation", "test"))
    assert kept == c["kept"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(records, max_size=12), st.sampled_from(["jsonl", "json"]))
def test_random_records_never_crash_and_always_add_up(tmp_path_factory, items, fmt):
    tmp = tmp_path_factory.mktemp("prop")
    path = tmp / f"data.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8")
    else:
        path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    check_prepare(tmp, path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300), st.sampled_from(["jsonl", "json", "csv", "tsv"]),
       st.sampled_from(["auto", "utf-8", "gbk"]))
def test_random_bytes_and_truncated_files_are_an_error_or_data(tmp_path_factory, blob, fmt, encoding):
    tmp = tmp_path_factory.mktemp("bytes")
    good = json.dumps({"instruction": "问题", "output": "回答"}, ensure_ascii=False).encode("utf-8")
    path = tmp / f"data.{fmt}"
    path.write_bytes((b"instruction,output\n" if fmt in ("csv", "tsv") else b"") + good[: len(blob) % len(good)] + blob)
    check_prepare(tmp, path, encoding=encoding)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.fixed_dictionaries({"instruction": texts, "output": texts}, optional={"input": texts}), max_size=8))
def test_with_the_tokenizer_too(tmp_path_factory, tiny_model_dir, items):
    tmp = tmp_path_factory.mktemp("tok")
    path = tmp / "data.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8")
    check_prepare(tmp, path, tokenizer=str(tiny_model_dir), max_length=64)


@pytest.mark.parametrize("content", [b'[{"instruction": "a", "output": "b"}, {"instr', b"\xff\xfe\x00\x01garbage",
                                     b'{"instruction": "a"\n'])
def test_cli_bad_files_one_line_exit_2(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    line = one_line_error(cli("prepare_data.py", "--input", str(path), "--output-dir", str(tmp_path / "o"),
                              "--tokenizer", "none"))
    assert str(path) in line


def test_a_huge_record_is_rejected_by_its_length_without_tokenizing(tmp_path, tiny_model_dir):
    path = tmp_path / "huge.jsonl"
    huge = {"instruction": "总结下面的文字", "output": "很长的回答。" * 1_000_000}  # 6 M characters
    path.write_text(json.dumps(huge, ensure_ascii=False) + "\n" + json.dumps({"instruction": "问", "output": "答"},
                                                                              ensure_ascii=False) + "\n", encoding="utf-8")
    started = time.perf_counter()
    summary = prepare(PrepareConfig(inputs=[str(path)], output_dir=str(tmp_path / "o"), tokenizer=str(tiny_model_dir)))
    assert time.perf_counter() - started < 60
    assert summary.rejected == {"too_long": 1} and summary.kept == 1
    rejected = json.loads((tmp_path / "o" / "train_rejected.jsonl").read_text(encoding="utf-8"))
    assert "6,000,0" in rejected["detail"] and "--max-length 1024" in rejected["detail"]
    assert len(rejected["record"]["output"]) < 3000  # the rejected file keeps a clipped copy


# --- interruption ------------------------------------------------------------------------------

@pytest.mark.slow
def test_kill_9_during_evaluation_leaves_no_results_and_a_rerun_completes(trained_run, prepared_data, tiny_model_dir, tmp_path):
    output = tmp_path / "eval.csv"
    args = ["--base-model", str(tiny_model_dir), "--lora-model", str(trained_run / "lora_adapter"),
            "--test-data", str(prepared_data / "train_test.jsonl"), "--output", str(output), "--max-new-tokens", "8"]
    killed = cli("evaluate_model.py", *args, env={"FTKIT_FAULT": "eval.write:1"})
    assert killed.returncode == -9
    assert not output.exists() and not Path(f"{output}.summary.json").exists()
    assert list(tmp_path.glob(".eval.csv.*.tmp"))  # the half-written file exists only under its temporary name
    again = cli("evaluate_model.py", *args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(Path(f"{output}.summary.json").read_text())["test_data"]["records"] == 24
    assert not list(tmp_path.glob(".eval.csv.*.tmp"))  # the leftover was cleaned up


@pytest.mark.slow
def test_kill_9_during_merge_keeps_the_previous_merged_model(trained_run, tiny_model_dir, merged, tmp_path):
    import shutil

    out = tmp_path / "merged_model"
    shutil.copytree(merged, out)
    before = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").touch()
    args = ["--base-model", str(tiny_model_dir), "--lora-model", str(trained_run / "lora_adapter"), "--output", str(out)]
    killed = cli("merge_lora.py", *args, env={"FTKIT_FAULT": "merge.save:1"})
    assert killed.returncode == -9
    assert (out / "model.safetensors").read_bytes() == before  # the old, complete model is untouched
    assert cli("merge_lora.py", *args).returncode == 0
    assert not list(tmp_path.glob(".merged_model.*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("point", ["gguf.convert", "gguf.quantize"])
def test_kill_9_during_gguf_conversion_leaves_no_gguf_it_did_not_finish(merged, prepared_data, tmp_path, point):
    out = tmp_path / "gguf"
    args = ["--model-path", str(merged), "--quantization", "Q4_K_M", "--output-dir", str(out), "--model-name", "m",
            "--no-check"]
    killed = cli("convert_to_gguf.py", *args, env={"FTKIT_FAULT": f"{point}:1"})
    assert killed.returncode == -9
    assert not (out / "m-Q4_K_M.gguf").exists()
    assert (out / "m-F16.gguf").exists() == (point == "gguf.quantize")  # only whole files under final names
    again = cli("convert_to_gguf.py", *args)
    assert again.returncode == 0, again.stderr[-2000:]
    from llama_cpp import Llama

    Llama(model_path=str(out / "m-Q4_K_M.gguf"), n_ctx=64, verbose=False)
    assert not list(out.glob(".*.tmp"))


# --- concurrency -------------------------------------------------------------------------------

HOLD_LOCK = """
import sys, time
from ftkit.core.lock import output_lock
with output_lock(sys.argv[1], "data"):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_run_into_the_same_folder_is_refused_until_the_first_dies(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "问", "output": "答"}, ensure_ascii=False) + "\n", encoding="utf-8")
    other = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path / "out")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "locked"
        line = one_line_error(cli("prepare_data.py", "--input", str(data), "--output-dir", str(tmp_path / "out"),
                                  "--tokenizer", "none"))
        assert f"in use by another run (data, pid {other.pid}" in line and "HOLD" not in line
        assert not (tmp_path / "out" / "train_train.jsonl").exists()
    finally:
        other.kill()  # kill -9: no clean-up runs, the lock file stays behind, the kernel drops the lock
        other.wait()
    assert (tmp_path / "out" / ".ftkit.core.lock").exists()
    result = cli("prepare_data.py", "--input", str(data), "--output-dir", str(tmp_path / "out"), "--tokenizer", "none")
    assert result.returncode == 0 and f"pid {other.pid} is no longer held" in result.stderr
    assert not (tmp_path / "out" / ".ftkit.core.lock").exists()  # released at the end


def test_two_real_runs_at_once_the_second_is_refused_and_the_first_finishes(tmp_path, tiny_model_dir):
    """The first run is frozen (SIGSTOP) while it holds the lock, so the two always overlap."""
    import signal

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"问题{i}", "output": "答"}, ensure_ascii=False) + "\n"
                            for i in range(2000)), encoding="utf-8")
    cmd = [sys.executable, PREPARE, "--input", str(data), "--output-dir", str(tmp_path / "out"), "--tokenizer",
           str(tiny_model_dir)]
    lock = tmp_path / "out" / ".ftkit.core.lock"

    def holder():
        try:
            return json.loads(lock.read_text()).get("pid")
        except (OSError, ValueError):  # not there yet, or being written
            return None

    first = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while holder() != first.pid and time.time() < deadline and first.poll() is None:
            time.sleep(0.005)
        os.kill(first.pid, signal.SIGSTOP)  # it holds the lock, and keeps it
        assert first.poll() is None and holder() == first.pid, "the first run never held the lock"
        second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        assert second.returncode == 2 and f"in use by another run (data, pid {first.pid}" in second.stderr
    finally:
        os.kill(first.pid, signal.SIGCONT)
    first_err = first.communicate()[1]
    assert first.returncode == 0, first_err
    assert json.loads((tmp_path / "out" / "train_stats.json").read_text())["counts"]["kept"] == 2000
    assert not lock.exists()


# --- full disk, unwritable folders -------------------------------------------------------------

def test_full_disk_names_the_path_and_keeps_earlier_outputs(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"问题{i}", "output": "回答" * 20}, ensure_ascii=False) + "\n"
                            for i in range(2000)), encoding="utf-8")
    out = tmp_path / "out"
    small = tmp_path / "small.jsonl"
    small.write_text("".join(data.read_text(encoding="utf-8").splitlines(True)[:5]), encoding="utf-8")
    assert cli("prepare_data.py", "--input", str(small), "--output-dir", str(out), "--tokenizer", "none").returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # a 100 KiB file size limit: the real outputs (about 1 MB) cannot be written, as on a full disk
    result = subprocess.run(["bash", "-c", f"ulimit -f 100; exec {sys.executable} {PREPARE} --input {data} "
                             f"--output-dir {out} --tokenizer none"], cwd=ROOT, capture_output=True, text=True)
    line = one_line_error(result)
    assert str(out) in line and "File too large" in line
    assert {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")} == before


def test_unwritable_output_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "问", "output": "答"}, ensure_ascii=False) + "\n", encoding="utf-8")
    line = one_line_error(cli("prepare_data.py", "--input", str(data), "--output-dir", str(blocker / "out"),
                              "--tokenizer", "none"))
    assert str(blocker) in line


# --- security ----------------------------------------------------------------------------------

def test_remote_code_does_not_run_without_the_flag(tmp_path):
    from ftkit.core.loading import load_hf

    model = tmp_path / "custom"
    model.mkdir()
    marker = tmp_path / "code-ran"
    (model / "config.json").write_text(json.dumps({"model_type": "evil", "architectures": ["EvilModel"],
                                                   "auto_map": {"AutoConfig": "modeling_evil.EvilConfig",
                                                                "AutoModelForCausalLM": "modeling_evil.EvilModel"}}))
    (model / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    with pytest.raises(UserError, match="cannot load the model"):
        load_hf(str(model))
    assert not marker.exists()


def test_pickled_weights_are_refused_unless_allowed(tiny_model_dir, tmp_path):
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    from ftkit.core.loading import load_hf

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    # the old format: a pickled state dict (transformers 5 no longer writes it)
    torch.save(AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict(), pickled / "pytorch_model.bin")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model"):
        shutil.copy(tiny_model_dir / name, pickled / name)
    assert list(pickled.glob("*.bin")) and not list(pickled.glob("*.safetensors"))
    with pytest.raises(UserError, match="pickle files.*--allow-pickle"):
        load_hf(str(pickled))
    assert load_hf(str(pickled), allow_pickle=True) is not None


@pytest.mark.slow
def test_hf_token_never_reaches_logs_manifests_or_reports(prepared_data, tiny_model_dir, tmp_path):
    secret = "hf_ThisIsATestSecretThatMustNotLeak"
    env = {"HF_TOKEN": secret, "HUGGING_FACE_HUB_TOKEN": secret}
    out = tmp_path / "run"
    steps = [
        ("train_lora.py", "--base-model", str(tiny_model_dir), "--train-data", str(prepared_data / "train_train.jsonl"),
         "--val-data", str(prepared_data / "train_validation.jsonl"), "--output-dir", str(out / "model"), "--max-steps", "3"),
        ("evaluate_model.py", "--base-model", str(tiny_model_dir), "--lora-model", str(out / "model" / "lora_adapter"),
         "--test-data", str(prepared_data / "train_test.jsonl"), "--output", str(out / "reports" / "e.csv"),
         "--max-new-tokens", "4"),
        ("make_report.py", "--data-dir", str(prepared_data), "--model-dir", str(out / "model"),
         "--eval-output", str(out / "reports" / "e.csv"), "--output", str(out / "reports" / "training_report.md")),
    ]
    logs = []
    for script, *args in steps:
        result = cli(script, *args, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        logs.append(result.stdout + result.stderr)
    assert secret not in "".join(logs)
    scanned = 0
    for path in out.rglob("*"):
        if path.is_file():
            scanned += 1
            assert secret.encode() not in path.read_bytes(), path
    assert scanned > 20
