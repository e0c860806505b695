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

# what a field's metadata holds besides argparse's own extras (choices, metavar, const)
_OWN = ("help", "minimum", "maximum", "required")


def option(default, help: str, *, minimum=None, maximum=None, required: bool = False, **extra):  # noqa: A002
    """A dataclass field with its command-line help, its bounds (checked on the command line and in YAML alike),
    and optional argparse extras (choices, metavar, const). `required`: no default; the stage refuses to run
    without it."""
    return dataclasses.field(default=default, metadata={"help": help, "minimum": minimum, "maximum": maximum,
                                                        "required": required, **extra})


def _list_of(kind):
    """`list[str]` -> str; anything else -> None."""
    return typing.get_args(kind)[0] if typing.get_origin(kind) is list else None


def _bounds_text(meta) -> str:
    low, high = meta.get("minimum"), meta.get("maximum")
    if low is not None and high is not None:
        return f"; {low:g} to {high:g}"
    return f"; at least {low:g}" if low is not None else f"; at most {high:g}" if high is not None else ""


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
        meta = {k: v for k, v in f.metadata.items() if k not in _OWN}
        help_text = f.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                help=f"{help_text} (default: {'on' if f.default else 'off'})")
            continue
        if f.metadata.get("required"):
            shown = "required"
        else:
            shown = " ".join(map(str, f.default)) if isinstance(f.default, list | tuple) else \
                f.default if f.default is not None else "none"
        shown = f"{shown}{_bounds_text(f.metadata)}"
        element = _list_of(kind)  # several values: --input a.json b.csv, or the flag repeated
        how = {"type": element, "nargs": "+", "action": "extend"} if element is not None else {"type": kind}
        parser.add_argument(flag, default=None, help=f"{help_text} (default: {shown})", **how, **meta)
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
        elif _list_of(kind) is not None:  # a YAML list, or one value
            items = value if isinstance(value, list) else [value]
            converted = [_list_of(kind)(item) for item in items]
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


def check_bounds(name: str, value, meta) -> None:
    """A value outside its field's bounds, named as its flag."""
    low, high = meta.get("minimum"), meta.get("maximum")
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"--{name.replace('_', '-')} {value:g}: must be{_bounds_text(meta)[1:]}")


def parse(schema, parser: argparse.ArgumentParser, argv=None):
    """Defaults < YAML config < command line, each value checked against its field's bounds. Returns an instance of
    `schema`."""
    args = parser.parse_args(argv)
    values = {}
    if args.config:
        try:
            values.update(load_yaml(args.config, schema))
        except ValueError as err:
            parser.error(str(err))
    values.update({k: v for k, v in vars(args).items() if k != "config" and v is not None})
    try:
        for f in dataclasses.fields(schema):
            if f.metadata.get("required") and values.get(f.name) is None:
                raise ValueError(f"--{f.name.replace('_', '-')} is required (on the command line or in --config)")
            check_bounds(f.name, values.get(f.name), f.metadata)
        return schema(**values)
    except (TypeError, ValueError) as err:
        parser.error(str(err))
