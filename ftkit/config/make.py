"""What the Makefile includes: every setting resolved (ftkit.config.settings), each stage's command, and the
stamps that make a stage re-run when a setting that shapes its output changes.

The Makefile runs this once per make, passing what you typed (NAME=value ...), and includes what it prints:
`NAME := value` lines. A make that builds (not a dry run, not only targets that build nothing) rewrites the stamps
whose text changed; one typed by you (not a sub-make) also records the settings you gave.

usage: python -m ftkit.config.make [--goals "train"] [--dry nqt] [--level N] [--show|--help-lines] -- NAME=value ...
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import ftkit.core.families as families
from ftkit.config.settings import (
    READ_ONLY_GOALS,
    SETTINGS,
    SETTINGS_FILE,
    PresetUnread,
    Resolved,
    SettingError,
    read_recorded,
    record_new,
)

# settings given to the stage as `--flag value` even beside a preset only when you set them (the preset's otherwise)
TRAIN_HYPERPARAMETERS = (("--epochs", "EPOCHS"), ("--batch-size", "BATCH_SIZE"), ("--learning-rate", "LR"),
                         ("--lora-r", "LORA_R"), ("--lora-alpha", "LORA_ALPHA"), ("--max-length", "MAX_LENGTH"),
                         ("--seed", "SEED"))


def quoted(value: str) -> str:
    return shlex.quote(value) if value else "''"


def words(value: str) -> str:
    """A setting holding several values (RAW_DATA="a.json b.csv"): each one quoted."""
    return " ".join(map(shlex.quote, value.split()))


def joined(*parts: str) -> str:
    return " ".join(p for p in parts if p)


class Plan:
    """The stages' commands, as the Makefile's recipes run them (without the interpreter)."""

    def __init__(self, s: Resolved):
        self.s = s
        self.family = f"--family {quoted(s['FAMILY'])}" if s["FAMILY"] else ""
        self.adapter_dir = quoted(f"{s['MODEL_DIR']}/lora_adapter")

    def sample(self) -> str:
        s = self.s
        return joined("scripts/create_sample_data.py --output-dir", quoted(s["SAMPLE_DIR"]), "--num", s["NUM_SAMPLES"],
                      "--seed", s["SEED"], "--reasoning-share", s["SAMPLE_REASONING"])

    def data(self) -> str:
        s = self.s
        return joined("scripts/prepare_data.py --input", words(s["RAW_DATA"]), "--input-format", s["INPUT_FORMAT"],
                      "--format-type", s["FORMAT_TYPE"], s["COLUMNS"] and f"--columns {quoted(s['COLUMNS'])}",
                      "--encoding", s["ENCODING"], "--output-dir", quoted(s["DATA_DIR"]), "--output-name",
                      quoted(s["DATA_NAME"]), "--val-ratio", s["VAL_RATIO"], "--test-ratio", s["TEST_RATIO"], "--seed",
                      s["SEED"], "--max-length", s["MAX_LENGTH"], "--tokenizer", quoted(s["BASE_MODEL"]), self.family,
                      "--thinking", s["THINKING"])

    def train_flags(self) -> str:
        """Beside a preset, a hyperparameter is passed only when you set it; without one, always."""
        s = self.s
        config = s["TRAIN_CONFIG"]
        hyper = [f"{flag} {s[name]}" for flag, name in TRAIN_HYPERPARAMETERS if not config or s.user_set(name)]
        return joined(config and f"--config {quoted(config)}", "--base-model", quoted(s["BASE_MODEL"]), "--output-dir",
                      quoted(s["MODEL_DIR"]), "--train-data", quoted(s["TRAIN_FILE"]), "--val-data",
                      quoted(s["VAL_FILE"]), *hyper, s.qlora and "--use-quantization", s["RESUME"] and "--resume",
                      self.family, "--thinking", s["THINKING"], s["TRAIN_ARGS"])

    def train_shape(self) -> str:
        """What shapes the result (the processes, the sharding); not who this host is or where node 0 listens."""
        s = self.s
        if s["NUM_GPUS"] in ("0", "1") and s["NUM_NODES"] == "1":
            return ""
        return joined("--num-nodes", s["NUM_NODES"], "--gpus-per-node", s["NUM_GPUS"],
                      s["ACCELERATE_CONFIG"] and f"--config {quoted(s['ACCELERATE_CONFIG'])}")

    def launch(self) -> tuple[str, str]:
        """(this host's `accelerate launch` arguments, or the error that stops `make train`)."""
        from ftkit.config.launch import LaunchError, launch_args

        s = self.s
        try:
            return " ".join(launch_args(s["NUM_NODES"], s["NODE_RANK"], s["NUM_GPUS"], s["MAIN_ADDR"], s["MAIN_PORT"],
                                        s["ACCELERATE_CONFIG"], s["DIST_TIMEOUT"])), ""
        except LaunchError as err:
            return "", str(err)

    def evaluate(self) -> str:
        s = self.s
        return joined("scripts/evaluate_model.py --base-model", quoted(s["BASE_MODEL"]), "--lora-model",
                      self.adapter_dir, "--test-data", quoted(s["TEST_FILE"]), "--output",
                      quoted(s["EVAL_OUTPUT"]), "--max-new-tokens", s["MAX_NEW_TOKENS"], "--batch-size", s["EVAL_BATCH"],
                      s["HUMAN_SHEET"] and f"--human-sheet {quoted(s['HUMAN_SHEET'])}", self.family)

    def general_json(self) -> str:
        return str(Path(self.s["EVAL_OUTPUT"]).parent / "eval_general.json")

    def general(self) -> str:
        s = self.s
        return joined("scripts/eval_general.py --benchmark", quoted(s["GENERAL_EVAL"]), "--shots", s["GENERAL_SHOTS"],
                      "--format", s["GENERAL_FORMAT"], "--per-subject", s["GENERAL_PER_SUBJECT"], "--base-model",
                      quoted(s["BASE_MODEL"]), "--lora-model", self.adapter_dir, "--batch-size",
                      s["EVAL_BATCH"], "--output", quoted(self.general_json()), self.family)

    def general_in_eval(self) -> str:
        """The general check `make eval` runs too when you gave GENERAL_EVAL (HF models only)."""
        return self.general() if self.s.user_set("GENERAL_EVAL") else ""

    def merge(self) -> str:
        s = self.s
        return joined("scripts/merge_lora.py --base-model", quoted(s["BASE_MODEL"]), "--lora-model",
                      self.adapter_dir, "--output", quoted(s["MERGED_DIR"]))

    def gguf(self) -> str:
        s = self.s
        return joined("scripts/convert_to_gguf.py --model-path", quoted(s["MERGED_DIR"]), "--quantization",
                      words(s["GGUF_TYPES"]), "--output-dir", quoted(s["GGUF_DIR"]), "--model-name",
                      quoted(s["MODEL_NAME"]), "--test-data", quoted(s["TEST_FILE"]), self.family)

    def modelfile_settings(self) -> str:
        """The Modelfile's own settings (both exports write one): they re-render the Modelfile alone."""
        s = self.s
        return joined(s["SYSTEM_PROMPT"] and f"--system {quoted(s['SYSTEM_PROMPT'])}",
                      s["OLLAMA_VERSION"] and f"--ollama-version {quoted(s['OLLAMA_VERSION'])}")

    def modelfile_flags(self) -> str:
        return joined("--create-modelfile", self.modelfile_settings())

    def adapter(self) -> str:
        s = self.s
        return joined("scripts/convert_to_gguf.py --lora-adapter", self.adapter_dir, "--base-model",
                      quoted(s["BASE_MODEL"]), "--output-dir", quoted(s["GGUF_DIR"]), "--model-name",
                      quoted(s["MODEL_NAME"]), "--test-data", quoted(s["TEST_FILE"]), "--n-gpu-layers",
                      s["N_GPU_LAYERS"], self.modelfile_settings(), self.family)

    def artifact_flags(self) -> str:
        s = self.s
        return joined("--data-dir", quoted(s["DATA_DIR"]), "--data-name", quoted(s["DATA_NAME"]), "--model-dir",
                      quoted(s["MODEL_DIR"]), "--eval-output", quoted(s["EVAL_OUTPUT"]), "--gguf-dir", quoted(s["GGUF_DIR"]))

    def gguf_main(self) -> str:
        """The file the Modelfile points at: the first non-F16 type asked for."""
        types = [t for t in self.s["GGUF_TYPES"].split() if t != "F16"] + ["F16"]
        return f"{self.s['GGUF_DIR']}/{self.s['MODEL_NAME']}-{types[0]}.gguf"

    def stamps(self) -> dict[str, tuple[str, str]]:
        """stage -> (stamp file, the text that shapes its output: its command without the interpreter)."""
        s, eval_dir = self.s, str(Path(self.s["EVAL_OUTPUT"]).parent)
        return {
            "SAMPLE": (f"{s['SAMPLE_DIR']}/.settings-sample", self.sample()),
            "DATA": (f"{s['DATA_DIR']}/.settings-data", self.data()),
            "TRAIN": (f"{s['MODEL_DIR']}/.settings-train",
                      joined(self.train_shape(), self.train_flags().replace(" --resume", ""))),
            "EVAL": (f"{eval_dir}/.settings-eval", joined(self.evaluate(), self.general_in_eval())),
            "GENERAL": (f"{eval_dir}/.settings-general", self.general()),
            "MERGE": (f"{s['MODEL_DIR']}/.settings-merge", self.merge()),
            "GGUF": (f"{s['GGUF_DIR']}/.settings-gguf", self.gguf()),
            "MODELFILE": (f"{s['GGUF_DIR']}/.settings-modelfile", self.modelfile_flags()),
        }


def stamp(path: str, text: str, writes_state: bool) -> str:
    """The stamp's path, for a stage to list as a prerequisite. A make that builds rewrites it only when the text
    changed (the stage then re-runs); a first one is dated 2000, so outputs made before it stand. A make that
    writes nothing names `settings-changed` instead of a changed stamp: a dry run still shows what would re-run."""
    file = Path(path)
    text = " ".join(text.split())
    if writes_state:
        if not file.is_file():
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text + "\n", encoding="utf-8")
            epoch_2000 = time.mktime((2000, 1, 1, 0, 0, 0, 0, 0, -1))
            os.utime(file, (epoch_2000, epoch_2000))
        elif file.read_text(encoding="utf-8").strip() != text:
            file.write_text(text + "\n", encoding="utf-8")
        return path
    if not file.is_file():
        return ""
    return path if file.read_text(encoding="utf-8").strip() == text else "settings-changed"


