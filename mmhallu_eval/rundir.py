"""The run folder on disk (schema_version 1): manifest, per-task samples/result, cache.

A run folder belongs to one run configuration. Re-running the same configuration resumes it;
a different one is refused unless the user says `--resume` (reuse the folder and its cache) or
`--overwrite` (start afresh), so no run is ever overwritten silently.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from .errors import UserError
from .files import JsonlWriter, atomic_write_json, read_json
from .outputs import is_run_layout, is_temp_of
from .redact import redact, redact_argv
from .scoring import SCHEMA_VERSION

MANIFEST = "manifest.json"
CACHE = "cache.sqlite"
LOCK = ".lock"


class RunDirError(UserError):
    """The output folder cannot be used as asked; the message says why and which flag to use."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_fingerprint(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def package_versions() -> dict[str, str]:
    """Versions of what a run's numbers depend on (read once per process: reading package metadata costs ~15 ms)."""
    return dict(_package_versions())


@lru_cache(maxsize=1)
def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("mmhallu-eval", "torch", "transformers", "vllm", "trl", "peft", "datasets", "nltk", "pycocotools"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_sha() -> str | None:
    """Commit of the mmhallu-eval checkout when running from one (None for a wheel install)."""
    here = Path(__file__).resolve().parent
    if "site-packages" in here.parts:
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    @property
    def cache_path(self) -> Path:
        return self.root / CACHE

    def task_dir(self, task: str) -> Path:
        return self.root / task

    def check_usable(self, overwrite: bool) -> dict[str, Any] | None:
        """What can be refused before the model loads: a folder with files a run did not write (with or without
        --overwrite, which never deletes them), and without --overwrite a run's files with no manifest or a damaged one.
        Returns the manifest it read (the run to resume or refuse), else None."""
        if not self.root.exists():
            return None
        if not self.root.is_dir():
            raise RunDirError(f"{self.root} is a file, not a folder; give --out a folder")
        if not any(c.name != LOCK for c in self.root.iterdir()):
            return None
        layout, foreign = is_run_layout(self.root)
        has_manifest = self.manifest_path.exists()
        if not layout and (overwrite or not has_manifest):  # --overwrite would not help: it never deletes these
            raise RunDirError(
                f"{self.root} holds files that are not part of a run ({', '.join(foreign)})"
                f"{'' if has_manifest else f', so it is not a run folder (no {MANIFEST})'}; --overwrite only replaces a run folder's own files: "
                "move those out, or give --out a new folder"
            )
        if not has_manifest and not overwrite:
            raise RunDirError(
                f"{self.root} holds a run's files but no {MANIFEST}, so it is not a run folder that can be resumed. Use another --out, "
                "or --overwrite to replace those files."
            )
        return self._previous_manifest() if has_manifest and not overwrite else None

    def _previous_manifest(self) -> dict[str, Any]:
        """The folder's manifest, or one error line saying which file is damaged and the ways on."""
        try:
            found = read_json(self.manifest_path)
        except UserError as exc:
            raise RunDirError(f"{exc}; restore it, or rerun with --overwrite to replace this run folder") from None
        if not isinstance(found, dict):
            raise RunDirError(f"{self.manifest_path}: not a run manifest (a JSON {type(found).__name__}); restore it, or rerun with --overwrite "
                              "to replace this run folder")
        return found

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder while this process writes it: a second run on it is refused, naming the holder."""
        created = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK
        fh = path.open("a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RunDirError(f"{self.root} is being written by another mmhallu run (process {holder}); wait for it to finish or use another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()
            path.unlink(missing_ok=True)
            if created and self.root.exists() and not any(self.root.iterdir()):  # a start that failed leaves nothing behind
                self.root.rmdir()

    def prepare(self, config: dict[str, Any], resume: bool, overwrite: bool) -> dict[str, Any]:
        """Claim the folder for `config` and return the manifest to keep updating."""
        fingerprint = run_fingerprint(config)
        previous = self.check_usable(overwrite)  # not read with --overwrite: replacing a damaged one is what it is for
        if overwrite:
            if self.root.exists():
                self._clear()
        elif previous is not None and previous.get("run_fingerprint") != fingerprint and not resume:
            raise RunDirError(
                f"{self.root} already holds a different run (model/tasks/options differ: fingerprint "
                f"{previous.get('run_fingerprint')} vs {fingerprint}). Use another --out, --resume to continue in "
                "this folder reusing its cached responses, or --overwrite to replace it."
            )
        self.root.mkdir(parents=True, exist_ok=True)
        manifest: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "run_fingerprint": fingerprint,
            "config": config,
            "started": now_iso(),
            "finished": None,
            "command": redact_argv(sys.argv),
            "versions": package_versions(),
            "git_sha": git_sha(),
            #: relative image paths in samples.jsonl are relative to this folder (the report resolves them here)
            "cwd": os.getcwd(),
            "tasks": {},
            "history": [],
        }
        if previous is not None:
            manifest["history"] = previous.get("history", []) + [
                {k: previous.get(k) for k in ("run_fingerprint", "started", "finished", "command")}
            ]
            if previous.get("run_fingerprint") == fingerprint:
                manifest["tasks"] = previous.get("tasks", {})
            if isinstance(previous.get("model"), dict):
                manifest["model"] = previous["model"]  # what the answers it keeps were made with (the runner updates it)
        self.write_manifest(manifest)
        return manifest

    def _clear(self) -> None:
        """Only a run's own files (check_usable refused anything else)."""
        for child in self.root.iterdir():
            if child.name == LOCK:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_json(self.manifest_path, redact(manifest))

    def samples_writer(self, task: str, each: Callable[[dict[str, Any]], None] | None = None) -> JsonlWriter:
        """`task`'s samples.jsonl, written record by record and put in place by `commit` (`each` sees every record).
        Temp files of a run killed while writing it are removed first: they are this folder's own, and the run lock
        is held."""
        folder = self.task_dir(task)
        for stale in folder.iterdir() if folder.is_dir() else ():
            if is_temp_of(stale.name, "samples.jsonl"):
                stale.unlink(missing_ok=True)
        return JsonlWriter(folder / "samples.jsonl", each)

    def write_result(self, task: str, result: dict[str, Any]) -> None:
        """result.json, once samples.jsonl is in place: a result.json on disk always has its samples beside it."""
        atomic_write_json(self.task_dir(task) / "result.json", result)
