"""One typed signature per stage drives both the command line and the YAML config file.

A stage declares its options as a dataclass whose fields carry `help` metadata; `build_parser` turns
it into argparse flags (`lora_r` -> `--lora-r`) and `parse` layers: dataclass defaults < `--config
file.yaml` (same names, dashes or underscores) < flags given on the command line.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path


def option(default, help: str, **extra):  # noqa: A002 - mirrors argparse's own keyword
    """A dataclass field with its command-line help (and optional argparse extras: choices, nargs, const)."""
    return dataclasses.field(default=default, metadata={"help": help, **extra})


def _base_type(annotation):
    """`int | None` -> int; `str` -> str."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing))  # noqa: S307 - our own annotations, PEP 563 strings
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0]
    return annotation


def build_parser(schema, description: str, **kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     **kwargs)
    parser.add_argument("--config", metavar="FILE.yaml",
                        help="YAML file whose keys are these same options; flags on the command line win")
    for f in dataclasses.fields(schema):
        flag = "--" + f.name.replace("_", "-")
        kind = _base_type(f.type)
        meta = dict(f.metadata)
        help_text = meta.pop("help", "")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                help=f"{help_text} (default: {'on' if f.default else 'off'})")
            continue
        shown = f.default if f.default is not None else "none"
        parser.add_argument(flag, type=kind, default=None, help=f"{help_text} (default: {shown})", **meta)
    return parser


def load_yaml(path: str, schema) -> dict:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ValueError(f"--config {path}: cannot read ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise ValueError(f"--config {path}: invalid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping of option names to values")
    fields = {f.name: f for f in dataclasses.fields(schema)}
    values = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            raise ValueError(f"--config {path}: unknown option {key!r}")
        values[name] = typed_value(value, fields[name], f"--config {path}: {key}")
    return values


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def typed_value(value, field: dataclasses.Field, where: str):
    """A YAML value converted to its field's type, as the command line would convert it: PyYAML reads
    `2e-4` (no dot) as a string, `yes` as a boolean; people write both. Wrong types are named here."""
    kind = _base_type(field.type)
    if value is None:
        return None
    try:
        if kind is bool:
            if isinstance(value, bool):
                converted = value
            elif str(value).strip().lower() in _TRUE + _FALSE:
                converted = str(value).strip().lower() in _TRUE
            else:
                raise ValueError
        elif kind is int:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, bool) or not isinstance(number, int | float) or float(number) != int(number):
                raise ValueError
            converted = int(number)
        elif kind is float:
            if isinstance(value, bool):
                raise ValueError
            converted = float(value)
        elif kind is str:
            if isinstance(value, list | dict):
                raise ValueError
            converted = str(value)
        else:
            converted = value
    except (TypeError, ValueError):
        expected = {bool: "true or false", int: "a whole number", float: "a number (2e-4, 0.0002)",
                    str: "a text"}.get(kind, getattr(kind, "__name__", str(kind)))
        raise ValueError(f"{where}: expected {expected}, got {value!r}") from None
    choices = field.metadata.get("choices")
    if choices and converted not in choices:
        raise ValueError(f"{where}: {converted!r} is not one of {', '.join(map(str, choices))}")
    return converted


def parse(schema, parser: argparse.ArgumentParser, argv=None):
    """Defaults < YAML config < command line. Returns an instance of `schema`."""
    args = parser.parse_args(argv)
    values = {}
    if args.config:
        try:
            values.update(load_yaml(args.config, schema))
        except ValueError as err:
            parser.error(str(err))
    values.update({k: v for k, v in vars(args).items() if k != "config" and v is not None})
    try:
        return schema(**values)
    except (TypeError, ValueError) as err:
        parser.error(str(err))
