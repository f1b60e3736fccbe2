"""POPE (Li et al., 2023): yes/no object-existence probing with random/popular/adversarial negatives."""
from __future__ import annotations

from typing import Any

import numpy as np

from mmhallu_eval import Aggregate, CompareSpec, GenerationConfig, Parser, Sample, TaskSpec, binary_metrics, binary_rates, bootstrap_ci, task

from .loaders import DEFAULT_DATA, load_samples
from .parsers import PARSERS, strict

CI_METRICS = ("accuracy", "precision", "recall", "f1", "yes_ratio")


def score_sample(sample: Sample, text: str, parser: Parser) -> dict[str, Any]:
    parsed = parser(text)
    return {
        "parsed": parsed,
        "correct": parsed == sample.target,
        "strict_parsed": strict(text),
    }


_LABEL = {"yes": 1, "no": 0}


def _arrays(records: list[dict[str, Any]]) -> tuple[list[int | None], list[int]]:
    return [_LABEL.get(r["parsed"]) for r in records], [_LABEL[r["target"]] for r in records]


def _metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    m = binary_metrics(*_arrays(records))
    m["unparseable_strict"] = sum(1 for r in records if r.get("strict_parsed") is None)
    return m


def _ci(records: list[dict[str, Any]]) -> dict[str, Any]:
    pred, label = _arrays(records)
    pred_arr = np.array([-1 if p is None else p for p in pred])
    label_arr = np.array(label)

    def stat(idx: np.ndarray) -> dict[str, np.ndarray]:
        rates = binary_rates(pred_arr[idx], label_arr[idx])
        return {k: rates[k] for k in CI_METRICS}

    return bootstrap_ci(len(records), stat, batched=True)


def aggregate(records: list[dict[str, Any]]) -> Aggregate:
    groups: dict[str, dict[str, Any]] = {}
    for g in sorted({r["group"] for r in records}):
        members = [r for r in records if r["group"] == g]
        groups[g] = {**_metrics(members), "ci": _ci(members)}
    return Aggregate(metrics=_metrics(records), groups=groups, ci=_ci(records))


def _unit_stats(records: list[dict[str, Any]]) -> np.ndarray:
    r = records[0]
    pred, label = _LABEL.get(r["parsed"]), _LABEL[r["target"]]
    return np.array([pred == 1 and label == 1, pred == 1 and label == 0, pred == 0 and label == 0, pred == 0 and label == 1, 1, label == 1], dtype=float)


def _from_sums(sums_by_group: dict[str, np.ndarray]) -> dict[str, float | None]:
    tp, fp, tn, fn, n, pos = sum(sums_by_group.values())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / pos if pos else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    return {"accuracy": (tp + tn) / n if n else None, "precision": precision, "recall": recall, "f1": f1, "yes_ratio": (tp + fp) / n if n else None}


COMPARE = CompareSpec(
    unit=lambda r: r["id"],
    stats=_unit_stats,
    metrics=_from_sums,
    directions={"accuracy": True, "precision": True, "recall": True, "f1": True, "yes_ratio": None},
    accuracy_metric="accuracy",
)


@task("pope")
def pope() -> TaskSpec:
    return TaskSpec(
        name="pope",
        version="1",
        description="POPE object-existence yes/no questions (random, popular, adversarial splits)",
        data_source=DEFAULT_DATA,
        load=load_samples,
        score_sample=score_sample,
        aggregate=aggregate,
        parsers=PARSERS,
        default_parser="pope-official",
        generation=GenerationConfig(max_new_tokens=128),
        headline=("f1", "accuracy"),
        compare=COMPARE,
        options={
            "data": f"official coco_pope_<split>.json file(s) or folder, merged JSONL with category, or hf:NAME (default {DEFAULT_DATA})",
            "images": "folder with the images (e.g. COCO val2014); default: embedded in the dataset",
            "labels": "folder of official question files giving labels to a merged JSONL without them",
            "prompt_suffix": "text appended to each question (default: LLaVA's '\\nAnswer the question using a single word or phrase.')",
        },
    )
