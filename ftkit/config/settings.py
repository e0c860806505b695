"""The Makefile's settings, resolved once, here: each one's default, help and where its value comes from.

Order, first found wins: the command line (make train EPOCHS=1), then recorded (what you gave an earlier make,
in .ftkit/settings.mk), then the environment, then the training preset (TRAIN_CONFIG: training's
hyperparameters only), then the default (ftkit.config.defaults, or one worked out from other settings).

Standard library only, except PyYAML for the presets (read when a preset value is needed); the family registry
(ftkit.core.families, also standard library) names each family's tiny model.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ftkit.core.families as families  # the family files say each family's tiny model (standard library only)
from ftkit.config import defaults as d

SETTINGS_FILE = ".ftkit/settings.mk"
# targets that build nothing: a make of only these records no setting and writes no stamp
READ_ONLY_GOALS = ("help", "settings", "settings-reset", "setup", "llama.cpp", "lock", "test", "test-fast", "docs",
                   "lint", "image", "shell", "llama-tools", "clean")


class SettingError(ValueError):
    """A setting that cannot be used as given; Make stops with this message."""


class PresetUnread(SettingError):
    """The preset cannot be read here yet: only the stages whose command needs its values stop."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | Callable[[Resolved], str]
    help: str
    recorded: bool = True          # remembered for later makes (not where a stage runs, nor one-off actions)
    preset_key: str | None = None  # the training preset's key that fills it when you did not set it


def _tiny_model(s: Resolved) -> str:
    """The family's embedded tiny model, as its family file names it."""
    return families.get(s["FAMILY"]).tiny_model if s["FAMILY"] else d.TINY_MODEL


def _model_name(s: Resolved) -> str:
    """An embedded tiny model's name (llama2-finetuned, qwen3-moe-finetuned), else the base model's own name,
    lowercased (-ft)."""
    base = s["BASE_MODEL"].rstrip("/")
    if base.startswith("models/tiny-"):
        try:
            family, tiny = families.tiny_model(base)
            return f"{family.name if tiny is family.tiny_models[0] else tiny.name}-finetuned"
        except families.UserError:  # a folder of one's own under models/
            pass
    if base == s["TINY_MODEL"].rstrip("/") and s["FAMILY"]:
        return f"{families.get(s['FAMILY']).name}-finetuned"
    name = Path(base).name.lower()
    return re.sub(r"[^a-z0-9._-]", "-", name) + "-ft"


def _train_config(s: Resolved) -> str:
    """The embedded tiny model's preset, else the preset of the base model's size class (printed when chosen)."""
    if s["BASE_MODEL"] == s["TINY_MODEL"]:
        return "configs/tiny-cpu.yaml"
    from ftkit.config import presets

    preset, why = presets.choose(s["BASE_MODEL"], qlora=s.qlora)
    if not s.quiet:
        print(f"ftkit: training preset: {why} (TRAIN_CONFIG=FILE for another, TRAIN_CONFIG= for none)", file=sys.stderr)
    return preset or ""


