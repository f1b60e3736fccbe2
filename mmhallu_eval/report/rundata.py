"""Reading a run folder (manifest.json, <task>/result.json, <task>/samples.jsonl) for the reports."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import iter_jsonl, read_json
from ..task import TaskError


@dataclass
class TaskRun:
    name: str
    result: dict[str, Any]
    samples_path: Path
    _samples: list[dict[str, Any]] | None = None

    @property
    def samples(self) -> list[dict[str, Any]]:
        """The task's records; a missing file is an error (the report would list no samples and compare would see
        none in common), and so is a line without an id."""
        if self._samples is None:
            self._samples = list(self.read_samples())
        return self._samples

    def read_samples(self) -> Iterator[dict[str, Any]]:
        """The records, streamed (nothing kept), each checked as `samples` checks them."""
        if not self.samples_path.is_file():
            raise TaskError(f"{self.samples_path}: not found, so {self.name}'s per-sample records are missing; rerun the command that "
                            "wrote the folder (`mmhallu run` resumes from its cache) to write them again")
        for lineno, row in iter_jsonl(self.samples_path):
            if not isinstance(row.get("id"), str):
                raise TaskError(f"{self.samples_path}:{lineno}: a record needs its sample id as text (\"id\")")
            wrong = next((k for k, ok in _RECORD_FIELDS.items() if k in row and not ok(row[k])), None)
            if wrong or "correct" not in row:
                raise TaskError(f"{self.samples_path}:{lineno}: not a record of a mmhallu run (\"{wrong or 'correct'}\" "
                                f"{'is missing' if wrong is None else 'is damaged'}); restore the file or write the run again")
            yield row


def _text_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


#: the fields of a samples.jsonl record that every page and comparison reads, and what each must be
_RECORD_FIELDS = {
    "correct": lambda v: v is None or isinstance(v, bool), "error": _text_or_none, "group": _text_or_none,
    "prompt": _text_or_none, "response": _text_or_none, "metadata": lambda v: isinstance(v, dict),
    "images": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
}


@dataclass
class RunData:
    root: Path
    manifest: dict[str, Any]
    tasks: dict[str, TaskRun] = field(default_factory=dict)
    #: the result file given in place of a folder (`mmhallu score --out scores/base.json`), else None
    result_file: Path | None = None

    @property
    def source(self) -> Path:
        """What names this run on a command line: its folder, or its result file."""
        return self.result_file or self.root

    @property
    def page(self) -> Path:
        """Where its report goes by default: report.html in a run folder, FILE.report.html beside a result file."""
        return self.result_file.with_name(self.result_file.stem + ".report.html") if self.result_file else self.root / "report.html"

    @property
    def label(self) -> str:
        model = self.manifest.get("model", {})
        name = model.get("model") or self.manifest.get("config", {}).get("model")
        if not name:  # results scored from saved answers: no model named, the folder (or result file) is the name
            return self.result_file.stem if self.result_file else self.root.name
        adapter = model.get("adapter")
        return f"{_short(name)}{' + ' + _short(adapter) if adapter else ''} ({self.root.name})"


def _short(name: object) -> str:
    """A local folder by its last part; anything else (a hub id such as org/model) as it is."""
    text = str(name)
    return Path(text).name if Path(text).exists() else text


def load_run(root: str | Path) -> RunData:
    """A run folder, a folder holding one result.json (what `mmhallu score --out DIR` writes), or the result file
    `mmhallu score --out FILE.json` writes (its records in FILE.samples.jsonl beside it), as a single-task run."""
    root = Path(root)
    if root.is_file():
        run = RunData(root=root.parent, manifest={}, result_file=root)
        _add_task(run, root, root.with_name(root.stem + ".samples.jsonl"))
        return run
    if not root.is_dir():
        raise TaskError(f"{root}: run folder (or result file) not found")
    manifest_path = root / "manifest.json"
    manifest = read_json(manifest_path) if manifest_path.exists() else {}
    _check_objects(manifest, manifest_path, "a mmhallu manifest.json", ("model", "config", "tasks", "versions"))
    if any(not isinstance(t, dict) for t in manifest.get("tasks", {}).values()):
        raise TaskError(f"{manifest_path}: not a mmhallu manifest.json (a task's entry under \"tasks\" is not an object)")
    roots = [t.get("data_roots", []) for t in manifest.get("tasks", {}).values()]
    if not isinstance(manifest.get("cwd", ""), str) or any(not isinstance(r, list) or not all(isinstance(x, str) for x in r) for r in roots):
        raise TaskError(f"{manifest_path}: not a mmhallu manifest.json (\"cwd\" or a task's \"data_roots\" is not text); "
                        "restore it or write the run again")
    run = RunData(root=root, manifest=manifest)
    # a run writes <task>/samples.jsonl; `mmhallu score --out X/result.json` writes X/result.samples.jsonl beside it,
    # so results scored into DIR/<task>/ (several tasks: one run) or into DIR itself read as a run too
    found = [(p, _samples_beside(p)) for p in sorted(root.glob("*/result.json"))]
    if not found and (root / "result.json").is_file():
        found = [(root / "result.json", root / "result.samples.jsonl")]
    for result_path, samples_path in found:
        _add_task(run, result_path, samples_path)
    if not run.tasks:
        raise TaskError(f"{root}: no <task>/result.json inside; is this a run folder written by `mmhallu run`?")
    return run


def _add_task(run: RunData, result_path: Path, samples_path: Path) -> None:
    result = read_json(result_path)
    check_result(result, result_path)
    run.tasks[result["task"]] = TaskRun(result["task"], result, samples_path)


#: what every result.json (schema_version 1) has
RESULT_FIELDS = ("task", "task_version", "parser", "parser_version", "n", "n_scored", "metrics", "groups", "ci", "errors")


def check_result(result: Any, path: Path) -> None:
    """What the pages read of a result.json, checked: an edited or damaged file is named with the field at fault."""
    if not isinstance(result, dict) or result.get("schema_version") != 1:
        raise TaskError(f"{path}: not a mmhallu result.json (schema_version 1)")
    lacking = [f for f in RESULT_FIELDS if f not in result]
    if lacking:
        raise TaskError(f"{path}: not a mmhallu result.json (no {', '.join(repr(f) for f in lacking)}); restore it or score the answers again")
    _check_objects(result, path, "a mmhallu result.json", ("metrics", "groups", "ci", "errors", "peer_reported", "units_left_out"))
    peer_metrics = result.get("peer_reported", {}).get("metrics", {})
    problem = None
    if not isinstance(result["task"], str) or not result["task"]:
        problem = "\"task\" is not a task name"
    elif any(not isinstance(g, dict) or not isinstance(g.get("ci", {}), dict) for g in result["groups"].values()):
        problem = "a group under \"groups\" is not an object of metrics"
    elif any(not (isinstance(v, int) and not isinstance(v, bool) and v >= 0) for v in (result["n"], result["n_scored"])) or \
            not isinstance(result["errors"].get("total", 0), int):
        problem = "\"n\", \"n_scored\" or the errors' \"total\" is not a count"
    elif not isinstance(peer_metrics, dict) or any(not isinstance(m, dict) for m in peer_metrics.values()):
        problem = "\"peer_reported\" has no object of metrics"
    if problem:
        raise TaskError(f"{path}: not a mmhallu result.json ({problem}); restore it or score the answers again")


def _check_objects(obj: Any, path: Path, what: str, fields: tuple[str, ...]) -> None:
    """`obj` and each of its `fields` that it has are JSON objects: an edited or damaged file is named here, not met
    as a traceback in the middle of a page."""
    if not isinstance(obj, dict):
        raise TaskError(f"{path}: not {what} (expected a JSON object, got {type(obj).__name__})")
    wrong = [f for f in fields if f in obj and not isinstance(obj[f], dict)]
    if wrong:
        raise TaskError(f"{path}: not {what} (\"{wrong[0]}\" is not an object); restore it or write the folder again")


def _samples_beside(result: Path) -> Path:
    """A run's samples.jsonl, else the result.samples.jsonl `mmhallu score` writes beside its result.json."""
    run_samples = result.with_name("samples.jsonl")
    scored = result.with_name("result.samples.jsonl")
    return scored if not run_samples.exists() and scored.exists() else run_samples
