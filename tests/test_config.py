"""Settings are resolved once, in Python (ftkit/config): each default is written in one place, the scripts and Make
agree on it, and the order is command line, recorded, environment, preset, default."""
import argparse
import ast
import importlib
import re
import shlex
import sys

import pytest
from conftest import ROOT, run_make

from ftkit.config import defaults
from ftkit.config.settings import BY_NAME, Resolved, SettingError, read_recorded, write_recorded

# Make setting -> the stage flags it sets: (module under ftkit.commands, argparse dest)
FLAGS = {
    "N_GPU_LAYERS": [("convert_to_gguf", "n_gpu_layers"), ("evaluate_model", "n_gpu_layers"),
                     ("eval_general", "n_gpu_layers"), ("acceptance_check", "n_gpu_layers"), ("serve", "n_gpu_layers")],
    "EVAL_BATCH": [("evaluate_model", "batch_size"), ("eval_general", "batch_size")],
    "SEED": [("create_sample_data", "seed"), ("prepare_data", "seed"), ("train_lora", "seed")],
    "MAX_LENGTH": [("prepare_data", "max_length"), ("train_lora", "max_length")],
    "THINKING": [("prepare_data", "thinking"), ("train_lora", "thinking")],
    "VAL_RATIO": [("prepare_data", "val_ratio")], "TEST_RATIO": [("prepare_data", "test_ratio")],
    "DATA_DIR": [("prepare_data", "output_dir")], "DATA_NAME": [("prepare_data", "output_name")],
    "SAMPLE_DIR": [("create_sample_data", "output_dir")], "NUM_SAMPLES": [("create_sample_data", "num")],
    "EPOCHS": [("train_lora", "epochs")], "BATCH_SIZE": [("train_lora", "batch_size")],
    "LR": [("train_lora", "learning_rate")], "LORA_R": [("train_lora", "lora_r")],
    "LORA_ALPHA": [("train_lora", "lora_alpha")], "MODEL_DIR": [("train_lora", "output_dir")],
    "MAX_NEW_TOKENS": [("evaluate_model", "max_new_tokens")], "EVAL_OUTPUT": [("evaluate_model", "output")],
    "MERGED_DIR": [("merge_lora", "output"), ("convert_to_gguf", "model_path")],
    "GGUF_DIR": [("convert_to_gguf", "output_dir")], "GGUF_TYPES": [("convert_to_gguf", "quantization")],
    "MODEL_NAME": [("convert_to_gguf", "model_name"), ("ollama_create", "model_name")],
    "GENERAL_SHOTS": [("eval_general", "shots")], "GENERAL_FORMAT": [("eval_general", "format")],
    "GENERAL_PER_SUBJECT": [("eval_general", "per_subject")],
    "REPORT": [("make_report", "output"), ("acceptance_check", "report")],
    "MIN_RECORDS": [("acceptance_check", "min_records")],
    "MIN_TOKENS_PER_SEC": [("acceptance_check", "min_tokens_per_second")],
    "SERVE_HOST": [("serve", "host")], "SERVE_PORT": [("serve", "port")],
}


