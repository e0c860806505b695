"""Make remembers the settings you give, dry runs change nothing, and a stage re-runs only when something that
shapes its output changes. Every make runs in a scratch copy of the project (make records where it runs)."""
import json
from pathlib import Path

import pytest
from conftest import ROOT, run_make, run_script, scratch_project


@pytest.fixture
def project(tmp_path) -> Path:
    return scratch_project(tmp_path / "project")


def state(project: Path) -> dict[str, tuple[str, float]]:
    """Every file make writes on its own (the settings and the stamps): content and modification time."""
    files = [project / ".ftkit" / "settings.mk", *project.rglob(".settings-*")]
    return {str(f.relative_to(project)): (f.read_text(), f.stat().st_mtime_ns) for f in files if f.is_file()}


def settings_table(project: Path, *args) -> dict[str, tuple[str, str]]:
    """`make settings`: variable -> (value, where it comes from)."""
    rows = {}
    for line in run_make("settings", *args, project=project).stdout.splitlines()[2:]:
        name, rest = line.strip().split(" ", 1)
        value, origin = rest.strip().rsplit("  ", 1) if "  " in rest.strip() else ("", rest.strip())
        rows[name] = (value.strip(), origin.strip())
    return rows


def test_a_setting_given_once_is_used_until_another_is_given_and_the_preset_fills_only_the_rest(project):
    run_make("sample", project=project)
    assert not (project / ".ftkit").exists()  # nothing given, nothing recorded
    run_make("sample", "EPOCHS=1", "SYSTEM_PROMPT=你是 #1 助手", project=project)  # a make that builds records
    planned = run_make("-n", "-B", "train", project=project).stdout
    assert "--epochs 1" in planned and "--config configs/tiny-cpu.yaml" in planned
    assert "--batch-size" not in planned and "--learning-rate" not in planned  # never set: the preset's
    table = settings_table(project)
    assert table["EPOCHS"][0] == "1" and table["EPOCHS"][1].startswith("recorded (make sample on ")
    assert table["SYSTEM_PROMPT"][0] == "你是 #1 助手"  # a '#' survives the file
    assert table["BATCH_SIZE"] == ("8", "preset configs/tiny-cpu.yaml") and table["NUM_GPUS"] == ("1", "default")
    assert settings_table(project, "EPOCHS=2")["EPOCHS"] == ("2", "command line")
    assert "--epochs 2" in run_make("-n", "-B", "train", "EPOCHS=2", project=project).stdout  # the command line wins
    run_make("sample", "EPOCHS=3", project=project)
    assert "--epochs 3" in run_make("-n", "-B", "train", project=project).stdout
    assert "--system" in run_make("-n", "-B", "gguf", project=project).stdout  # the other one stays
    reset = run_make("settings-reset", project=project).stdout
    assert "forgot" in reset and not (project / ".ftkit" / "settings.mk").exists()
    assert "--epochs" not in run_make("-n", "-B", "train", project=project).stdout  # the preset's again


def test_dry_runs_and_the_targets_that_build_nothing_write_nothing(project):
    run_make("sample", "EPOCHS=1", project=project)
    before = state(project)
    assert ".ftkit/settings.mk" in before and "models/finetuned/.settings-train" in before
    for args in (["-n", "eval", "EPOCHS=4"], ["help", "EPOCHS=9"], ["settings", "EPOCHS=7"], ["-q", "train", "LR=1"],
                 ["-n", "all", "RUN=docker", "GGUF_TYPES=Q8_0"], ["-t", "sample", "SEED=3"]):
        run_make(*args, check=False, project=project)
        assert state(project) == before, args
    tests = run_make("test", f"PYTEST_ARGS=--collect-only -q {ROOT / 'tests' / 'test_settings.py'}", "EPOCHS=5",
                     project=project)
    assert "test_dry_runs_and_the_targets_that_build_nothing_write_nothing" in tests.stdout
    assert state(project) == before  # `make test` records nothing either
    # a dry run still shows what a real one would redo: the changed epochs retrain
    assert "train_lora.py" in run_make("-n", "train", "EPOCHS=4", project=project).stdout


def test_where_a_stage_runs_and_what_shapes_no_file_never_rerun_it_and_the_system_prompt_rerenders_the_modelfile_only(
        project):
    run_make("sample", "RUN=local", project=project)
    before = state(project)
    run_make("sample", "RUN=docker", "IMAGE=ftkit:x", "PYTHON=/elsewhere/python", "N_GPU_LAYERS=0", project=project)
    after = {k: v for k, v in state(project).items() if k != ".ftkit/settings.mk"}
    assert after == {k: v for k, v in before.items() if k != ".ftkit/settings.mk"}  # no stamp changed
    run_make("sample", "SYSTEM_PROMPT=你是助手", "OLLAMA_VERSION=0.11.4", project=project)
    changed = {k for k, v in state(project).items() if before.get(k) != v}
    assert changed == {".ftkit/settings.mk", "models/gguf/.settings-modelfile"}
    planned = run_make("-n", "gguf", project=project).stdout  # nothing built yet: the whole export is planned
    assert "--modelfile-only" in planned and "--system" in planned and "--n-gpu-layers 0" in planned


@pytest.mark.parametrize("base, name", [
    ("Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b-instruct-ft"),
    ("/data/models/My_Tiny+Qwen/", "my_tiny-qwen-ft"),
    ("models/tiny-qwen2.5", "qwen2.5-finetuned"),
    ("models/tiny-llama", "llama2-finetuned"),
])
def test_the_model_name_comes_from_the_base_model(base, name):
    planned = run_make("-n", "-B", "gguf", f"BASE_MODEL={base}", "RUN=local").stdout
    assert f"--model-name {name} " in planned


def test_the_family_names_the_embedded_model_and_a_given_name_stands():
    assert "--model-name qwen3-finetuned " in run_make("-n", "-B", "gguf", "FAMILY=qwen3", "RUN=local").stdout
    assert "--model-name mine " in run_make("-n", "-B", "gguf", "MODEL_NAME=mine", "RUN=local").stdout


def test_training_a_large_model_without_a_gpu_stops_before_loading_it_with_an_estimate(tiny_model_dir, prepared_data,
                                                                                       tmp_path):
    """A TinyLlama-1.1B config (no weights: the guard must stop before any load) with the tiny tokenizer."""
    import shutil

    big = tmp_path / "big"
    shutil.copytree(tiny_model_dir, big, ignore=shutil.ignore_patterns("*.safetensors"))
    config = json.loads((big / "config.json").read_text())
    config.update(hidden_size=2048, intermediate_size=5632, num_hidden_layers=24, num_attention_heads=32,
                  num_key_value_heads=4)
    (big / "config.json").write_text(json.dumps(config))
    args = ["--base-model", str(big), "--train-data", str(prepared_data / "train_train.jsonl"),
            "--val-data", str(prepared_data / "train_validation.jsonl"), "--output-dir", str(tmp_path / "out")]
    refused = run_script("train_lora.py", *args, env={"CUDA_VISIBLE_DEVICES": ""})
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert "1.0 B parameters" in last or "1.1 B parameters" in last, last
    assert "no GPU" in last and "tokens/s on this CPU (measured)" in last and "ALLOW_CPU=1" in last
    allowed = run_script("train_lora.py", *args, "--allow-cpu", env={"CUDA_VISIBLE_DEVICES": ""})
    assert allowed.returncode != 0 and "no GPU" not in allowed.stderr  # past the guard: the missing weights stop it
    assert not (tmp_path / "out" / "lora_adapter").exists()
