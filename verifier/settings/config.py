"""Settings from a TOML file and ``key=value`` overrides, and back to TOML.

The file mirrors ``VerifyOptions``: top-level keys (``method``, ``timeout``, ``device``, ...) and one table per
settings group (``[attack]``, ``[bounds]``, ``[bab]``)::

    timeout = 60.0
    [bab]
    relu_branching = "babsr"
    input_portfolio = [["smear-all", 3, false, 0.2], ["smear", 3, false, 1.0]]

A field whose default is decided by the search (``None`` in the dataclass) is written ``"auto"``.
Every value is checked against the field's type; an unknown key or a bad value is a ``ConfigError`` that
names the key and what it allows.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import fields, is_dataclass, replace
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from verifier.ir.errors import VerifierError
from verifier.settings.options import VerifyOptions

AUTO = "auto"


class ConfigError(VerifierError):
    """A settings file or override that names an unknown key or gives a bad value."""


def read_config(path: str | Path) -> dict:
    """The raw table of a TOML settings file."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the settings file: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def apply_table(obj, table: dict, where: str = ""):
    """``obj`` (a settings dataclass) with the values of ``table`` (nested tables for nested dataclasses)."""
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in fields(obj)}
    changes = {}
    for key, value in table.items():
        path = f"{where}{key}"
        if key not in names:
            raise ConfigError(f"unknown setting {path!r}; {_allowed_keys(obj, where)}")
        hint = hints[key]
        current = getattr(obj, key)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"setting {path!r} is a table of settings ({_allowed_keys(current, path + '.')})")
            changes[key] = apply_table(current, value, path + ".")
        else:
            changes[key] = convert(value, hint, path)
    try:
        return replace(obj, **changes)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where.rstrip('.') or 'settings'}: {e}") from None


def apply_override(options: VerifyOptions, text: str) -> VerifyOptions:
    """``options`` with one ``key=value`` override (``bab.relu_branching=babsr``; the value is read as TOML, or
    as a plain string where it is not valid TOML)."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. bab.relu_branching=babsr")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    table: dict = {}
    node = table
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return apply_table(options, table)


def build_options(config: str | Path | None = None, overrides=(), base: VerifyOptions | None = None,
                  **fields_) -> VerifyOptions:
    """Defaults (or ``base``), then the settings file, then the keyword fields, then the overrides in order."""
    options = base or VerifyOptions()
    if config is not None:
        options = apply_table(options, read_config(config))
    if fields_:
        options = apply_table(options, fields_)
    for text in overrides:
        options = apply_override(options, text)
    return options


def convert(value, hint, key: str):
    """``value`` checked against the type ``hint`` (and converted: lists to tuples, ints to floats)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        others = [a for a in args if a is not type(None)]
        if value == AUTO and len(others) < len(args):
            return None
        for a in others:
            try:
                return convert(value, a, key)
            except ConfigError:
                pass
        raise ConfigError(f"setting {key!r} must be {describe(hint)}, not {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"setting {key!r} must be one of {', '.join(map(repr, args))}, not {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"setting {key!r} must be a list ({describe(hint)}), not {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"setting {key!r} must have {len(args)} items ({describe(hint)}), not {value!r}")
        return tuple(convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a settings field of a type this module does not know
        raise ConfigError(f"setting {key!r} has a type that cannot be set from a file ({hint})")
    raise ConfigError(f"setting {key!r} must be {describe(hint)}, not {value!r}")


def describe(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [describe(a) for a in args if a is not type(None)]
        return " or ".join(parts + ([repr(AUTO)] if type(None) in args else []))
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of ({describe(args[0])})"
        return "[" + ", ".join(describe(a) for a in args) + "]"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _allowed_keys(obj, where: str) -> str:
    return f"the keys of {where.rstrip('.') or 'the settings'} are: " + ", ".join(f.name for f in fields(obj))


def to_toml(options: VerifyOptions) -> str:
    """The settings as a TOML document that ``build_options(config=...)`` reads back to the same settings."""
    top, tables = [], []
    for f in fields(options):
        value = getattr(options, f.name)
        if dataclasses.is_dataclass(value):
            tables.append(f"\n[{f.name}]")
            tables += [f"{g.name} = {_toml_value(getattr(value, g.name))}" for g in fields(value)]
        else:
            top.append(f"{f.name} = {_toml_value(value)}")
    return "\n".join(top + tables) + "\n"


def _toml_value(v) -> str:
    if v is None:
        return f'"{AUTO}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")