def make_escaped(value: str) -> str:
    """A value as the right-hand side of `NAME := ...` that make reads back as it was."""
    return value.replace("$", "$$").replace("#", "\\#").replace("\n", " ")


def assignments(s: Resolved, writes_state: bool) -> list[str]:
    plan = Plan(s)
    lines = [f"{setting.name} := {make_escaped(s[setting.name])}" for setting in SETTINGS]
    launch, launch_error = plan.launch()
    commands = {
        "FAMILY_FLAG": plan.family,
        "SAMPLE_CMD": plan.sample(), "DATA_CMD": plan.data(), "TRAIN_FLAGS": plan.train_flags(),
        "TRAIN_LAUNCH_ARGS": launch, "TRAIN_LAUNCH_ERROR": launch_error, "EVAL_CMD": plan.evaluate(),
        "GENERAL_JSON": plan.general_json(), "GENERAL_CMD": plan.general(),
        "EVAL_GENERAL_STEP": plan.general_in_eval(),
        "MERGE_CMD": plan.merge(), "GGUF_CMD": plan.gguf(), "MODELFILE_FLAGS": plan.modelfile_flags(),
        "ADAPTER_CMD": plan.adapter(), "ARTIFACT_FLAGS": plan.artifact_flags(), "GGUF_MAIN": plan.gguf_main(),
    }
    lines += [f"{name} := {make_escaped(value)}" for name, value in commands.items()]
    lines += [f"STAMP_{stage} := {make_escaped(stamp(path, text, writes_state))}"
              for stage, (path, text) in plan.stamps().items()]
    return lines


