"""AMBER (Wang et al., 2023, arXiv 2311.07397): both halves — generative (CHAIR, Cover, Hal, Cog over image
descriptions) and discriminative (existence, attribute state/number/action, relation yes/no questions) — scored as
the official `inference.py` scores them."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmhallu_eval import (AnswerMatch, Capabilities, GenerationConfig, Measure, Metric, Parser, PooledMetric, Sample, TaskError,
                          TaskSpec, pooled_totals, read_json, task)

from mmhallu_tasks.pope.parsers import strict
from mmhallu_tasks.pope.task import right_answer

from .loaders import AmberOptions, load_data, load_samples
from .metrics import DISCRIMINATIVE, FRACTIONS, STATS, amber_score, official_table
from .scorer import NO, YES, Similarity, score_answer, score_description
from .lmms_eval import LMMS_EVAL
from .vlmevalkit import DATASETS as VLMEVALKIT


def amber_official(text: str) -> str | None:
    """The script compares the raw answer with "Yes" and "No": anything else is neither."""
    return {YES: "yes", NO: "no"}.get(text)


PARSERS = {
    "amber-official": Parser("amber-official", "1", amber_official, "AMBER inference.py: the answer must be exactly 'Yes' or 'No'"),
    "strict": Parser("strict", "1", strict, "not official: a leading yes/no word, any case, read as Yes/No"),
}


def score_batch(samples: list[Sample], texts: list[str], parser: Parser, options: AmberOptions) -> list[dict[str, Any]]:
    amber = load_data(options.data)
    similar = Similarity(options.spacy_model, options.similarity) if any(s.group == "generative" for s in samples) else None
    out = []
    for sample, text in zip(samples, texts):
        if sample.group == "generative":
            scored = score_description(text, sample.metadata["truth"], sample.metadata["hallu"], amber, similar)  # type: ignore[arg-type]
            out.append({"parsed": {k: scored[k] for k in ("hallucinated", "covered", "hallucinated_objects")},
                        "correct": None, "nouns": scored["nouns"], "counts": scored["counts"]})
        else:
            parsed = parser(text)
            counts = score_answer({"yes": YES, "no": NO}.get(parsed, text) if parsed else text, str(sample.target))
            out.append({"parsed": parsed, "correct": bool(counts["correct_score"]), "counts": counts})
    return out


def score_sample(sample: Sample, text: str, parser: Parser) -> dict[str, Any]:
    raise TaskError("amber scores answers in batches (score_batch)")


def unit_stats(records: list[dict[str, Any]]) -> tuple[float, ...]:
    counts = records[0]["counts"]
    return tuple(counts.get(k, 0) for k in STATS)


METRICS = tuple(Metric(name, formula, better, ci=True) for name, (formula, better) in FRACTIONS.items())
MEASURE = Measure(
    stats=STATS,
    unit_stats=unit_stats,
    metrics=METRICS,
    pooled=pooled_totals(STATS, METRICS, PooledMetric("amber_score", amber_score, True), PooledMetric("official_table", official_table)),  # type: ignore[arg-type]
    group_order=("generative", *DISCRIMINATIVE),
    accuracy_metric="accuracy",
)


def read_answers(path: Path, options: AmberOptions) -> tuple[list[Sample], AnswerMatch]:
    """The official inference format: a JSON list of {"id": int, "response": str}. Ids of another evaluation type
    are counted (`other_type_answers`) and not scored; ids not in annotations.json are unknown."""
    samples = load_samples(options)
    by_id = {s.id: s for s in samples}
    known = len(load_data(options.data).annotations)
    rows = read_json(path)
    if not isinstance(rows, list):
        raise TaskError(f"{path}: expected a JSON list of {{\"id\": int, \"response\": str}} (AMBER's inference format)")
    match = AnswerMatch()
    other: list[str] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "id" not in row or "response" not in row:
            raise TaskError(f"{path}: entry {i} must be an object with 'id' and 'response', got {str(row)[:120]}")
        key = str(row["id"])
        if key in by_id:
            match.offer(key, row["response"])
        elif isinstance(row["id"], int) and 1 <= row["id"] <= known:
            other.append(key)
        else:
            match.unknown.append(key)
    match.set_apart("other_type", other, f"are for questions outside amber.evaluation_type={options.evaluation_type}")
    return samples, match.finish(samples)


@task("amber")
def amber() -> TaskSpec:
    return TaskSpec(
        name="amber",
        version="1",
        description="AMBER generative (CHAIR, Cover, Hal, Cog) and discriminative (existence, attribute, relation) halves, official inference.py scoring",
        data_source="github:junyangwang0410/AMBER data/ (pinned); images AMBER_*.jpg",
        loader=load_samples,
        score_sample=score_sample,
        score_batch=score_batch,
        measure=MEASURE,
        parsers=PARSERS,
        default_parser="amber-official",
        generation=GenerationConfig(max_new_tokens=512),
        headline=("amber_score", "chair", "f1"),
        options=AmberOptions,
        read_answers=read_answers,
        capabilities=Capabilities(failure_pair=right_answer, display=_display, vlmevalkit=VLMEVALKIT, lmms_eval=LMMS_EVAL),
    )


def _display(parsed: Any) -> str:
    if isinstance(parsed, dict):
        return "hallucinated: " + (", ".join(parsed.get("hallucinated") or []) or "none")
    return str(parsed)