def parser_of(module: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser a stage's main() builds, caught when it parses (nothing runs)."""
    caught = {}

    def catch(self, *args, **kwargs):
        caught["parser"] = self
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    monkeypatch.setattr(sys, "argv", [module])
    with pytest.raises(SystemExit):
        importlib.import_module(f"ftkit.commands.{module}").main()
    return caught["parser"]


def stage_default(module: str, dest: str, monkeypatch):
    """The flag's default: a typed config's field (its parser layers over it and defaults to None), else the
    argparse default of a stage whose flags are written by hand."""
    import dataclasses

    from ftkit.stages.train.train import TrainConfig

    loaded = importlib.import_module(f"ftkit.commands.{module}")
    configs = [c for c in vars(loaded).values() if dataclasses.is_dataclass(c) and isinstance(c, type)]
    for config in configs + ([TrainConfig] if module == "train_lora" else []):
        field = next((f for f in dataclasses.fields(config) if f.name == dest), None)
        if field is not None:
            return field.default
    return parser_of(module, monkeypatch).get_default(dest)


def same(make_value: str, flag_default) -> bool:
    if isinstance(flag_default, list | tuple):
        return make_value.split() == [str(v) for v in flag_default]
    if isinstance(flag_default, int | float) and not isinstance(flag_default, bool):
        return float(make_value) == float(flag_default)
    return make_value == str(flag_default)


def plain() -> Resolved:
    """Nothing given, no preset (the tiny model's would fill training's hyperparameters)."""
    return Resolved({"TRAIN_CONFIG": ""}, environment={}, recorded={}, quiet=True)


def test_every_script_flag_defaults_to_the_make_settings_default(monkeypatch):
    """The drift of issue 33 (N_GPU_LAYERS -1 in make, 0 in four scripts; EVAL_BATCH 32 against 16) cannot return."""
    settings = plain()
    for name, flags in FLAGS.items():
        value = settings[name]
        for module, dest in flags:
            default = stage_default(module, dest, monkeypatch)
            assert same(value, default), f"{module} --{dest.replace('_', '-')}: {default!r}, make's {name}={value!r}"


def test_what_make_passes_is_the_stages_own_default(monkeypatch):
    """With nothing set, every value `make all` passes to a stage is that stage's default (the tiny preset aside)."""
    planned = run_make("-n", "-B", "all", "RUN=local", "TRAIN_CONFIG=").stdout.replace("\\\n", " ")
    checked = 0
    for flags in FLAGS.values():
        for module, dest in flags:
            flag = "--" + dest.replace("_", "-")
            line = next((line for line in planned.splitlines() if f"scripts/{module}.py" in line and
                         f" {flag} " in f"{line} " and "--lora-adapter" not in line), None)
            if line is None:
                continue
            words = shlex.split(line)
            value = words[words.index(flag) + 1]
            assert same(value, stage_default(module, dest, monkeypatch)), (module, flag, value)
            checked += 1
    assert checked >= 20


def test_each_default_is_written_in_one_place():
    """No stage flag of a Make setting has a literal default, and the Makefile assigns no setting."""
    owned = {(module, dest) for flags in FLAGS.values() for module, dest in flags}
    for path in (ROOT / "ftkit" / "commands").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            flag = default = None
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument" and node.args \
                    and isinstance(node.args[0], ast.Constant):  # a flag written by hand
                flag = str(node.args[0].value).lstrip("-").replace("-", "_")
                default = next((k.value for k in node.keywords if k.arg == "default"), None)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Call) and \
                    getattr(node.value.func, "id", "") == "option":  # a typed config's field
                flag, default = node.target.id, node.value.args[0]
            if (path.stem, flag) in owned and isinstance(default, ast.Constant) and default.value is not None:
                pytest.fail(f"{path.name}:{node.lineno}: --{flag} has its own default {default.value!r}; "
                            "use ftkit.config.defaults")
    train = (ROOT / "ftkit" / "stages" / "train" / "train.py").read_text(encoding="utf-8")
    for field in ("epochs", "batch_size", "learning_rate", "lora_r", "lora_alpha", "max_length", "seed", "output_dir"):
        assert re.search(rf"^    {field}: .* = option\(defaults\.", train, re.M), field
    makefile = "".join((ROOT / name).read_text(encoding="utf-8")
                       for name in ("Makefile", "docker/container.mk", "bench/bench.mk"))
    assigned = set(re.findall(r"^([A-Z_]+)\s*[:?]?=", makefile, re.M))
    assert not assigned & set(BY_NAME), assigned & set(BY_NAME)
    assert "TRAIN_CONFIG) 2>/dev/null" not in makefile and "$(eval" not in makefile  # no YAML read, no eval tricks


