"""FINER-CompreCap and FINER-DOCCI (CVPR 2026): 5-way MCQs in positive / fine-grained-negative pairs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmhallu_eval import Aggregate, CompareSpec, GenerationConfig, Parser, Sample, TaskSpec, bootstrap_ci, group_units, task, unit_accuracy

from .loaders import SETTINGS, load_hf, load_local, parse_settings
from .parsers import PARSERS

DATASETS = {"finer_comprecap": "hf:xiaorui638/finer-comprecap", "finer_docci": "hf:xiaorui638/finer-docci"}


def score_sample(sample: Sample, text: str, parser: Parser) -> dict[str, Any]:
    parsed = parser(text)
    return {"parsed": parsed, "correct": parsed == sample.target}


def _pair_key(r: dict[str, Any]) -> tuple[str, str, str]:
    m = r["metadata"]
    return (m["setting"], m["image"], m["qtype_base"])


def _check_pair(key: Any, members: list[dict[str, Any]]) -> str | None:
    polarities = sorted(m["metadata"]["polarity"] for m in members)
    if polarities != ["neg", "pos"]:
        return f"a pair needs one _pos and one _neg row, found {', '.join(m['metadata']['qtype'] for m in members)} (ids {', '.join(m['id'] for m in members)})"
    return None


def pairs(records: list[dict[str, Any]]) -> dict[Any, list[dict[str, Any]]]:
    return group_units(records, _pair_key, size=2, describe=lambda k: f"FINER {k[0]} image {k[1]} qtype {k[2]}", validate=_check_pair)


def _accuracy(records: list[dict[str, Any]]) -> float | None:
    return sum(bool(r["correct"]) for r in records) / len(records) if records else None


def setting_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    units = pairs(records)
    pos = [r for r in records if r["metadata"]["polarity"] == "pos"]
    neg = [r for r in records if r["metadata"]["polarity"] == "neg"]
    return {
        "paired_accuracy": unit_accuracy(units),
        "question_accuracy": _accuracy(records),
        "pos_accuracy": _accuracy(pos),
        "neg_accuracy": _accuracy(neg),
        "n_pairs": len(units),
        "n_questions": len(records),
        "unanswered": sum(r["parsed"] is None for r in records),
    }


def _ci(records: list[dict[str, Any]]) -> dict[str, Any]:
    units = list(pairs(records).values())
    right = np.array([[bool(r["correct"]) for r in sorted(m, key=lambda r: r["metadata"]["polarity"] != "pos")] for m in units])

    def stat(idx: np.ndarray) -> dict[str, float]:
        sample = right[idx]
        return {
            "paired_accuracy": float(sample.all(axis=1).mean()),
            "question_accuracy": float(sample.mean()),
            "pos_accuracy": float(sample[:, 0].mean()),
            "neg_accuracy": float(sample[:, 1].mean()),
        }

    return bootstrap_ci(len(units), stat)


def aggregate(records: list[dict[str, Any]]) -> Aggregate:
    present = [s for s in SETTINGS if any(r["group"] == s for r in records)]
    groups = {}
    for s in present:
        members = [r for r in records if r["group"] == s]
        groups[s] = {**setting_metrics(members), "ci": _ci(members)}
    metrics = setting_metrics(records) if records else {}
    return Aggregate(metrics=metrics, groups=groups, ci=_ci(records) if records else {})


def _unit_stats(records: list[dict[str, Any]]) -> np.ndarray:
    pos = [r for r in records if r["metadata"]["polarity"] == "pos"]
    neg = [r for r in records if r["metadata"]["polarity"] == "neg"]
    return np.array([all(bool(r["correct"]) for r in records), sum(bool(r["correct"]) for r in pos), sum(bool(r["correct"]) for r in neg), 1], dtype=float)


def _from_sums(sums_by_group: dict[str, np.ndarray]) -> dict[str, float | None]:
    both, pos, neg, n = sum(sums_by_group.values())
    if not n:
        return {}
    return {"paired_accuracy": both / n, "question_accuracy": (pos + neg) / (2 * n), "pos_accuracy": pos / n, "neg_accuracy": neg / n}


COMPARE = CompareSpec(
    unit=_pair_key,
    stats=_unit_stats,
    metrics=_from_sums,
    directions={"paired_accuracy": True, "question_accuracy": True, "pos_accuracy": True, "neg_accuracy": True},
    accuracy_metric="question_accuracy",
)


def _spec(name: str) -> TaskSpec:
    default = DATASETS[name]

    def load(options: dict[str, str]) -> list[Sample]:
        data = options.get("data", default)
        settings = parse_settings(options)
        if data.startswith("hf:"):
            return load_hf(data[3:], settings, options.get("images"))
        return load_local(Path(data), settings, options.get("images"))[0]

    def read_answers(path: Any, options: dict[str, str]) -> tuple[list[Sample], dict[str, str], list[str]]:
        samples, texts = load_local(Path(path), parse_settings(options), options.get("images"), with_text=True)
        return samples, texts, []

    return TaskSpec(
        name=name,
        version="1",
        description=f"{name.replace('_', '-').upper()}: 5-way MCQ positive / fine-grained negative pairs (obj, attr, rel, wh)",
        data_source=default,
        load=load,
        score_sample=score_sample,
        aggregate=aggregate,
        parsers=PARSERS,
        default_parser="finer-official",
        generation=GenerationConfig(max_new_tokens=2),
        headline=("paired_accuracy", "question_accuracy"),
        compare=COMPARE,
        options={
            "data": f"{default} (default), a CSV/JSONL file with a setting column, or a folder of <setting>.csv/.jsonl",
            "images": "folder with the images named by image_filename (needed for DOCCI and local files)",
            "settings": "comma-separated subset of " + ", ".join(SETTINGS),
        },
        read_answers=read_answers,
        limit_unit=lambda s: (s.metadata["setting"], s.metadata["image"], s.metadata["qtype_base"]),
    )


@task("finer_comprecap")
def finer_comprecap() -> TaskSpec:
    return _spec("finer_comprecap")


@task("finer_docci")
def finer_docci() -> TaskSpec:
    return _spec("finer_docci")
