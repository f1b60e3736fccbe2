"""`mmhallu` commands run inside the test process: the same `main` the console script calls, its output captured and
its exit status returned as a subprocess's would be, without a second of interpreter start-up and imports per call.
For commands that load no model and register no plugin; those run as a subprocess, as a user runs them."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import traceback
from pathlib import Path

from click.testing import CliRunner


@contextlib.contextmanager
def _working_folder(cwd: Path | None):
    before = os.getcwd()
    os.chdir(cwd or before)
    try:
        yield
    finally:
        os.chdir(before)


def cli_in_process(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    from mmhallu_eval.cli import main

    runner = CliRunner()
    # the malloc tuning is for a command's own process, not for the test process's
    with _working_folder(cwd), runner.isolation(env={"MMHALLU_TUNE_MALLOC": "0", **(env or {})}) as (out, err, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception:  # what the interpreter would print for an uncaught exception
            traceback.print_exc()
            code = 1
    return subprocess.CompletedProcess(list(args), code, out.getvalue().decode(), err.getvalue().decode())


#: commands that load no model: they run in the test process
MODEL_FREE = {"score", "report", "compare", "leaderboard", "tasks", "build", "pairs"}


def mmhallu(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`mmhallu ARGS` as a finished process: in this process when the command loads no model (`world` but its
    tiny-model builder included) and names no plugin folder, else as a subprocess."""
    in_process = bool(args) and (args[0] in MODEL_FREE or args[0] == "world" and args[1:2] != ("tiny-model",)) and not any(
        a == "--include-path" or a.startswith("--include-path=") for a in args)
    if in_process:
        return cli_in_process(*args, cwd=cwd, env=env)
    return subprocess.run([sys.executable, "-m", "mmhallu_eval.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})})
