"""Turning responses into records and records into result.json; shared by `run` and `score`."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .files import iter_jsonl
from .measure import summarize
from .redact import redact
from .reasoning import UNFINISHED, Reasoning, split_reasoning
from .task import Parser, TaskError, TaskSpec
from .types import Record, Response, Sample

SCHEMA_VERSION = 1


def image_names(sample: Sample) -> list[str]:
    return [str(im) if isinstance(im, (str, Path)) else f"<embedded {im.size[0]}x{im.size[1]}>" for im in sample.images]


def _base_record(sample: Sample, response: Response) -> Record:
    return {
        "id": sample.id,
        "group": sample.group,
        "prompt": sample.prompt,
        "images": image_names(sample),
        "response": response.text,
        "n_prompt_tokens": response.n_prompt_tokens,
        "n_output_tokens": response.n_output_tokens,
        "target": sample.target,
        "parsed": None,
        "correct": None,
        "error": response.error,
        "metadata": sample.metadata,
    }


def make_records(
    spec: TaskSpec, parser: Parser, samples: list[Sample], responses: dict[str, Response], options: dict[str, str] | None = None,
    reasoning: Reasoning = "strip", opens_reasoning: bool = False,
) -> list[dict[str, Any]]:
    """samples.jsonl lines, in sample order. Failed generations keep their error and get no score. With
    `reasoning="strip"` the parser reads the answer after `</think>` (the raw response stays); a reasoning block that
    never closes is an `unfinished_reasoning` error, not a score."""
    records = [_base_record(s, responses[s.id]) for s in samples]
    answers: dict[int, str] = {}
    for i, record in enumerate(records):
        if record["error"] is not None:
            continue
        if reasoning == "keep":
            answers[i] = record["response"]
            continue
        split = split_reasoning(record["response"], opens_reasoning)
        if split.reasoning is not None:
            record.update(answer=split.answer, reasoning=split.reasoning)
        if split.unfinished:
            record["error"] = f"{UNFINISHED}: the reasoning block never closes (no </think>), so there is no answer to parse"
        else:
            answers[i] = split.answer
    ok = [(samples[i], records[i], text) for i, text in answers.items()]
    if spec.score_batch is not None:
        scores = spec.score_batch([s for s, _, _ in ok], [t for _, _, t in ok], parser, options or {})
    else:
        scores = [spec.score_sample(s, t, parser) for s, _, t in ok]
    for (_, record, _), score in zip(ok, scores):
        record.update(score)
        if "judge" in record:  # a judge's description names its server: never its credentials
            record["judge"] = redact(record["judge"])
    return records


def error_kind(message: str) -> str:
    return message.split(":", 1)[0].strip().replace(" ", "_") if message else "error"


def build_result(spec: TaskSpec, parser: Parser, records: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """result.json (schema_version 1): metrics over the answered samples, errors counted by kind."""
    ok = [r for r in records if r.get("error") is None]
    failed = [r for r in records if r.get("error") is not None]
    agg = summarize(spec.measure, ok)
    errors: dict[str, Any] = {"total": len(failed)}
    errors.update(Counter(error_kind(r["error"]) for r in failed))
    if failed:
        errors["first_ids"] = [r["id"] for r in failed[:10]]
        errors["first_message"] = f"{failed[0]['id']}: {failed[0]['error'][:300]}"
    return redact({
        "schema_version": SCHEMA_VERSION,
        "task": spec.name,
        "task_version": spec.version,
        "parser": parser.name,
        "parser_version": parser.version,
        "n": len(records),
        "n_scored": len(ok),
        "metrics": agg.metrics,
        "groups": agg.groups,
        "ci": agg.ci,
        "errors": errors,
        **agg.extra,
        **(extra or {}),
    })


@dataclass
class AnswerMatch:
    """Answers of a saved file matched to samples, with what did not match: every reader of saved answers reports
    missing, duplicate, unknown and invalid (not text) answers the same way, and `mmhallu score` refuses them unless
    --allow-missing."""

    texts: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    #: what the reader wants the user to know that does not stop scoring (e.g. MME subtask files absent)
    notes: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set, repr=False)

    def offer(self, sample_id: str, value: Any, key: str | None = None) -> bool:
        """One answer for `sample_id` (`key`: how the file names it). A second one is a duplicate, a value that is not
        text an invalid answer; True when the answer was taken."""
        key = sample_id if key is None else key
        if sample_id in self._seen:
            self.duplicates.append(key)
            return False
        self._seen.add(sample_id)
        if not isinstance(value, str):
            self.invalid.append(f"{key} ({type(value).__name__})")
            return False
        self.texts[sample_id] = value
        return True

    def finish(self, samples: Iterable[Sample]) -> "AnswerMatch":
        self.missing = [s.id for s in samples if s.id not in self._seen]
        return self

    def problems(self) -> list[str]:
        out = []
        for label, ids in (("missing answers", self.missing), ("duplicate answer ids", self.duplicates), ("answer ids not in the data", self.unknown),
                           ("answers that are not text", self.invalid)):
            if ids:
                out.append(f"{len(ids)} {label} (first: {', '.join(map(str, ids[:5]))})")
        return out

    def counts(self) -> dict[str, int]:
        return {"missing_answers": len(self.missing), "unknown_answers": len(self.unknown), "duplicate_answers": len(self.duplicates),
                "invalid_answers": len(self.invalid)}


def match_answers(samples: list[Sample], answers: Path | str, text_field: str = "text") -> AnswerMatch:
    """Match JSONL answers (`question_id` or `id`, plus `text`) to samples.

    A row matches a sample by its namespaced id, or by the source question_id when that is unique.
    """
    by_id = {s.id: s for s in samples}
    qid_counts = Counter(str(s.metadata.get("question_id")) for s in samples)
    by_qid = {str(s.metadata.get("question_id")): s for s in samples if qid_counts[str(s.metadata.get("question_id"))] == 1}
    match = AnswerMatch()
    for lineno, row in iter_jsonl(answers):
        key = row.get("question_id", row.get("id"))
        if key is None:
            raise TaskError(f"{answers}:{lineno}: no 'question_id' or 'id' field")
        if text_field not in row:
            raise TaskError(f"{answers}:{lineno}: no {text_field!r} field with the model's answer")
        key = str(key)
        sample = by_id.get(key) or by_qid.get(key)
        if sample is None:
            if qid_counts.get(key, 0) > 1:
                raise TaskError(
                    f"{answers}:{lineno}: question_id {key} is ambiguous across splits; use namespaced ids like "
                    f"'{next(s.id for s in samples if str(s.metadata.get('question_id')) == key)}' or score one split at a time"
                )
            match.unknown.append(key)
            continue
        match.offer(sample.id, row[text_field], key)
    return match.finish(samples)


def score_texts(
    spec: TaskSpec, parser: Parser, samples: Iterable[Sample], texts: dict[str, str], options: dict[str, str] | None = None,
    reasoning: Reasoning = "strip",
) -> list[dict[str, Any]]:
    """Records for samples that have a text; samples without one are left out (reported by the caller)."""
    answered = [s for s in samples if s.id in texts]
    return make_records(spec, parser, answered, {s.id: Response(id=s.id, text=texts[s.id]) for s in answered}, options, reasoning)
