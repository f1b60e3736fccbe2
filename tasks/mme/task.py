"""MME (Fu et al., 2023): 14 yes/no subtasks, two questions per image; score = 100·acc + 100·acc+."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmhallu_eval import Aggregate, CompareSpec, GenerationConfig, Parser, Sample, TaskSpec, bootstrap_ci, group_units, task, unit_accuracy

from .loaders import COGNITION, DEFAULT_DATA, PERCEPTION, SUBTASKS, load_samples
from .official_format import read_results_dir, write_results_dir
from .parsers import PARSERS


def score_sample(sample: Sample, text: str, parser: Parser) -> dict[str, Any]:
    parsed = parser(text)
    return {"parsed": parsed, "correct": parsed == sample.target}


def _image_key(r: dict[str, Any]) -> tuple[str, str]:
    return (r["metadata"]["subtask"], r["metadata"]["image"])


def image_units(records: list[dict[str, Any]]) -> dict[Any, list[dict[str, Any]]]:
    """Two questions per image within a subtask, else a clear error naming subtask and image."""
    return group_units(records, _image_key, size=2, describe=lambda k: f"MME {k[0]} image {k[1]}")


def subtask_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    units = image_units(records)
    acc = sum(bool(r["correct"]) for r in records) / len(records)
    acc_plus = unit_accuracy(units) or 0.0
    answered = [r for r in records if r["parsed"] in ("yes", "no")]
    tp = sum(r["parsed"] == "yes" and r["target"] == "yes" for r in answered)
    fp = sum(r["parsed"] == "yes" and r["target"] == "no" for r in answered)
    fn = sum(r["parsed"] == "no" and r["target"] == "yes" for r in answered)
    return {
        "score": 100 * acc + 100 * acc_plus,
        "acc": acc,
        "acc_plus": acc_plus,
        "other": len(records) - len(answered),
        "n_images": len(units),
        "n": len(records),
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
    }


def _ci(records: list[dict[str, Any]], present: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bootstrap over images, resampled within each subtask; per-subtask score CIs and category sums."""
    units = list(image_units(records).items())
    subtask = np.array([k[0] for k, _ in units])
    n_right = np.array([sum(bool(r["correct"]) for r in m) for _, m in units])

    def stat(idx: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in present:
            sel = idx[subtask[idx] == s]
            out[s] = 100 * n_right[sel].sum() / (2 * len(sel)) + 100 * float(np.mean(n_right[sel] == 2))
        out["perception"] = sum(out[s] for s in present if s in PERCEPTION)
        out["cognition"] = sum(out[s] for s in present if s in COGNITION)
        out["total"] = out["perception"] + out["cognition"]
        return out

    ci = bootstrap_ci(len(units), stat, strata=subtask)
    return {k: ci[k] for k in ("perception", "cognition", "total") if k in ci}, {s: ci.get(s) for s in present}


def aggregate(records: list[dict[str, Any]]) -> Aggregate:
    present = [s for s in SUBTASKS if any(r["group"] == s for r in records)]
    groups = {s: subtask_metrics([r for r in records if r["group"] == s]) for s in present}
    perception = sum((groups[s]["score"] for s in present if s in PERCEPTION), 0.0)
    cognition = sum((groups[s]["score"] for s in present if s in COGNITION), 0.0)
    metrics = {
        "perception": perception,
        "cognition": cognition,
        "total": perception + cognition,
        "other": sum(g["other"] for g in groups.values()),
        "n": len(records),
        "n_subtasks": len(present),
    }
    ci, group_ci = _ci(records, present) if records else ({}, {})
    for s in present:
        groups[s]["ci"] = {"score": group_ci.get(s)}
    missing = [s for s in SUBTASKS if s not in present]
    return Aggregate(metrics=metrics, groups=groups, ci=ci, extra={"subtasks_missing": missing})


def _unit_stats(records: list[dict[str, Any]]) -> np.ndarray:
    right = sum(bool(r["correct"]) for r in records)
    return np.array([right, right == len(records), len(records), 1], dtype=float)


def _from_sums(sums_by_group: dict[str, np.ndarray]) -> dict[str, float | None]:
    scores = {g: 100 * s[0] / s[2] + 100 * s[1] / s[3] for g, s in sums_by_group.items() if s[3]}
    out: dict[str, float | None] = {
        "perception": sum((v for g, v in scores.items() if g in PERCEPTION), 0.0),
        "cognition": sum((v for g, v in scores.items() if g in COGNITION), 0.0),
    }
    out["total"] = out["perception"] + out["cognition"]
    if len(sums_by_group) == 1:
        (s,) = sums_by_group.values()
        out.update(score=100 * s[0] / s[2] + 100 * s[1] / s[3], acc=s[0] / s[2], acc_plus=s[1] / s[3])
    return out


COMPARE = CompareSpec(
    unit=_image_key,
    stats=_unit_stats,
    metrics=_from_sums,
    directions={"perception": True, "cognition": True, "total": True, "score": True, "acc": True, "acc_plus": True},
    accuracy_metric="acc",
)


def export(records: list[dict[str, Any]], task_dir: Path) -> None:
    """`<run>/mme/official_results/<subtask>.txt` for the official calculator."""
    write_results_dir(records, Path(task_dir) / "official_results")


@task("mme")
def mme() -> TaskSpec:
    return TaskSpec(
        name="mme",
        version="1",
        description="MME perception (10) and cognition (4) yes/no subtasks; score = 100·acc + 100·acc+",
        data_source=DEFAULT_DATA,
        load=load_samples,
        score_sample=score_sample,
        aggregate=aggregate,
        parsers=PARSERS,
        default_parser="mme-official",
        generation=GenerationConfig(max_new_tokens=128),
        headline=("perception", "cognition"),
        compare=COMPARE,
        options={
            "data": f"MME release folder, folder of <subtask>.txt lists (image\\tquestion\\tgt), or hf:NAME (default {DEFAULT_DATA})",
            "images": "folder with <subtask>/images/<image> (or <subtask>/<image>) for the flat lists",
            "subtasks": "comma-separated subset of: " + ", ".join(SUBTASKS),
            "prompt_suffix": "text appended to each question (default: none, the questions end with 'Please answer yes or no.')",
        },
        read_answers=lambda path, options: read_results_dir(Path(path)),
        limit_unit=lambda s: (s.metadata["subtask"], s.metadata["image"]),
        export=export,
    )
