"""Task registration: `@task` decorators, the `mmhallu_eval.tasks` entry-point group and
user folders given with `--include-path`. Discovery is lazy so that importing the package stays cheap."""
from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import pkgutil
import re
import sys
from importlib.metadata import entry_points
from pathlib import Path
from dataclasses import dataclass
from typing import Callable

from .task import TaskError, TaskSpec
from .terminal import warn

ENTRY_POINT_GROUP = "mmhallu_eval.tasks"
#: the package the task files of `--include-path` folders are imported into
_USER_PACKAGE = "mmhallu_user_tasks"
#: what a task name may be: a folder name on every system, and free of the "." and "=" of --task-arg TASK.KEY=VALUE
TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_FACTORIES: dict[str, Callable[[], TaskSpec]] = {}
_ORIGINS: dict[str, str] = {}
_loaded_builtin = False
_scanned_paths: set[Path] = set()


def task(name: str) -> Callable[[Callable[[], TaskSpec]], Callable[[], TaskSpec]]:
    """Register a factory returning the `TaskSpec` of task `name`."""

    def decorator(factory: Callable[[], TaskSpec]) -> Callable[[], TaskSpec]:
        origin = getattr(factory, "__module__", "?")
        if origin.startswith(_USER_PACKAGE + "."):  # a task file given with --include-path: named by its path, not its made-up module
            origin = getattr(sys.modules.get(origin), "__file__", None) or origin
        if not isinstance(name, str) or not TASK_NAME.fullmatch(name):
            raise TaskError(f"task name {name!r} (in {origin}): use letters, digits, _ and - (it names the task's folder in a run and "
                            "the TASK of --task-arg TASK.KEY=VALUE)")
        if name in _FACTORIES and _ORIGINS.get(name) != origin:
            raise TaskError(f"task {name!r} is registered twice: by {_ORIGINS[name]} and by {origin}; give one of them another name")
        _FACTORIES[name] = factory
        _ORIGINS[name] = origin
        return factory

    return decorator


@dataclass(frozen=True)
class TaskAlias:
    """A command name that picks one of several tasks by an option (`mmhallu score finer --dataset docci`)."""

    name: str
    option: str
    tasks: dict[str, str]
    default: str
    help: str = ""


_ALIASES: dict[str, TaskAlias] = {}


def task_alias(alias: TaskAlias) -> None:
    """Declared by a plugin next to the tasks it chooses between."""
    _ALIASES[alias.name] = alias


def task_aliases() -> dict[str, TaskAlias]:
    _load_builtin()
    return dict(_ALIASES)


def _load_builtin() -> None:
    global _loaded_builtin
    if _loaded_builtin:
        return
    _loaded_builtin = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken third-party plugin must not hide the others
            warn(f"warning: task plugin {ep.name!r} ({ep.value}) failed to load: {exc}")
    try:
        mmhallu_tasks = importlib.import_module("mmhallu_tasks")
    except ImportError:
        return
    for mod in pkgutil.iter_modules(mmhallu_tasks.__path__):
        if mod.ispkg:
            try:
                importlib.import_module(f"mmhallu_tasks.{mod.name}.task")
            except ModuleNotFoundError as exc:
                if exc.name != f"mmhallu_tasks.{mod.name}.task":  # a folder without task.py is not a plugin; a missing dependency is reported
                    warn(f"warning: task plugin mmhallu_tasks.{mod.name} failed to import: {exc}")


def include_path(path: str | Path) -> None:
    """Import every `task.py` (or top-level `*.py`) under `path` so its `@task` registrations run."""
    root = Path(path).resolve()
    if not root.is_dir():
        raise TaskError(f"--include-path {path}: not a directory")
    if root in _scanned_paths:
        return
    _scanned_paths.add(root)
    files = sorted(root.glob("*/task.py")) + sorted(p for p in root.glob("*.py") if not p.name.startswith("_"))
    for file in files:
        # the same name for the same file in every process (str hashes change from one process to the next)
        mod_name = f"{_USER_PACKAGE}.{file.parent.name}_{file.stem}_{hashlib.sha1(str(file).encode()).hexdigest()[:8]}"
        spec = importlib.util.spec_from_file_location(mod_name, file)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise TaskError(f"task file {file} failed to import: {exc}") from exc


def task_names() -> list[str]:
    _load_builtin()
    return sorted(_FACTORIES)


def get_task(name: str) -> TaskSpec:
    """The spec of task `name`; unknown names fail with a did-you-mean."""
    _load_builtin()
    if name not in _FACTORIES:
        close = difflib.get_close_matches(name, list(_FACTORIES), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise TaskError(f"unknown task {name!r}.{hint} Known tasks: {', '.join(sorted(_FACTORIES)) or 'none'}. "
                        "A task of your own is found with --include-path FOLDER (the folder holding its folder with task.py) "
                        "or by installing the package that registers it.")
    spec = _FACTORIES[name]()
    if spec.name != name:
        raise TaskError(f"task registered as {name!r} returns a spec named {spec.name!r}")
    return spec
