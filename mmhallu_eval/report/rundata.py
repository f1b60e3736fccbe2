"""Reading a run folder (manifest.json, <task>/result.json, <task>/samples.jsonl) for the reports."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import read_json
from ..task import TaskError


@dataclass
class TaskRun:
    name: str
    result: dict[str, Any]
    samples_path: Path
    _samples: list[dict[str, Any]] | None = None

    @property
    def samples(self) -> list[dict[str, Any]]:
        if self._samples is None:
            text = self.samples_path.read_text(encoding="utf-8") if self.samples_path.exists() else ""
            self._samples = [json.loads(line) for line in text.splitlines() if line.strip()]
        return self._samples


@dataclass
class RunData:
    root: Path
    manifest: dict[str, Any]
    tasks: dict[str, TaskRun] = field(default_factory=dict)

    @property
    def label(self) -> str:
        model = self.manifest.get("model", {})
        name = model.get("model") or self.manifest.get("config", {}).get("model")
        if not name:  # results scored from saved answers: no model named, the folder is the name
            return self.root.name
        adapter = model.get("adapter")
        return f"{_short(name)}{' + ' + _short(adapter) if adapter else ''} ({self.root.name})"


def _short(name: object) -> str:
    """A local folder by its last part; anything else (a hub id such as org/model) as it is."""
    text = str(name)
    return Path(text).name if Path(text).exists() else text


def load_run(root: str | Path) -> RunData:
    """A run folder, or a folder holding one result.json (what `mmhallu score` writes) as a single-task run."""
    root = Path(root)
    if not root.is_dir():
        raise TaskError(f"{root}: run folder not found")
    manifest_path = root / "manifest.json"
    manifest = read_json(manifest_path) if manifest_path.exists() else {}
    run = RunData(root=root, manifest=manifest)
    # a run writes <task>/samples.jsonl; `mmhallu score --out X/result.json` writes X/result.samples.jsonl beside it,
    # so results scored into DIR/<task>/ (several tasks: one run) or into DIR itself read as a run too
    found = [(p, _samples_beside(p)) for p in sorted(root.glob("*/result.json"))]
    if not found and (root / "result.json").is_file():
        found = [(root / "result.json", root / "result.samples.jsonl")]
    for result_path, samples_path in found:
        result = read_json(result_path)
        if not isinstance(result, dict) or result.get("schema_version") != 1 or "task" not in result:
            raise TaskError(f"{result_path}: not a mmhallu result.json (schema_version 1)")
        run.tasks[result["task"]] = TaskRun(result["task"], result, samples_path)
    if not run.tasks:
        raise TaskError(f"{root}: no <task>/result.json inside; is this a run folder written by `mmhallu run`?")
    return run


def _samples_beside(result: Path) -> Path:
    """A run's samples.jsonl, else the result.samples.jsonl `mmhallu score` writes beside its result.json."""
    run_samples = result.with_name("samples.jsonl")
    scored = result.with_name("result.samples.jsonl")
    return scored if not run_samples.exists() and scored.exists() else run_samples
