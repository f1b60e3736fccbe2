"""MME's official result format: one `<subtask>.txt` per subtask, lines `image \\t question \\t gt \\t prediction`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmhallu_eval import AnswerMatch, Sample, TaskError, atomic_write_json

from .loaders import SUBTASKS, check_gt, check_subtask, make_sample, read_flat_list


def clean_prediction(text: str) -> str:
    """Newlines and tabs would break the 4-column format: they become spaces."""
    return text.replace("\r", " ").replace("\n", " ").replace("\t", " ")


def write_results_dir(records: list[dict[str, Any]], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    by_subtask: dict[str, list[str]] = {}
    for r in records:
        m = r["metadata"]
        pred = "" if r.get("error") else clean_prediction(r["response"])
        by_subtask.setdefault(m["subtask"], []).append(f"{m['image']}\t{m['question']}\t{m['gt']}\t{pred}\n")
    for subtask, lines in by_subtask.items():
        (folder / f"{subtask}.txt").write_text("".join(lines), encoding="utf-8")
    atomic_write_json(folder / "README.json", {"format": "image\\tquestion\\tgt\\tprediction", "subtasks": sorted(by_subtask)})


def read_results_dir(folder: Path) -> tuple[list[Sample], AnswerMatch]:
    """Samples and predictions from a folder of 4-column files; missing subtasks are listed in result.json
    (`subtasks_missing`), not fatal."""
    if not folder.is_dir():
        raise TaskError(f"{folder}: MME results folder not found")
    files = sorted(p for p in folder.glob("*.txt"))
    if not files:
        raise TaskError(f"{folder}: no <subtask>.txt result files")
    by_name = {p.stem: p for p in files}
    for stem, path in by_name.items():
        check_subtask(stem, str(path))
    samples: list[Sample] = []
    match = AnswerMatch()
    for subtask in SUBTASKS:
        path = by_name.get(subtask)
        if path is None:
            continue
        seen: dict[str, int] = {}
        for lineno, (name, question, gt, pred) in read_flat_list(path, 4):
            idx = seen.get(name, 0)
            seen[name] = idx + 1
            sample = make_sample(subtask, name, name, question, check_gt(gt, f"{path}:{lineno}"), idx, "")
            samples.append(sample)
            match.offer(sample.id, pred, f"{path.name}:{lineno}")
    missing = [s for s in SUBTASKS if s not in by_name]
    if missing:
        match.notes.append(f"{len(missing)} subtask file(s) missing, scored the rest: {', '.join(missing)}")
    return samples, match.finish(samples)
