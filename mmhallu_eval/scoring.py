"""Turning responses into records and records into result.json; shared by `run` and `score`."""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator, Mapping
from typing import Any, Iterable

import numpy as np

from .files import iter_jsonl
from .measure import EXTRA_HEAD, UnitAccumulator, summarize_table
from .paired import group_units
from .redact import redact
from .reasoning import BLOCKS, UNFINISHED, Reasoning, split_reasoning
from .task import Parser, TaskError, TaskSpec
from .types import Record, Response, Sample

SCHEMA_VERSION = 1


def image_names(sample: Sample) -> list[str]:
    return [str(im) if isinstance(im, (str, Path)) else f"<embedded {im.size[0]}x{im.size[1]}>" for im in sample.images]


def file_names(names: Iterable[str]) -> list[str]:
    """Image names without their folders: what stays the same when the same data sits elsewhere (another machine,
    another mount), for telling whether two runs evaluated the same questions."""
    return [os.path.basename(str(name)) for name in names]


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


def check_units(spec: TaskSpec, samples: Iterable[Sample]) -> None:
    """Every unit of several questions (an MME image's two, a FINER pair, a HallusionBench set) whole and well formed
    in the data, checked before any generation: a file with a pair's row missing or doubled is named now, not after
    the model has answered everything."""
    measure = spec.measure
    if measure.unit_size == 1 or (measure.unit_size is None and measure.check_unit is None):
        return
    group_units((_base_record(s, Response(id=s.id)) for s in samples), measure.unit, measure.unit_size, measure.describe_unit, measure.check_unit)


def make_records(
    spec: TaskSpec, parser: Parser, samples: list[Sample], responses: Mapping[str, Response], options: Any = None,
    reasoning: Reasoning = "strip", opens_reasoning: bool = False,
) -> list[Record]:
    """samples.jsonl lines, in sample order. Failed generations keep their error and get no score. With
    `reasoning="strip"` the parser reads the answer after the reasoning block (the raw response stays); a reasoning
    block that never closes is an `unfinished_reasoning` error, not a score."""
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
            record["error"] = f"{UNFINISHED}: the reasoning block never closes (no {' or '.join(close for _, close in BLOCKS)}), so there is no answer to parse"
        else:
            answers[i] = split.answer
    ok = [(samples[i], records[i], text) for i, text in answers.items()]
    if spec.score_batch is not None:
        scores = spec.score_batch([s for s, _, _ in ok], [t for _, _, t in ok], parser, options or {})
    else:
        scores = [spec.score_sample(s, t, parser) for s, _, t in ok]
    check_scores(spec, [s for s, _, _ in ok], scores)
    for (_, record, _), score in zip(ok, scores):
        record.update(score)
        if "judge" in record:  # a judge's description names its server: never its credentials
            record["judge"] = redact(record["judge"])
    return records


#: the record fields the core fills from the sample and its response (and the reasoning split); a score may not set them
CORE_FIELDS = frozenset(_base_record(Sample(id="", prompt=""), Response(id=""))) - {"parsed", "correct", "error"} | {"answer", "reasoning"}


def check_scores(spec: TaskSpec, samples: list[Sample], scores: Any) -> None:
    """A task's scores, one per answer (`score_sample` or `score_batch`), checked before they join the records: a dict
    each, none of the core's fields, `correct` True, False or None and `error` text or None. A scorer that breaks this
    is named with the sample here; before, a number id or a text `correct` ("yes" counted as correct) was written into
    records that the run's own report refused."""
    if not isinstance(scores, list) or len(scores) != len(samples):
        got = f"{len(scores)} scores" if isinstance(scores, list) else type(scores).__name__
        raise TaskError(f"task {spec.name!r}: its scorer returned {got} for {len(samples)} answers (a fault in the task's code)")
    for sample, score in zip(samples, scores):
        if not isinstance(score, dict):
            problem = f"is a {type(score).__name__}, not a dict of record fields"
        elif taken := CORE_FIELDS & score.keys():
            problem = f"sets {', '.join(sorted(taken))}, which the record keeps for the sample and its response"
        elif not _is_verdict(score.get("correct")):
            problem = f"has \"correct\" {score['correct']!r}; it must be True, False or None"
        elif not (score.get("error") is None or isinstance(score["error"], str)):
            problem = f"has \"error\" {score['error']!r}; it must be text or None"
        else:
            continue
        raise TaskError(f"task {spec.name!r}: the score of sample {sample.id!r} {problem} (a fault in the task's code)")


def _is_verdict(value: Any) -> bool:
    """None, a bool, or a numpy bool (written as true/false)."""
    return value is None or isinstance(value, (bool, np.bool_))


