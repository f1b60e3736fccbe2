"""What the command modules share: the one user-error exit, task-argument parsing, one-line result summaries and
click options generated from options dataclasses (tasks' and pair strategies' declarations)."""
from __future__ import annotations

import inspect
import json
import typing
from typing import Any, Callable, Literal, Optional

import typer

from ..errors import UserError
from ..options import fields_of, type_name, unwrap
from ..terminal import printable


def group(**kwargs: Any) -> typer.Typer:
    """A command group with click's plain help and error layout: Rich's boxed help cuts long option names to fit an
    80-column terminal (`--gpu-memory-ut…`), and plain text wraps the help beside the whole name instead."""
    return typer.Typer(rich_markup_mode=None, **kwargs)


def say(line: str, color: Optional[str] = None) -> None:
    """One line on stderr (a note, a warning, an error), its control characters shown as escapes: it may quote a
    server, a file or an id the user did not write."""
    typer.secho(printable(line), fg=color, err=True)


def fail(message: str, code: int = 2) -> None:
    say(f"error: {message}", typer.colors.RED)
    raise typer.Exit(code)


def require_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    """A flag whose value must be one of a few names: a wrong one is one line naming them, before anything runs."""
    if value not in choices:
        fail(f"{flag} {value!r}: choose {' or '.join(choices)}")


def user_errors() -> tuple[type[BaseException], ...]:
    """Every command catches these once and turns them into one `error:` line with exit 2."""
    return (UserError,)


def parse_task_args(items: list[str] | tuple[str, ...]) -> dict[str, dict[str, str]]:
    """`pope.data=PATH` → {"pope": {"data": "PATH"}}."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        task, dot, opt = key.partition(".")
        if not sep or not dot or not task or not opt:
            fail(f"--task-arg {item!r}: expected TASK.KEY=VALUE, e.g. pope.data=coco_pope_random.json")
        given_before = out.setdefault(task, {}).get(opt)
        if given_before is not None:
            fail(f"--task-arg {task}.{opt} is given twice ({given_before!r}, then {value!r}); give it once")
        out[task][opt] = value
    return out


def parse_template_args(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`enable_thinking=false` → {"enable_thinking": False}: a value that reads as JSON (true, false, null, a number,
    a quoted string, a list or object) is that value, anything else the text as given."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            fail(f"--chat-template-arg {item!r}: expected NAME=VALUE with NAME a template variable, e.g. enable_thinking=false")
        if key in out:
            fail(f"--chat-template-arg {key} is given twice; give it once")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def parse_parsers(value: str | None, tasks: list[str]) -> dict[str, str]:
    """`strict` (for every task) or `pope=strict,mme=mme-official`."""
    if not value:
        return {}
    if "=" not in value:
        return {t: value for t in tasks}
    out = {}
    for part in value.split(","):
        task, _, name = part.partition("=")
        if task.strip() in out:
            fail(f"--parser {value!r}: {task.strip()} is given twice; give each task one parser")
        out[task.strip()] = name.strip()
    return out


def split(value: str) -> list[str]:
    """A comma-separated option as its distinct non-empty items, in order (a task or strategy named twice counts once)."""
    return list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))


def headline(result: dict[str, Any]) -> str:
    keys = [k for k, v in result["metrics"].items() if isinstance(v, float)][:5]
    parts = [f"{k}={result['metrics'][k]:.4f}" for k in keys]
    if result["errors"].get("total"):
        parts.append(f"errors={result['errors']['total']}")
    if result.get("units_left_out"):
        parts.append(f"units_left_out={result['units_left_out']['units']}")
    return ", ".join(parts) + f" (n={result['n']}, parser={result['parser']})"


def option(name: str, kind: Any, default: Any = None, help: str = "", flags: tuple[str, ...] = (), metavar: str | None = None,
           min: int | None = None) -> inspect.Parameter:
    """A keyword parameter typer turns into `--flags` (default: `--name-with-dashes`); `min`: the smallest number the
    flag takes (1 for counts, so that 0 is refused by the flag, not read as "not given")."""
    names = flags or (f"--{name.replace('_', '-')}",)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=typer.Option(default, *names, help=help, metavar=metavar, min=min),
                             annotation=kind)


def declared_options(cls: type, skip: tuple[str, ...] = (), prefix: str = "") -> list[inspect.Parameter]:
    """Options for the fields of an options dataclass: `--name-with-dashes` (and the field's `flag` alias), typed,
    repeatable for tuples, on/off for booleans; default None so that only what was given reaches the parser (the
    declared default is shown in the help). Values are read as text and converted by the declaration's parser, so a
    bad value gets the same one-line error from the command line as from `--task-arg`."""
    params = []
    for f, kind in fields_of(cls):
        if f.name in skip:
            continue
        inner, _ = unwrap(kind)
        flag = f"--{f.name.replace('_', '-')}"
        names = (flag,) + ((f"--{f.metadata['flag']}",) if f.metadata.get("flag") else ())
        default = f.default
        help_text = prefix + f.metadata.get("help", "") + (f" (default: {default})" if default not in (None, "", ()) else "")
        if inner is bool:
            params.append(option(f.name, Optional[bool], None, help_text, (f"{flag}/--no-{flag[2:]}",)))
        elif typing.get_origin(inner) is tuple:
            params.append(option(f.name, Optional[list[str]], None, help_text + " (repeatable)", names))
        else:
            choices = typing.get_args(inner) if typing.get_origin(inner) is Literal else ()
            params.append(option(f.name, Optional[str], None, help_text + (f" ({' | '.join(map(str, choices))})" if choices else ""), names,
                                 metavar=type_name(kind).upper()))
    return params


def command(app: typer.Typer, name: str, callback: Callable[..., None], params: list[inspect.Parameter], help: str) -> None:
    """Register `callback(**values)` as a typer command whose parameters are `params` (built from declarations)."""

    def run(**values: Any) -> None:
        callback(**values)

    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]  # what typer reads
    run.__doc__ = help
    app.command(name, help=help)(run)


def given(values: dict[str, Any]) -> dict[str, Any]:
    """The options a command line set (None and empty repeatables are "not given")."""
    return {k: v for k, v in values.items() if v is not None and v != ()}
