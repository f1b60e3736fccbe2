"""The one user-error base class: every command catches it once and prints `error: …` with exit 2. Its subclasses
say which part of the input was wrong (task data or options, a model or backend, the output folder)."""
from __future__ import annotations


class UserError(Exception):
    """Bad input from the user; the message says what was wrong, where (file, line, id) and what to do."""


class TaskError(UserError):
    """Bad task input: a data file, an option, an answers file."""
