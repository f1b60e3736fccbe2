"""The `mmhallu` command line: one thin module per command group. The `score`, `pairs build` and `loop` commands are
generated from the task and pair-strategy declarations. Heavy modules (torch, backends) are imported inside the
commands that need them, so scoring saved answers never loads torch."""
from __future__ import annotations

import errno
import sys

import typer

from . import evaluate, reports, train, world
from .common import group, say
from .pairs import register_loop, register_pairs_build
from .score import score_app


def build_app(argv: list[str] | None = None) -> typer.Typer:
    """The whole command tree; `--include-path` folders on the command line register their tasks first, so that
    `mmhallu score PLUGIN_TASK` exists."""
    argv = sys.argv[1:] if argv is None else argv
    include = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--include-path"] + [a.split("=", 1)[1] for a in argv if a.startswith("--include-path=")]
    app = group(add_completion=False, no_args_is_help=True, help="Measure hallucination in multimodal LLMs.")
    for module in (evaluate, reports, world):
        app.registered_commands += module.app.registered_commands
    app.add_typer(score_app(include), name="score")
    pairs = group(no_args_is_help=True, help="Build DPO preference pairs.")
    register_pairs_build(pairs)
    app.add_typer(pairs, name="pairs")
    register_loop(app)
    app.add_typer(train.train_app, name="train")
    app.add_typer(world.world_app, name="world")
    app.add_typer(world.build_app, name="build")
    _whole_short_help(app)
    return app


def _whole_short_help(app: typer.Typer) -> None:
    """Each command's line in a commands list: its help's first paragraph on one line, whole (click cuts it to 45
    characters with "..." and shows a docstring's line breaks as they are)."""
    for info in app.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if info.short_help is None and doc:
            info.short_help = " ".join(doc.split("\n\n")[0].split())
    for group_info in app.registered_groups:
        sub = group_info.typer_instance
        if sub is not None:
            if not isinstance(group_info.short_help, str) and isinstance(sub.info.help, str):  # unset is typer's Default(None)
                group_info.short_help = " ".join(sub.info.help.split("\n\n")[0].split())
            _whole_short_help(sub)


def main(argv: list[str] | None = None) -> None:
    """The `mmhallu` command on `argv` (the process's arguments when None); it ends by raising SystemExit."""
    from ..heap import tune_malloc

    tune_malloc()  # this process is the command's own: keep freed tensor memory for reuse
    try:
        app = build_app(argv)
    except typer.Exit as exc:  # a plugin folder that cannot be read: its error line is out, no traceback after it
        raise SystemExit(exc.exit_code) from None
    try:
        app(args=argv, prog_name="mmhallu")
    except OSError as exc:  # a full disk, a read-only folder, a permission, a file in a folder's place: one line naming the path
        if exc.errno not in (*_PATH_ERRORS, errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EPERM):
            raise
        where = exc.filename2 if exc.errno == errno.EISDIR and exc.filename2 else exc.filename
        say(f"error: {where or ''}{': ' if where else ''}{exc.strerror or exc}{_PATH_ERRORS.get(exc.errno or 0, '')}", typer.colors.RED)
        raise SystemExit(2) from None


#: errors of a path that names the wrong kind of thing, with what to do
_PATH_ERRORS = {
    errno.EEXIST: " (a file where a folder is to be made); give a folder path or move the file",
    errno.ENOTDIR: " (a file where a folder is expected); give a folder path",
    errno.EISDIR: " (a folder where a file is expected); name a file",
}


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # `from mmhallu_eval.cli import app` (tests, typer's CliRunner): the tree for this process
        return build_app([])
    raise AttributeError(name)


__all__ = ["build_app", "main"]
