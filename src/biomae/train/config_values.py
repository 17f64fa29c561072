"""Reading configs: TOML files and presets, dotted overrides, value types, what changed.

Shared by the pretraining and fine-tuning configs (:mod:`biomae.train.pretrain_config`, which
re-exports :class:`ConfigError`, :func:`read_toml`, :func:`parse_override` and
:func:`apply_overrides`) and their loops:

* :func:`resolve_config` / :func:`read_toml` — a ``--config`` value (a file, or a preset shipped
  in :mod:`biomae.configs`) and its tables;
* :func:`parse_override` / :func:`apply_overrides` — ``optim.lr=3e-4`` on top of the tables;

* :func:`type_problem` — ``optim.lr="abc" is not a number, e.g. optim.lr=0.00015`` (checked before
  a section's dataclass is built, so its ``__post_init__`` sees well-typed values);
* :func:`config_changes` — ``data.batch_size 16 → 8`` for each field two config dicts disagree on
  (the resume checks);
* :func:`toml_string` — a command-line path quoted for a dotted override.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from biomae import configs


class ConfigError(ValueError):
    """A config file or override names an unknown key or holds an invalid value."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition``."""
    if not condition:
        raise ConfigError(message)


def type_problem(cls: type, section: str, key: str, value: Any) -> str | None:
    """None when ``value`` fits the annotation of field ``key`` of the dataclass ``cls``, else one
    line naming ``section.key``, the value and the expected type (``optim.lr="abc" is not a
    number, e.g. optim.lr=0.00015``)."""
    hint = typing.get_type_hints(cls)[key]
    if _fits(hint, value):
        return None
    default = next(f for f in dataclasses.fields(cls) if f.name == key).default
    known = default not in (dataclasses.MISSING, None, "")
    example = f", e.g. {section}.{key}={_toml(default)}" if known else ""
    return f"{section}.{key}={_toml(value)} is not {_describe(hint)}{example}"


def _fits(hint: Any, value: Any) -> bool:
    """Whether a TOML value fits a config annotation (an int fits a float; a bool is no number)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(arg, value) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        item = args[0] if args else Any
        return all(_fits(item, v) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_fits(args[1], v) for v in value.values())
    return True


def _describe(hint: Any) -> str:
    """``float`` -> "a number"; ``list[int]`` -> "a list of integers"; ``str | None`` -> …"""
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    plural = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in names:
        return names[hint]
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin in (list, tuple):
        return f"a list of {plural.get(args[0], 'values') if args else 'values'}"
    if origin is dict:
        return (
            f"a table whose values are each {_describe(args[1])}"
            if args and args[1] is not Any
            else "a table"
        )
    return str(hint)


def _toml(value: Any) -> str:
    """A value as it is written in TOML / on the command line (``true``, ``"x"``, ``[1, 2]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def config_changes(saved: dict[str, Any], now: dict[str, Any], keys: list[str]) -> list[str]:
    """The fields under ``keys`` (sections such as ``"model"`` or fields such as
    ``"data.batch_size"``) whose value differs between two config dicts, each as
    ``'data.batch_size 16 → 8'`` (nested tables are followed down to their leaves)."""
    changes: list[str] = []

    def walk(name: str, old: Any, new: Any) -> None:
        if isinstance(old, dict) and isinstance(new, dict):
            for key in sorted(set(old) | set(new), key=str):
                walk(f"{name}.{key}", old.get(key, _ABSENT), new.get(key, _ABSENT))
        elif old != new:
            changes.append(f"{name} {_shown(old)} → {_shown(new)}")

    for key in keys:
        old, new = saved, now
        for part in key.split("."):
            old = old.get(part, _ABSENT) if isinstance(old, dict) else _ABSENT
            new = new.get(part, _ABSENT) if isinstance(new, dict) else _ABSENT
        walk(key, old, new)
    return changes


_ABSENT = object()


def _shown(value: Any) -> str:
    return "(absent)" if value is _ABSENT else _toml(value)


def toml_string(value: str) -> str:
    """Quote a command-line value (a path) for an override: ``runs/x`` -> ``"runs/x"``."""
    return json.dumps(value)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"optim.lr=3e-4"`` into ``(["optim", "lr"], 3e-4)``; the value is parsed as TOML.

    A value that is not valid TOML (``train.out_dir=runs/x``) is kept as a string.
    """
    key, sep, value = text.partition("=")
    check(
        sep == "=" and key.strip() != "", f"override {text!r} is not of the form section.key=value"
    )
    path = key.strip().split(".")
    check(len(path) >= 2, f"override {text!r}: the key must be dotted, e.g. optim.lr=3e-4")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return path, parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each dotted override set (nested tables created as needed)."""
    raw = json.loads(json.dumps(raw))
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            check(isinstance(node, dict), f"override {text!r}: {part!r} is not a table")
        node[path[-1]] = value
    return raw


def resolve_config(value: str | Path, kind: str) -> Path:
    """A ``--config`` value (a file or a shipped preset of ``kind``) as a path.

    Raises:
        ConfigError: neither a file nor a preset (the message lists the presets).
    """

    try:
        return configs.resolve(value, kind)
    except FileNotFoundError as err:
        raise ConfigError(str(err)) from None


def read_toml(path: str | Path) -> dict[str, Any]:
    """The tables of a TOML config file.

    Raises:
        ConfigError: the file is missing or is not valid TOML (naming it).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
