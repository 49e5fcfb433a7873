"""Typed configs from a YAML file plus `--key value` command-line overrides, checked field by field.

Any config dataclass whose fields carry `metadata={"help": ...}` gets: a parser (transformers'
HfArgumentParser, so `--help` lists every field with its doc) with `--config FILE.yaml`; YAML values
type-checked against the field types (argparse checks only strings); unknown keys, in the file or on
the command line, named with the nearest valid key."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Literal, TypeVar

from .commands import accept_none, dataclass_parser
from .errors import ConfigError

T = TypeVar("T")


def load_typed_config(config_type: type[T], argv: list[str], prog: str, description: str) -> T:
    """`[--config FILE.yaml] [--key value ...]`: the YAML's values, overridden by the command line."""
    fields = {f.name: f for f in dataclasses.fields(config_type)}
    parser = build_parser(config_type, prog, description)
    known, _ = parser.parse_known_args(argv)  # just --config
    values = {}
    if known.config:
        values = read_yaml(known.config)
        for key in values:
            check_key(key, fields, known.config)
        values = {key: coerce(key, value, fields[key].type, source=known.config) for key, value in values.items()}
    parser.set_defaults(**values)
    namespace, remaining = parser.parse_known_args(argv)
    for token in remaining:
        if token.startswith("--"):
            check_key(token[2:].split("=")[0].replace("-", "_"), fields, "command line")
        raise ConfigError(f"command line: unexpected argument {token!r}")
    return config_type(**{name: getattr(namespace, name) for name in fields})


def build_parser(config_type: type, prog: str, description: str):
    parser = dataclass_parser(config_type, prog=prog, allow_abbrev=False, description=description)
    parser.add_argument("--config", default=None, help="YAML file of config keys (see configs/).")
    accept_none(parser, [config_type])
    return parser


def read_yaml(path: str) -> dict:
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        raise ConfigError(f"{where}: expected YAML, got a syntax error ({getattr(error, 'problem', error)})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(values).__name__}")
    return values


def check_key(key: str, fields: dict, source: str) -> None:
    if key in fields:
        return
    near = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(fields)}"
    raise ConfigError(f"{source}: unknown config key {key!r}{hint}")


def _strip_optional(annotation):
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def coerce(key: str, value, annotation, source: str):
    """`value` as the field's type; strings from the command line are parsed, YAML values checked."""
    optional = typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation)
    base = _strip_optional(annotation)
    if value is None or (optional and isinstance(value, str) and value.lower() in {"none", "null"}):
        if optional:
            return None
        raise ConfigError(f"{source}: {key} must not be empty (expected {_describe(base)})")
    origin = typing.get_origin(base)
    if origin is Literal:
        choices = typing.get_args(base)
        if value is False and "no" in choices:
            return "no"  # YAML reads an unquoted `no` (accelerate's `mixed_precision: no`) as false
        if value not in choices:
            raise ConfigError(f"{source}: {key} must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if origin is list:
        item = (typing.get_args(base) or (str,))[0]
        items = value if isinstance(value, list) else None
        if not items:
            raise ConfigError(f"{source}: {key} expects a non-empty list of {_describe(item, plural=True)}, "
                              f"got {value!r}")
        if item is str and not all(isinstance(v, str) for v in items):
            raise ConfigError(f"{source}: {key} expects a non-empty list of strings, got {value!r}")
        return [coerce(key, v, item, source) for v in items]
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "yes", "1", "false", "no", "0"}:
            return value.lower() in {"true", "yes", "1"}
        raise ConfigError(f"{source}: {key} expects true or false, got {value!r}")
    if base in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{source}: {key} expects {_describe(base)}, got {value!r}")
        if isinstance(value, (int, float)) and (base is float or float(value).is_integer()):
            return base(value)
        if isinstance(value, str):
            try:
                return base(value) if base is float else int(value)
            except ValueError:
                pass
        raise ConfigError(f"{source}: {key} expects {_describe(base)}, got {value!r}")
    if base is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{source}: {key} expects a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{source}: {key} has unsupported type {annotation}")  # pragma: no cover


def _describe(base, plural: bool = False) -> str:
    if plural:
        return {int: "integers", float: "numbers", str: "strings"}.get(base, str(base))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(base, str(base))