def test_the_order_is_command_line_recorded_environment_preset_default(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("epochs: 7\nlearning_rate: 2.0e-3  # high\nbatch_size: 16\nlora_r: 4\n")
    given = Resolved({"EPOCHS": "1", "TRAIN_CONFIG": str(preset)}, environment={"LR": "5e-4", "BATCH_SIZE": "2"},
                     recorded={"BATCH_SIZE": ("6", "make train on today"), "LORA_R": ("32", "make on x")}, quiet=True)
    assert (given["EPOCHS"], given.origin("EPOCHS")) == ("1", "command line")
    assert (given["BATCH_SIZE"], given.origin("BATCH_SIZE")) == ("6", "recorded (make train on today)")
    assert (given["LR"], given.origin("LR")) == ("5e-4", "environment")
    assert (given["LORA_ALPHA"], given.origin("LORA_ALPHA")) == (str(defaults.LORA_ALPHA), "default")
    preset_only = Resolved({"TRAIN_CONFIG": str(preset)}, environment={"COLUMNS": "80"}, recorded={}, quiet=True)
    assert (preset_only["LR"], preset_only.origin("LR")) == ("2.0e-3", f"preset {preset}")  # as written
    assert preset_only.shown("EPOCHS") == f"EPOCHS=7 [{preset}]" and preset_only["COLUMNS"] == ""
    assert plain()["BASE_MODEL"] == "models/tiny-llama" and plain()["MODEL_NAME"] == "llama2-finetuned"
    qwen = Resolved({"FAMILY": "qwen3", "THINKING": "on"}, environment={}, recorded={}, quiet=True)
    assert (qwen["BASE_MODEL"], qwen["SAMPLE_REASONING"], qwen["MODEL_NAME"]) == ("models/tiny-qwen3", "0.5",
                                                                                 "qwen3-finetuned")
    with pytest.raises(SettingError, match="QLORA=1 trains with QLoRA"):
        Resolved({"QUANT": "1"}, environment={}, recorded={})
    with pytest.raises(SettingError, match="QLORA=maybe"):
        assert Resolved({"QLORA": "maybe"}, environment={}, recorded={}, quiet=True).qlora


def test_recorded_settings_survive_the_file_as_given(tmp_path):
    file = tmp_path / "settings.mk"
    write_recorded(file, {"SYSTEM_PROMPT": ("你是 #1 助手", "make sample on 2026-12-05 10:00"), "EPOCHS": ("1", "x")})
    assert read_recorded(file) == {"SYSTEM_PROMPT": ("你是 #1 助手", "make sample on 2026-12-05 10:00"),
                                   "EPOCHS": ("1", "x")}
    assert "recorded.SYSTEM_PROMPT = 你是 \\#1 助手" in file.read_text(encoding="utf-8")  # make reads '#' escaped


def test_ftkit_settings_shows_what_make_settings_shows(tmp_path):
    import subprocess
    from pathlib import Path

    ftkit = Path(sys.executable).parent / "ftkit"
    shown = subprocess.run([str(ftkit), "settings", "EPOCHS=2"], capture_output=True, text=True, cwd=tmp_path,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[0]: line.split()[1:] for line in shown.stdout.splitlines()[1:]}
    assert rows["EPOCHS"] == ["2", "command", "line"] and rows["N_GPU_LAYERS"] == [str(defaults.N_GPU_LAYERS), "default"]
    assert set(rows) == {s.name for s in BY_NAME.values() if s.recorded}


def test_a_stage_config_checks_bounds_and_required_fields_on_the_command_line_and_in_yaml(tmp_path, capsys):
    from ftkit.commands.prepare_data import DataConfig
    from ftkit.config.schema import build_parser, parse

    parser = build_parser(DataConfig, "data")
    config = tmp_path / "data.yaml"
    config.write_text("input: [a.json, b.csv]\nval_ratio: 0.2\n")
    parsed = parse(DataConfig, parser, ["--config", str(config), "--test-ratio", "0.05"])
    assert (parsed.input, parsed.val_ratio, parsed.test_ratio, parsed.seed) == (["a.json", "b.csv"], 0.2, 0.05,
                                                                                defaults.SEED)
    assert parse(DataConfig, parser, ["--input", "a.json", "--input", "b.json"]).input == ["a.json", "b.json"]
    for argv, message in ((["--val-ratio", "0.2"], "--input is required"),
                          (["--input", "a.json", "--val-ratio", "1.5"], "--val-ratio 1.5: must be 0 to 0.99"),
                          (["--input", "a.json", "--max-length", "0"], "--max-length 0: must be at least 1")):
        with pytest.raises(SystemExit) as stopped:
            parse(DataConfig, parser, argv)
        assert stopped.value.code == 2 and message in capsys.readouterr().err, argv
    config.write_text("input: a.json\ntest_ratio: -1\n")
    with pytest.raises(SystemExit):
        parse(DataConfig, parser, ["--config", str(config)])
    assert "--test-ratio -1: must be 0 to 0.99" in capsys.readouterr().err
