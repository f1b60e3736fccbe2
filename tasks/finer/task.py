"""FINER-CompreCap and FINER-DOCCI (CVPR 2026): 5-way MCQs in positive / fine-grained-negative pairs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmhallu_eval import Capabilities, TaskAlias, task_alias, GenerationConfig, MixProbe, Measure, Metric, Parser, Sample, TaskOptions, TaskSpec, count, opt, ratio, task

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


def unit_stats(records: list[dict[str, Any]]) -> tuple[int, ...]:
    """One pair: both right (paired accuracy), the positive right, the negative right, 1 pair, its questions,
    unanswered questions."""
    right = {r["metadata"]["polarity"]: bool(r["correct"]) for r in records}
    return (all(right.values()), right.get("pos", False), right.get("neg", False), 1, len(records), sum(r["parsed"] is None for r in records))


MEASURE = Measure(
    stats=("both", "pos", "neg", "pairs", "questions", "unanswered"),
    unit_stats=unit_stats,
    unit=_pair_key,
    unit_size=2,
    check_unit=_check_pair,
    describe_unit=lambda k: f"FINER {k[0]} image {k[1]} qtype {k[2]}",
    group_order=SETTINGS,
    metrics=(
        Metric("paired_accuracy", ratio("both", "pairs"), True, ci=True),
        Metric("question_accuracy", lambda s: (s["pos"] + s["neg"]) / s["questions"] if s["questions"] else None, True, ci=True),
        Metric("pos_accuracy", ratio("pos", "pairs"), True, ci=True),
        Metric("neg_accuracy", ratio("neg", "pairs"), True, ci=True),
        Metric("n_pairs", count("pairs")),
        Metric("n_questions", count("questions")),
        Metric("unanswered", count("unanswered")),
    ),
    accuracy_metric="question_accuracy",
)


def _options(default: str) -> type:
    @dataclass
    class FinerOptions(TaskOptions):
        data: str = opt(default, "the HF dataset, a CSV/JSONL file with a setting column, or a folder of <setting>.csv/.jsonl")
        images: str | None = opt(None, "folder with the images named by image_filename (needed for DOCCI and local files)")
        settings: str | None = opt(None, "comma-separated subset of " + ", ".join(SETTINGS))

    return FinerOptions


def _spec(name: str) -> TaskSpec:
    default = DATASETS[name]

    def load(options: Any) -> list[Sample]:
        settings = parse_settings(options.settings)
        if options.data.startswith("hf:"):
            return load_hf(options.data[3:], settings, options.images, option=f"{name}.data")
        return load_local(Path(options.data), settings, options.images)[0]

    def read_answers(path: Any, options: Any) -> tuple[list[Sample], Any]:
        return load_local(Path(path), parse_settings(options.settings), options.images, with_text=True)

    return TaskSpec(
        name=name,
        version="1",
        description=f"{name.replace('_', '-').upper()}: 5-way MCQ positive / fine-grained negative pairs (obj, attr, rel, wh)",
        data_source=default,
        loader=load,
        score_sample=score_sample,
        measure=MEASURE,
        parsers=PARSERS,
        default_parser="finer-official",
        generation=GenerationConfig(max_new_tokens=2),
        headline=("paired_accuracy", "question_accuracy"),
        options=_options(default),
        capabilities=Capabilities(mix_probes=tuple(MixProbe(t, s, "paired_accuracy") for t, s in zip(("obj", "attr", "rel", "wh"), SETTINGS))),
        read_answers=read_answers,
        limit_unit=lambda s: (s.metadata["setting"], s.metadata["image"], s.metadata["qtype_base"]),
    )


task_alias(TaskAlias("finer", "dataset", {"comprecap": "finer_comprecap", "docci": "finer_docci"}, "comprecap",
                     "comprecap or docci (names the task in result.json)"))


@task("finer_comprecap")
def finer_comprecap() -> TaskSpec:
    return _spec("finer_comprecap")


@task("finer_docci")
def finer_docci() -> TaskSpec:
    return _spec("finer_docci")