def stage_lines(s: Resolved, writes_state: bool) -> list[str]:
    """`assignments`; where the preset cannot be read yet, the stages that need its values stop when they run."""
    try:
        return assignments(s, writes_state)
    except PresetUnread as err:
        stop = f"$(error {make_escaped(str(err))})"
        return [f"{name} = {stop}" for name in ("DATA_CMD", "TRAIN_FLAGS")] + [
            f"{setting.name} := {make_escaped(value)}" for setting in SETTINGS
            if (value := _or_unread(s, setting.name)) is not None] + \
            [f"STAMP_{stage} := settings-changed" for stage in ("DATA", "TRAIN")]


def _or_unread(s: Resolved, name: str) -> str | None:
    try:
        return s[name]
    except PresetUnread:
        return None


def help_lines(s: Resolved) -> str:
    """The values `make help` shows: those training really uses ([file]: from that preset)."""
    return "\n".join([
        f"  FAMILY={s['FAMILY']} ({' '.join(families.FAMILIES)}; empty: detected) THINKING={s['THINKING']} "
        f"(off on mixed: {', '.join(families.THINKERS)})",
        f"  BASE_MODEL={s['BASE_MODEL']} RAW_DATA={s['RAW_DATA']}",
        f"  DATA_DIR={s['DATA_DIR']} MODEL_DIR={s['MODEL_DIR']}",
        f"  training (the values used; [file]: from that preset): {s.shown('EPOCHS')} {s.shown('BATCH_SIZE')}",
        f"    {s.shown('LR')} {s.shown('LORA_R')} {s.shown('LORA_ALPHA')} {s.shown('MAX_LENGTH')}",
        f"    QLORA={s['QLORA']} NUM_GPUS={s['NUM_GPUS']} NUM_NODES={s['NUM_NODES']} GGUF_TYPES=\"{s['GGUF_TYPES']}\"",
        f"  TRAIN_CONFIG={s['TRAIN_CONFIG']} GGUF_DIR={s['GGUF_DIR']} MODEL_NAME={s['MODEL_NAME']} "
        f"REPORT_DIR={s['REPORT_DIR']}",
        f"  OLLAMA_VERSION={s['OLLAMA_VERSION']} (empty: the newest checked) SERVE_HOST={s['SERVE_HOST']} "
        f"SERVE_PORT={s['SERVE_PORT']}",
        "  every setting and where its value comes from: `make settings` (docs/settings.md explains them)",
    ])


