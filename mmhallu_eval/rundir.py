"""The run folder on disk (schema_version 1): manifest, per-task samples/result, cache.

A run folder belongs to one run configuration. Re-running the same configuration resumes it;
a different one is refused unless the user says `--resume` (reuse the folder and its cache) or
`--overwrite` (start afresh), so no run is ever overwritten silently.
"""
from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import UserError
from .files import atomic_write_json, atomic_write_jsonl, read_json
from .scoring import SCHEMA_VERSION

MANIFEST = "manifest.json"
CACHE = "cache.sqlite"
SECRET_MARKERS = ("key", "token", "secret", "password")


class RunDirError(UserError):
    """The output folder cannot be used as asked; the message says why and which flag to use."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_fingerprint(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def redact_argv(argv: list[str]) -> list[str]:
    """The command line without values of options that look like secrets (API keys never reach files)."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        name = arg.split("=", 1)[0].lower()
        if arg.startswith("--") and any(m in name for m in SECRET_MARKERS) and not name.endswith("-env"):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=***")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(arg)
    return out


def package_versions() -> dict[str, str]:
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

    def prepare(self, config: dict[str, Any], resume: bool, overwrite: bool) -> dict[str, Any]:
        """Claim the folder for `config` and return the manifest to keep updating."""
        fingerprint = run_fingerprint(config)
        previous: dict[str, Any] | None = None
        if self.manifest_path.exists():
            previous = read_json(self.manifest_path)
            same = previous.get("run_fingerprint") == fingerprint
            if overwrite:
                self._clear()
                previous = None
            elif not same and not resume:
                raise RunDirError(
                    f"{self.root} already holds a different run (model/tasks/options differ: fingerprint "
                    f"{previous.get('run_fingerprint')} vs {fingerprint}). Use another --out, --resume to continue in "
                    "this folder reusing its cached responses, or --overwrite to replace it."
                )
        elif self.root.exists() and any(self.root.iterdir()):
            if not overwrite:
                raise RunDirError(
                    f"{self.root} is not empty and is not a run folder (no {MANIFEST}). Use another --out, "
                    "or --overwrite to replace its contents."
                )
            self._clear()
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
            "tasks": {},
            "history": [],
        }
        if previous is not None:
            manifest["history"] = previous.get("history", []) + [
                {k: previous.get(k) for k in ("run_fingerprint", "started", "finished", "command")}
            ]
            if previous.get("run_fingerprint") == fingerprint:
                manifest["tasks"] = previous.get("tasks", {})
        self.write_manifest(manifest)
        return manifest

    def _clear(self) -> None:
        for child in self.root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_json(self.manifest_path, manifest)

    def write_task(self, task: str, records: list[dict[str, Any]], result: dict[str, Any]) -> None:
        """samples.jsonl first, then result.json: a result.json on disk always has its samples beside it."""
        atomic_write_jsonl(self.task_dir(task) / "samples.jsonl", records)
        atomic_write_json(self.task_dir(task) / "result.json", result)
