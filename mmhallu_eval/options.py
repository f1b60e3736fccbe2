"""Typed options, declared once as a dataclass (type, default, help) and parsed once: `--task-arg TASK.KEY=VALUE`
strings become the declared types before anything loads, and an unknown key or a bad value is an error with a
did-you-mean. The same declarations give `mmhallu tasks TASK` its option list and the CLI its flags."""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import TaskError


def is_count(value: Any) -> bool:
    """A whole number of at least 1 (not a bool): a batch size, a limit, a number of steps — where 0 must not be
    read as "not given" nor -3 as "all but three"."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool, NaN or infinity): what a JSON or YAML value must be to stand for a number."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def opt(default: Any = None, help: str = "", flag: str | None = None) -> Any:
    """A declared option: its default and help (and, for the `mmhallu score` flags, another flag name)."""
    return field(default=default, metadata={"help": help, "flag": flag})


@dataclass
class TaskOptions:
    """Options every task takes; a task's own options dataclass derives from it."""

    max_new_tokens: int | None = opt(None, "generation cap for this task only (overrides the run-wide --max-new-tokens)")


def unwrap(kind: Any) -> tuple[Any, bool]:
    """(inner type, optional) for `X | None` / Optional[X]."""
    args = typing.get_args(kind)
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else kind), True
    return kind, False


def type_name(kind: Any) -> str:
    inner, _ = unwrap(kind)
    if typing.get_origin(inner) is Literal:
        name = "|".join(map(str, typing.get_args(inner)))
    elif typing.get_origin(inner) is tuple:
        name = type_name(typing.get_args(inner)[0]) + " (repeatable)"
    else:
        name = {str: "text", int: "integer", float: "number", bool: "true|false", Path: "path"}.get(inner, getattr(inner, "__name__", str(inner)))
    return name


def _convert(kind: Any, value: Any, where: str) -> Any:
    inner, optional = unwrap(kind)
    if value is None or (optional and isinstance(value, str) and value == ""):
        if optional:
            return None
        raise TaskError(f"{where}: a value is needed")
    if typing.get_origin(inner) is tuple:  # a repeatable option: each value converted to the item type
        item = typing.get_args(inner)[0]
        items = [value] if isinstance(value, str) else list(value)
        return tuple(_convert(item, v, where) for v in items)
    if not isinstance(value, str):  # already typed (from code rather than a command line)
        if inner is bool and isinstance(value, bool) or inner is int and type(value) is int or inner is float and type(value) in (int, float):
            return _finite(float(value), where) if inner is float else inner(value)
        value = str(value)
    if typing.get_origin(inner) is Literal:
        choices = [str(c) for c in typing.get_args(inner)]
        if value not in choices:
            raise TaskError(f"{where}={value!r}: choose one of {', '.join(choices)}")
        return value
    try:
        if inner is bool:
            low = value.strip().lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return low in ("true", "1", "yes")
        if inner is int:
            return int(value)
        if inner is float:
            return _finite(float(value), where)
        if inner is Path:
            return Path(value)
    except ValueError:
        raise TaskError(f"{where}={value!r}: expected {'a whole number' if inner is int else type_name(kind)}") from None
    return value


def _finite(number: float, where: str) -> float:
    """No option means nan or infinity: nan compares false with every bound (a similarity threshold that no noun
    passes), infinity waits forever or weighs all."""
    if not math.isfinite(number):
        raise TaskError(f"{where}={number}: expected a finite number")
    return number


#: the types an option may be declared with (each also as `X | None`, and `tuple[X, ...]` for a repeatable one)
OPTION_TYPES = (str, int, float, bool, Path)


def check_option_types(cls: type, owner: str) -> None:
    """Every option of `cls` declared with a type a command line can give: anything else (a `list`, a `dict`, a
    class) would reach the task as the command line's text, unconverted."""
    for f, kind in fields_of(cls):
        inner, _ = unwrap(kind)
        if typing.get_origin(inner) is tuple:
            inner = typing.get_args(inner)[0]
        if inner not in OPTION_TYPES and typing.get_origin(inner) is not Literal:
            raise TaskError(f"{owner}: option {f.name!r} is declared as {getattr(inner, '__name__', inner)}; an option is text, integer, "
                            "number, true|false, path, a Literal of choices, a tuple[X, ...] of one of these (repeatable), or any of them | None")


def fields_of(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def parse(cls: type, raw: Mapping[str, Any] | Any, owner: str, prefix: str = "") -> Any:
    """An instance of the options dataclass `cls` from strings (or already typed values); `owner` names the task or
    strategy in errors, `prefix` how its options are written (`--task-arg pope.`). An instance of `cls` is returned
    as it is."""
    if isinstance(raw, cls):
        return raw
    if dataclasses.is_dataclass(raw) and not isinstance(raw, type):
        raw = dataclasses.asdict(raw)
    known = {f.name: kind for f, kind in fields_of(cls)}
    values = {}
    for key, value in dict(raw).items():
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=2, cutoff=0.6)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise TaskError(f"{owner} has no option {key!r}.{hint} Its options: {', '.join(known)}")
        values[key] = _convert(known[key], value, f"{prefix}{key}")
    return cls(**values)


def as_strings(options: Any) -> dict[str, str]:
    """The options that differ from their defaults, as the strings a command line gives (for records and reruns)."""
    out = {}
    for f, _ in fields_of(type(options)):
        value = getattr(options, f.name)
        if value != f.default:
            out[f.name] = str(value)
    return out


def describe(cls: type) -> list[dict[str, str]]:
    """name, type, default and help of every option, for listings."""
    return [{"name": f.name, "type": type_name(kind), "default": "" if f.default is None else repr(f.default), "help": f.metadata.get("help", "")}
            for f, kind in fields_of(cls)]