SETTINGS: tuple[Setting, ...] = (
    Setting("FAMILY", "", f"chat format and embedded tiny model: {' '.join(families.FAMILIES)} (empty: detected "
            "from BASE_MODEL's chat template)"),
    Setting("THINKING", d.THINKING, f"off|on|mixed, for a family that thinks "
            f"({', '.join(families.THINKERS)}): off trains answers only; on: "
            "every answer after its think block; mixed: records with a trace think, the others answer directly"),
    Setting("BASE_MODEL", lambda s: s["TINY_MODEL"], "the model to fine-tune: a local folder or a Hub id "
            "(meta-llama/Llama-2-7b-chat-hf); default: the embedded tiny model"),
    Setting("TINY_MODEL", _tiny_model, "the embedded tiny model's folder, built offline by `make tiny-model`"),
    Setting("SEED", str(d.SEED), "seed of the sample data, the split and training"),
    Setting("NUM_SAMPLES", str(d.NUM_SAMPLES), "sample records (make sample)"),
    Setting("SAMPLE_REASONING", lambda s: "0" if s["THINKING"] == "off" else "0.5",
            "share of the sample records with a reasoning trace (a thinking run's demo data has some)"),
    Setting("SAMPLE_DIR", d.SAMPLE_DIR, "where make sample writes sample_data.json"),
    Setting("RAW_DATA", lambda s: f"{s['SAMPLE_DIR']}/sample_data.json", "your data, several allowed: "
            "RAW_DATA=\"a.json b.csv\" (default: the sample data)"),
    Setting("INPUT_FORMAT", "auto", "json, jsonl, csv, tsv, xlsx, parquet (auto: from the file name)"),
    Setting("FORMAT_TYPE", "auto", "alpaca, sharegpt, messages, qa (auto: detected)"),
    Setting("COLUMNS", "", "column mapping, e.g. instruction=question,output=answer (the terminal's COLUMNS in the "
            "environment is ignored)"),
    Setting("ENCODING", "auto", "the raw files' text encoding (auto: detected)"),
    Setting("DATA_DIR", d.DATA_DIR, "where the prepared splits go"),
    Setting("DATA_NAME", d.DATA_NAME, "prefix of the prepared splits"),
    Setting("VAL_RATIO", str(d.VAL_RATIO), "validation share"),
    Setting("TEST_RATIO", str(d.TEST_RATIO), "test share"),
    Setting("MAX_LENGTH", str(d.MAX_LENGTH), "the longest example in tokens, for the data stage and training alike "
            "(longer ones are dropped, never cut)", preset_key="max_length"),
    Setting("MODEL_DIR", d.MODEL_DIR, "training's output folder"),
    Setting("EPOCHS", f"{d.EPOCHS:g}", "passes over the training data", preset_key="epochs"),
    Setting("BATCH_SIZE", str(d.BATCH_SIZE), "examples per device per step", preset_key="batch_size"),
    Setting("LR", f"{d.LEARNING_RATE:g}", "peak learning rate", preset_key="learning_rate"),
    Setting("LORA_R", str(d.LORA_R), "LoRA rank", preset_key="lora_r"),
    Setting("LORA_ALPHA", str(d.LORA_ALPHA), "LoRA scaling numerator", preset_key="lora_alpha"),
    Setting("QLORA", "", "1: QLoRA, a 4-bit NF4 base (empty: LoRA)"),
    Setting("NUM_GPUS", str(d.NUM_GPUS), "training processes on each host, one per GPU (above 1: accelerate launch)"),
    Setting("NUM_NODES", str(d.NUM_NODES), "hosts of a run on several (README: Several hosts)"),
    Setting("ACCELERATE_CONFIG", "", "an accelerate config (configs/accelerate/fsdp.yaml, ...); empty: DDP"),
    Setting("TRAIN_CONFIG", _train_config, "a YAML preset whose hyperparameters apply unless you set them (default: "
            "configs/tiny-cpu.yaml for the tiny model, else the preset of the base model's size class; empty: none)"),
    Setting("TRAIN_ARGS", "", "more train_lora.py flags, passed as typed"),
    Setting("REPORT_DIR", d.REPORT_DIR, "where evaluation, reports and acceptance go"),
    Setting("EVAL_OUTPUT", lambda s: f"{s['REPORT_DIR']}/evaluation_results.csv", "the evaluation's results CSV"),
    Setting("MAX_NEW_TOKENS", str(d.MAX_NEW_TOKENS), "answer length limit in evaluation"),
    Setting("EVAL_BATCH", str(d.EVAL_BATCH), "prompts generated together (evaluation, the general check)"),
    Setting("MERGED_DIR", lambda s: f"{s['MODEL_DIR']}/merged_model", "the merged model's folder"),
    Setting("GGUF_DIR", d.GGUF_DIR, "where the GGUF files and the Modelfile go"),
    Setting("MODEL_NAME", _model_name, "the Ollama model name and file prefix (default: the tiny model's family, "
            "else the base model's name: qwen2.5-7b-instruct-ft)"),
    Setting("GGUF_TYPES", " ".join(d.GGUF_TYPES), "GGUF types, several allowed: \"Q4_K_M Q8_0 F16\" (the first "
            "non-F16 one goes into the Modelfile)"),
    Setting("SYSTEM_PROMPT", "", "the Modelfile's SYSTEM (and the deployment check's)"),
    Setting("N_GPU_LAYERS", str(d.N_GPU_LAYERS), "layers llama.cpp offloads to the GPU in every check that loads a "
            "GGUF (-1: all; 0: CPU)"),
    Setting("OLLAMA_VERSION", "", "the Ollama the Modelfile is written for (empty: the newest checked)"),
    Setting("SERVE_HOST", d.SERVE_HOST, "make serve: the address llama-server listens on"),
    Setting("SERVE_PORT", str(d.SERVE_PORT), "make serve: its port"),
    Setting("MIN_RECORDS", str(d.MIN_RECORDS), "the checklist's minimum of training records"),
    Setting("MIN_TOKENS_PER_SEC", f"{d.MIN_TOKENS_PER_SEC:g}", "acceptance: the slowest decode that passes"),
    Setting("GENERAL_EVAL", "ftkit/assets/general_zh", "the general check's benchmark folder (C-Eval, CMMLU; default: "
            "the shipped Chinese set); given on the command line, make eval runs it too"),
    Setting("GENERAL_SHOTS", str(d.GENERAL_SHOTS), "examples before each question"),
    Setting("GENERAL_FORMAT", d.GENERAL_FORMAT, "chat|plain prompt"),
    Setting("GENERAL_PER_SUBJECT", str(d.GENERAL_PER_SUBJECT), "0, or N questions drawn per subject"),
    # one-off actions and who a host is: never recorded
    Setting("RESUME", "", "1: continue from the latest checkpoint", recorded=False),
    Setting("ALLOW_CPU", "", "1: train a model over 1 B parameters without a GPU anyway", recorded=False),
    Setting("HUMAN_SHEET", "", "make eval: write a blind A/B sheet to this CSV", recorded=False),
    Setting("RATINGS", "", "make eval: import this rated sheet", recorded=False),
    Setting("NODE_RANK", str(d.NODE_RANK), "this host's rank in a run on several (0 on MAIN_ADDR)", recorded=False),
    Setting("MAIN_ADDR", "", "node 0's address in a run on several hosts", recorded=False),
    Setting("MAIN_PORT", str(d.MAIN_PORT), "a free port on node 0", recorded=False),
    Setting("DIST_TIMEOUT", str(d.DIST_TIMEOUT), "seconds a training process waits for its peers", recorded=False),
    Setting("REPORT", lambda s: f"{s['REPORT_DIR']}/training_report.md", "the training report", recorded=False),
    Setting("TRAIN_FILE", lambda s: f"{s['DATA_DIR']}/{s['DATA_NAME']}_train.jsonl", "training split", recorded=False),
    Setting("VAL_FILE", lambda s: f"{s['DATA_DIR']}/{s['DATA_NAME']}_validation.jsonl", "validation split",
            recorded=False),
    Setting("TEST_FILE", lambda s: f"{s['DATA_DIR']}/{s['DATA_NAME']}_test.jsonl", "test split", recorded=False),
)
BY_NAME = {s.name: s for s in SETTINGS}
# old spellings that meant two things, or two knobs for one idea: refused, with the new one named
REFUSED = {
    "QUANT": "QUANT is ambiguous and no longer read: QLORA=1 trains with QLoRA; GGUF_TYPES=\"Q4_K_M Q8_0\" picks the "
             "GGUF types",
    "MAX_LEN": "MAX_LEN is gone: MAX_LENGTH={value} sets the longest example for the data stage and training alike",
}