def all_failed(results: dict[str, dict[str, Any]]) -> list[str]:
    """One line per task that scored nothing although it had samples: the run produced no number for it."""
    lines = []
    for name, result in results.items():
        if result["n"] and not result["n_scored"]:
            errors = result["errors"]
            kinds = ", ".join(f"{k} {v}" for k, v in errors.items() if k not in ("total", "first_ids", "first_message"))
            lines.append(f"task {name}: all {result['n']} samples failed ({kinds}); first: {errors.get('first_message', '?')}")
    return lines


def error_kind(message: str) -> str:
    return message.split(":", 1)[0].strip().replace(" ", "_") if message else "error"


class ResultBuilder:
    """result.json built as records stream past (to samples.jsonl): unit statistics and error counts only, so
    scoring a million answers keeps no million records in memory."""

    def __init__(self, spec: TaskSpec):
        self.spec = spec
        self.units = UnitAccumulator(spec.measure)
        self.n = 0
        self.errors: Counter[str] = Counter()
        self.failed_ids: list[str] = []
        self.first_message: str | None = None
        self.head: list[Record] = []

    def add(self, record: Record) -> None:
        self.n += 1
        if record.get("error") is not None:
            self.errors[error_kind(record["error"])] += 1
            if len(self.failed_ids) < 10:
                self.failed_ids.append(record["id"])
            if self.first_message is None:
                self.first_message = f"{record['id']}: {record['error'][:300]}"
            self.units.fail(record)
            return
        self.units.add(record)
        if len(self.head) < EXTRA_HEAD:
            self.head.append(record)

    def unanswered(self, samples: Iterable[Sample]) -> None:
        """Samples the answers file lacks (`score --allow-missing`): no record, and their units are left out whole."""
        for s in samples:
            self.units.fail(_base_record(s, Response(id=s.id)))

    def result(self, parser: Parser, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        agg = summarize_table(self.spec.measure, self.units.table(), self.head)
        failed = sum(self.errors.values())
        errors: dict[str, Any] = {"total": failed, **self.errors}
        if failed:
            errors["first_ids"] = self.failed_ids
            errors["first_message"] = self.first_message
        if self.units.cut:
            extra = {**(extra or {}), "units_left_out": {
                "units": len(self.units.cut), "answered": self.units.left_out,
                "why": "a question of each of these units failed or has no answer, so the unit's answered questions are left out with it"}}
        return redact({
            "schema_version": SCHEMA_VERSION,
            "task": self.spec.name,
            "task_version": self.spec.version,
            "parser": parser.name,
            "parser_version": parser.version,
            "n": self.n,
            "n_scored": self.n - failed,
            "metrics": agg.metrics,
            "groups": agg.groups,
            "ci": agg.ci,
            "errors": errors,
            **agg.extra,
            **(extra or {}),
        })


def build_result(spec: TaskSpec, parser: Parser, records: Iterable[Record], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """result.json (schema_version 1): metrics over the answered samples, errors counted by kind."""
    builder = ResultBuilder(spec)
    for r in records:
        builder.add(r)
    return builder.result(parser, extra)


class RecordStream:
    """`make_records` in sample order, each as soon as its sample and every one before it has a response: `run` scores
    and writes the answers finished so far while the engine works on the rest. Records are made in chunks of at most
    `chunk` samples; a task with a batch scorer (CHAIR's, a judge's) gets the same chunks as if every response were
    there at once (whole `chunk`s from the start, the remainder last), the others record by record."""

    def __init__(self, spec: TaskSpec, parser: Parser, samples: list[Sample], options: Any = None, reasoning: Reasoning = "strip",
                 opens_reasoning: bool = False, chunk: int = 4096):
        self.spec, self.parser, self.samples, self.options = spec, parser, samples, options
        self.reasoning, self.opens_reasoning, self.chunk = reasoning, opens_reasoning, chunk
        self.done = 0

    def ready(self, responses: Mapping[str, Response]) -> Iterator[Record]:
        """The records that `responses` completes since the last call (none where a sample before them is unanswered)."""
        end = self.done
        while end < len(self.samples) and self.samples[end].id in responses:
            end += 1
        if self.spec.score_batch is not None:
            end = self.done + (end - self.done) // self.chunk * self.chunk
        return self._upto(end, responses)

    def rest(self, responses: Mapping[str, Response]) -> Iterator[Record]:
        """Every record not yet made (`responses` has one for every sample)."""
        return self._upto(len(self.samples), responses)

    def _upto(self, end: int, responses: Mapping[str, Response]) -> Iterator[Record]:
        while self.done < end:
            start, self.done = self.done, min(self.done + self.chunk, end)
            yield from make_records(self.spec, self.parser, self.samples[start:self.done], responses, self.options, self.reasoning,
                                    self.opens_reasoning)


def iter_records(
    spec: TaskSpec, parser: Parser, samples: list[Sample], responses: Mapping[str, Response], options: Any = None,
    reasoning: Reasoning = "strip", opens_reasoning: bool = False, chunk: int = 4096,
) -> Iterator[Record]:
    """`make_records` in chunks, for writing and summarising as they come."""
    return RecordStream(spec, parser, samples, options, reasoning, opens_reasoning, chunk).rest(responses)


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
    #: answers the task leaves out on purpose, by reason (e.g. RePOPE's removed questions): counted and listed,
    #: not scored and not a mismatch
    set_aside: dict[str, list[str]] = field(default_factory=dict)
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

    def unanswered(self, samples: Iterable[Sample]) -> list[Sample]:
        """The samples the file was to answer and did not: missing, or answered with something that is not text (not
        the questions a peer's dataset leaves out, nor those set aside on purpose)."""
        missing = set(self.missing)
        aside = {i for ids in self.set_aside.values() for i in ids}
        return [s for s in samples if s.id in missing or (s.id in self._seen and s.id not in self.texts and s.id not in aside)]

    def problems(self) -> list[str]:
        out = []
        for label, ids in (("missing answers", self.missing), ("duplicate answer ids", self.duplicates), ("answer ids not in the data", self.unknown),
                           ("answers that are not text", self.invalid)):
            if ids:
                out.append(f"{len(ids)} {label} (first: {', '.join(map(str, ids[:5]))})")
        return out

    def set_apart(self, reason: str, keys: list[str], why: str) -> None:
        """Leave answers out for `reason` (`why`: what that means), with a note naming how many and the first ids."""
        if keys:
            self.set_aside.setdefault(reason, []).extend(keys)
            self.notes.append(f"{len(keys)} answers {why} (first: {', '.join(keys[:5])}): counted as {reason}_answers, not scored")

    def counts(self) -> dict[str, int]:
        return {"missing_answers": len(self.missing), "unknown_answers": len(self.unknown), "duplicate_answers": len(self.duplicates),
                "invalid_answers": len(self.invalid), **{f"{reason}_answers": len(ids) for reason, ids in self.set_aside.items()}}


def iter_answer_rows(answers: Path | str, text_field: str = "text") -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, key, row) of each JSONL answer: the key is its `question_id`, else its `id`, as text. A row
    without a key or without `text_field` is an error naming the file and line."""
    for lineno, row in iter_jsonl(answers):
        key = row.get("question_id", row.get("id"))
        if key is None:
            raise TaskError(f"{answers}:{lineno}: no 'question_id' or 'id' field")
        if text_field not in row:
            raise TaskError(f"{answers}:{lineno}: no {text_field!r} field with the model's answer")
        yield lineno, str(key), row


def match_answers(samples: list[Sample], answers: Path | str, text_field: str = "text") -> AnswerMatch:
    """Match JSONL answers (`question_id` or `id`, plus `text`) to samples.

    A row matches a sample by its namespaced id, or by the source question_id when that is unique.
    """
    by_id = {s.id: s for s in samples}
    qid_counts = Counter(str(s.metadata.get("question_id")) for s in samples)
    by_qid = {str(s.metadata.get("question_id")): s for s in samples if qid_counts[str(s.metadata.get("question_id"))] == 1}
    match = AnswerMatch()
    for lineno, key, row in iter_answer_rows(answers, text_field):
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


class _Texts(Mapping[str, Response]):
    """Saved answer texts seen as responses, made on demand (no second object per answer)."""

    def __init__(self, texts: dict[str, str]):
        self.texts = texts

    def __getitem__(self, key: str) -> Response:
        return Response(id=key, text=self.texts[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self.texts)

    def __len__(self) -> int:
        return len(self.texts)


def iter_scored_texts(
    spec: TaskSpec, parser: Parser, samples: Iterable[Sample], texts: dict[str, str], options: Any = None, reasoning: Reasoning = "strip",
) -> Iterator[Record]:
    """Records for samples that have a text, in chunks; samples without one are left out (reported by the caller)."""
    answered = [s for s in samples if s.id in texts]
    return iter_records(spec, parser, answered, _Texts(texts), options, reasoning)


def score_texts(
    spec: TaskSpec, parser: Parser, samples: Iterable[Sample], texts: dict[str, str], options: Any = None, reasoning: Reasoning = "strip",
) -> list[Record]:
    return list(iter_scored_texts(spec, parser, samples, texts, options, reasoning))