def parse_command_line(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        values[name] = value
    return values


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ftkit.config.make", description=__doc__.split("\n\n")[0])
    ap.add_argument("--goals", default="", help="the make's goals (MAKECMDGOALS)")
    ap.add_argument("--dry", default="", help="non-empty in a make that writes nothing (-n, -q, -t)")
    ap.add_argument("--level", default="0", help="MAKELEVEL: a sub-make records nothing")
    ap.add_argument("--settings-file", default=SETTINGS_FILE)
    ap.add_argument("--show", action="store_true", help="print `make settings`' table")
    ap.add_argument("--help-lines", action="store_true", help="print the values `make help` shows")
    ap.add_argument("assignments", nargs="*", metavar="NAME=value", help="the variables given on make's command line")
    args = ap.parse_args(argv)
    command_line = parse_command_line(args.assignments)
    writes = bool(not args.dry and not args.show and not args.help_lines
                  and [g for g in args.goals.split() if g not in READ_ONLY_GOALS])
    try:
        resolved = Resolved(command_line, recorded=read_recorded(args.settings_file), quiet=args.show or args.help_lines)
        if args.show:
            print(resolved.table())
            return 0
        if args.help_lines:
            print(help_lines(resolved))
            return 0
        lines = stage_lines(resolved, writes)  # a sub-make's stages stamp too (make demo runs make all)
        if writes and args.level == "0":
            new = record_new(resolved, args.settings_file, args.goals, time.strftime("%Y-%m-%d %H:%M"))
            if new:
                given = " ".join(f"{n}={command_line[n]}" for n in new)
                lines.append(f"$(info ftkit: recorded {make_escaped(given)} in {args.settings_file} (make settings "
                             "shows them all))")
    except SettingError as err:
        print(f"$(error {make_escaped(str(err))})")
        return 0
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