def read_recorded(path: str | Path) -> dict[str, tuple[str, str]]:
    """The settings file: name -> (value, how and when it was given). A '#' is written escaped, as make reads it."""
    recorded: dict[str, tuple[str, str]] = {}
    file = Path(path)
    if not file.is_file():
        return recorded
    values, origins = {}, {}
    for line in file.read_text(encoding="utf-8").splitlines():
        found = re.match(r"recorded\.([A-Z_0-9]+)(\.from)? = ?(.*)$", line)
        if found:
            (origins if found[2] else values)[found[1]] = found[3].replace("\\#", "#")
    for name, value in values.items():
        if name in BY_NAME and BY_NAME[name].recorded:
            recorded[name] = (value, origins.get(name, ""))
    return recorded


def write_recorded(path: str | Path, recorded: dict[str, tuple[str, str]]) -> None:
    """Atomically: the hosts of a run on several may share the checkout and start together."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# ftkit: the settings you gave on the command line, used by every later make until you give another.",
             "# `make settings` shows them with the defaults and presets; `make settings-reset` forgets them. You may "
             "edit this file."]
    for setting in SETTINGS:
        if setting.name in recorded:
            value, origin = recorded[setting.name]
            lines += [f"recorded.{setting.name} = {value.replace('#', chr(92) + '#')}",
                      f"recorded.{setting.name}.from = {origin}"]
    temporary = file.with_name(f"{file.name}.tmp.{os.getpid()}")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temporary.replace(file)


def preset_values(path: str) -> dict[str, str]:
    """A preset's top-level keys with their values as written (2.0e-3 stays 2.0e-3): YAML's own parse tree."""
    try:
        import yaml
    except ImportError:  # python3 without PyYAML, before `make setup` made .venv
        raise PresetUnread(f"TRAIN_CONFIG={path} needs PyYAML, which `make setup` installs: run make setup, then this "
                           "make again") from None
    try:
        node = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except OSError:
        return {}
    except yaml.YAMLError as err:
        raise SettingError(f"TRAIN_CONFIG={path}: invalid YAML ({err})") from None
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: v.value for k, v in node.value if isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode)}


class Resolved:
    """Every setting's value and where it came from, each worked out once, on first use."""

    def __init__(self, command_line: dict[str, str], environment: dict[str, str] | None = None,
                 recorded: dict[str, tuple[str, str]] | None = None, quiet: bool = False):
        environment = os.environ if environment is None else environment
        self.command_line = command_line
        self.environment = {k: v for k, v in environment.items()
                            if k in BY_NAME and k != "COLUMNS"}  # COLUMNS there is the terminal's width
        self.recorded = recorded or {}
        self.quiet = quiet
        self.values: dict[str, str] = {}
        self.origins: dict[str, str] = {}
        self._preset: dict[str, str] | None = None
        for name, message in REFUSED.items():
            value = command_line.get(name, environment.get(name, ""))
            if value:
                raise SettingError(message.format(value=value))

    def __getitem__(self, name: str) -> str:
        if name not in self.values:
            self.values[name], self.origins[name] = self._find(BY_NAME[name])
        return self.values[name]

    def origin(self, name: str) -> str:
        self[name]
        return self.origins[name]

    def user_set(self, name: str) -> bool:
        """Given by you (now, earlier, or in the environment), not a preset's or a default."""
        return self.origin(name).split(" ")[0] in ("command", "recorded", "environment")

    def _find(self, setting: Setting) -> tuple[str, str]:
        name = setting.name
        if name in self.command_line:
            return self.command_line[name], "command line"
        if name in self.recorded:
            value, given = self.recorded[name]
            return value, f"recorded ({given})"
        if name in self.environment:
            return self.environment[name], "environment"
        if setting.preset_key and setting.preset_key in self.preset:
            return self.preset[setting.preset_key], f"preset {self['TRAIN_CONFIG']}"
        default = setting.default(self) if callable(setting.default) else setting.default
        return default, "default"

    @property
    def preset(self) -> dict[str, str]:
        if self._preset is None:
            config = self["TRAIN_CONFIG"]
            self._preset = preset_values(config) if config else {}
        return self._preset

    @property
    def qlora(self) -> bool:
        value = self["QLORA"]
        if value not in ("", "0", "1", "yes", "no", "true", "false"):
            raise SettingError(f"QLORA={value}: use QLORA=1 (QLoRA) or leave it out (LoRA)")
        return value in ("1", "yes", "true")

    def shown(self, name: str) -> str:
        """NAME=value, with [file] when a preset gave it (make help)."""
        origin = self.origin(name)
        return f"{name}={self[name]}" + (f" [{origin.removeprefix('preset ')}]" if origin.startswith("preset ") else "")

    def table(self) -> str:
        """`make settings`: every recorded-kind setting, its value and where it comes from."""
        rows = [f"ftkit settings (recorded in {SETTINGS_FILE}; a value given on the command line is recorded by the "
                "next make that builds)"]
        rows += [f"  {s.name:<20} {self[s.name]:<44} {self.origin(s.name)}" for s in SETTINGS if s.recorded]
        return "\n".join(rows)


def record_new(resolved: Resolved, path: str | Path, goals: str, now: str) -> list[str]:
    """Record the settings given on this command line that differ from those recorded: their names."""
    new = [s.name for s in SETTINGS if s.recorded and s.name in resolved.command_line
           and resolved.recorded.get(s.name, (None,))[0] != resolved.command_line[s.name]]
    if new:
        recorded = dict(resolved.recorded)
        for name in new:
            recorded[name] = (resolved.command_line[name], f"make {goals} on {now}")
        write_recorded(path, recorded)
    return new
