"""MME (Fu et al., 2023): 14 yes/no subtasks, two questions per image; score = 100·acc + 100·acc+."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmhallu_eval import Capabilities, GenerationConfig, MixProbe, Measure, Metric, Parser, PooledMetric, Sample, Sums, TaskSpec, count, task

from .loaders import COGNITION, DEFAULT_DATA, PERCEPTION, SUBTASKS, MmeOptions, load_samples
from .official_format import read_results_dir, write_results_dir
from .parsers import PARSERS
from .lmms_eval import LMMS_EVAL
from .vlmevalkit import DATASETS as VLMEVALKIT


def score_sample(sample: Sample, text: str, parser: Parser) -> dict[str, Any]:
    parsed = parser(text)
    return {"parsed": parsed, "correct": parsed == sample.target}


def _image_key(r: dict[str, Any]) -> tuple[str, str]:
    return (r["metadata"]["subtask"], r["metadata"]["image"])


def unit_stats(records: list[dict[str, Any]]) -> tuple[int, ...]:
    """One image: questions right, both right (acc+), questions, 1 image; other answers; and the yes/no cells
    of the answered questions (precision and recall, as calculation.py prints them)."""
    right = sum(bool(r["correct"]) for r in records)
    answered = [r for r in records if r["parsed"] in ("yes", "no")]
    return (right, right == len(records), len(records), 1, len(records) - len(answered),
            sum(r["parsed"] == "yes" and r["target"] == "yes" for r in answered),
            sum(r["parsed"] == "yes" and r["target"] == "no" for r in answered),
            sum(r["parsed"] == "no" and r["target"] == "yes" for r in answered))


def acc(s: Sums) -> float:
    return s["right"] / s["questions"]


def acc_plus(s: Sums) -> float:
    return s["both"] / s["images"]


def score(s: Sums) -> float:
    """calculation.py: acc·100 + acc+·100 per subtask."""
    return 100 * acc(s) + 100 * acc_plus(s)


def _category(members: tuple[str, ...]):
    return lambda by: sum((score(s) for g, s in by.items() if g in members), 0.0)


MEASURE = Measure(
    stats=("right", "both", "questions", "images", "other", "tp", "fp", "fn"),
    unit_stats=unit_stats,
    unit=_image_key,
    unit_size=2,
    describe_unit=lambda k: f"MME {k[0]} image {k[1]}",
    stratified=True,  # images are resampled within each subtask: the subtask sizes are fixed by the benchmark
    group_order=SUBTASKS,
    metrics=(
        Metric("score", score, True, ci=True),
        Metric("acc", acc, True, compare=True),
        Metric("acc_plus", acc_plus, True, compare=True),
        Metric("other", count("other")),
        Metric("n_images", count("images")),
        Metric("n", count("questions")),
        Metric("precision", lambda s: s["tp"] / (s["tp"] + s["fp"]) if s["tp"] + s["fp"] else None),
        Metric("recall", lambda s: s["tp"] / (s["tp"] + s["fn"]) if s["tp"] + s["fn"] else None),
    ),
    pooled=(
        PooledMetric("perception", _category(PERCEPTION), True, ci=True),
        PooledMetric("cognition", _category(COGNITION), True, ci=True),
        PooledMetric("total", lambda by: _category(PERCEPTION)(by) + _category(COGNITION)(by), True, ci=True),
        PooledMetric("other", lambda by: int(sum(s["other"] for s in by.values()))),
        PooledMetric("n", lambda by: int(sum(s["questions"] for s in by.values()))),
        PooledMetric("n_subtasks", len),
    ),
    accuracy_metric="acc",
    extra=lambda groups, head: {"subtasks_missing": [s for s in SUBTASKS if s not in groups]},
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
        loader=load_samples,
        score_sample=score_sample,
        measure=MEASURE,
        parsers=PARSERS,
        default_parser="mme-official",
        generation=GenerationConfig(max_new_tokens=128),
        headline=("perception", "cognition"),
        options=MmeOptions,
        capabilities=Capabilities(mix_probes=(MixProbe("attr", "color", "acc"), MixProbe("rel", "position", "acc")), vlmevalkit=VLMEVALKIT, lmms_eval=LMMS_EVAL),
        read_answers=lambda path, options: read_results_dir(Path(path)),
        limit_unit=lambda s: (s.metadata["subtask"], s.metadata["image"]),
        export=export,
    )
