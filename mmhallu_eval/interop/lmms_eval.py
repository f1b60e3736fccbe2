"""lmms-eval's `--log_samples` files (`{date}_samples_{task}.jsonl`). A line holds `doc_id` (the row index of the
document in the task's dataset split), `filtered_resps` (the answer: a string since lmms-eval 0.7, a one-element list
before), `input` (the question text) and one object per metric with lmms-eval's own parsed label. The document is not
written, so the answers are joined back to the questions the user passes (`--data`): in the order lmms-eval's dataset
holds them, every line's own ids checked against the question it lands on, or — where lmms-eval's dataset has an
order of its own — by the ids and question text a line's metric objects and `input` name."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import TaskError
from ..files import iter_jsonl
from ..scoring import AnswerMatch
from ..task import LmmsEvalTask
from ..types import Sample
from .join import KeyJoin, covered

_LOG_NAME = re.compile(r"_samples_(?P<task>.+)\.jsonl$")


def lmms_eval_task_of(path: Path) -> str | None:
    found = _LOG_NAME.search(path.name)
    return found.group("task") if found else None


def _answer(row: dict[str, Any], where: str) -> str:
    value = row.get("filtered_resps", row.get("resps"))
    while isinstance(value, list):
        if len(value) != 1:
            raise TaskError(f"{where}: filtered_resps holds {len(value)} answers; score logs of single-answer (greedy) runs, "
                            "one answer per document")
        value = value[0]
    if not isinstance(value, str):
        raise TaskError(f"{where}: filtered_resps is {type(value).__name__}, not the answer text")
    return value


def _task(path: Path, known: tuple[LmmsEvalTask, ...], task: str) -> LmmsEvalTask:
    if not known:
        raise TaskError(f"{path}: `mmhallu score {task}` reads no lmms-eval logs (no lmms-eval task maps to it)")
    name = lmms_eval_task_of(path)
    spec = next((k for k in known if k.name == name), None) if name else (known[0] if len(known) == 1 else None)
    if spec is None:
        names = ", ".join(k.name for k in known)
        raise TaskError(f"{path}: " + (f"a log of lmms-eval task {name!r}, not one `mmhallu score {task}` reads ({names})" if name else
                                       f"cannot tell the lmms-eval task from the file name; name it like lmms-eval does: DATE_samples_TASK.jsonl ({names})"))
    return spec


def _lines(path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(where, doc_id, line) of every line; a line without an integer doc_id or with a repeated one stops the read."""
    seen: dict[int, int] = {}
    for lineno, row in iter_jsonl(path):
        where = f"{path}:{lineno}"
        doc_id = row.get("doc_id")
        if not isinstance(doc_id, int) or isinstance(doc_id, bool):
            raise TaskError(f"{where}: no integer doc_id; is this an lmms-eval --log_samples file?")
        if doc_id in seen:
            raise TaskError(f"{where}: doc_id {doc_id} again (first on line {seen[doc_id]}): two runs concatenated? score each log on its own")
        seen[doc_id] = lineno
        yield where, doc_id, row


def read_lmms_eval_log(path: Path, load: Callable[[], list[Sample]], known: tuple[LmmsEvalTask, ...], task: str, options: Any = None
                       ) -> tuple[list[Sample], AnswerMatch, dict[str, Any], LmmsEvalTask]:
    """(the samples, the answers of a log matched to them, lmms-eval's parsed label per sample id, the lmms-eval task).
    `load` gives the questions of --data; a task whose questions are the log's own (CHAIR: the images captioned) builds
    them from the lines instead."""
    spec = _task(path, known, task)
    if spec.from_lines is not None:
        lines = [(where, row) for where, _, row in _lines(path)]
        for where, row in lines:
            row["filtered_resps"] = _answer(row, where)
        samples, match = spec.from_lines(lines, options)
        return samples, match, {}, spec
    samples = load()
    match, labels = AnswerMatch(), {}
    docs = [s for s in covered(samples, spec.covers, spec.covers_note, f"lmms-eval's {spec.name}", match) if spec.group is None or s.group == spec.group]
    join = KeyJoin(docs, spec.key, match) if spec.key is not None and spec.line_key is not None else None
    for where, doc_id, row in _lines(path):
        if join is not None:
            try:
                key = spec.line_key(row)  # type: ignore[misc]
            except (TaskError, KeyError, TypeError, AttributeError) as exc:
                raise TaskError(f"{where}: doc_id {doc_id}: not a line of lmms-eval task {spec.name!r} ({exc})") from None
            found = join.take(key, f"doc_id {doc_id}", where)
            if found is None:
                continue
            sample = found
        else:
            if not 0 <= doc_id < len(docs):
                raise TaskError(f"{where}: doc_id {doc_id}, but --data has {len(docs)} questions for lmms-eval task {spec.name!r}; "
                                "pass the question files the run used")
            sample = docs[doc_id]
            problem = spec.check(sample, row) if spec.check else None
            if problem:
                raise TaskError(f"{where}: doc_id {doc_id} is {problem}; the log's ids do not match --data (pass the question files the run used, "
                                "in the dataset's order)")
        if match.offer(sample.id, _answer(row, where), f"doc_id {doc_id}") and spec.label is not None:
            labels[sample.id] = spec.label(row)
    if join is not None:
        join.require_any(path, "lines", "lmms-eval", spec.name)
    return samples, match.finish(docs), labels, spec
