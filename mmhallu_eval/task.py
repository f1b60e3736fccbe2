"""The contract a benchmark plugin fulfils: a `TaskSpec` plus named, versioned parsers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .types import GenerationConfig, Request, Sample, user_message


class TaskError(Exception):
    """Bad task input (data file, option, answers). The message says what and where."""


@dataclass(frozen=True)
class Parser:
    """A named, versioned map from model text to a label; the name is written into every result."""

    name: str
    version: str
    fn: Callable[[str], Any]
    description: str = ""

    def __call__(self, text: str) -> Any:
        return self.fn(text)


@dataclass
class Aggregate:
    """What a task's aggregator returns; the runner adds the bookkeeping fields of result.json."""

    metrics: dict[str, Any]
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    ci: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


#: Loader signature: task options (strings from the CLI, e.g. data=..., images=...) → samples.
Loader = Callable[[dict[str, str]], list[Sample]]
#: Scorer signature: (sample, response text, parser) → JSON-able record fields.
Scorer = Callable[[Sample, str, Parser], dict[str, Any]]
#: Aggregator signature: (records of the successfully answered samples) → Aggregate.
Aggregator = Callable[[list[dict[str, Any]]], Aggregate]


def single_image_request(sample: Sample, generation: GenerationConfig) -> Request:
    """Default prompt builder: one user turn with the sample's images then its prompt text."""
    return Request(
        id=sample.id,
        messages=user_message(sample.prompt, n_images=len(sample.images)),
        images=list(sample.images),
        generation=generation,
    )


@dataclass
class CompareSpec:
    """How to compare two runs of a task on the same samples (paired statistics).

    `unit` names the resampling unit of a record (sample, MME image, FINER pair, caption);
    `stats` turns the records of one unit into a vector of additive sufficient statistics;
    `metrics` computes the task's metrics from those sums per group ({group: sums}) — one group
    for a per-group value, all groups for the pooled value (so MME can sum subtask scores).
    `directions`: metric → True (higher is better), False (lower is better) or None (no direction).
    `accuracy_metric`: the metric that is the mean of the per-sample `correct` field (McNemar applies).
    """

    unit: Callable[[dict[str, Any]], Any]
    stats: Callable[[list[dict[str, Any]]], Any]
    metrics: Callable[[dict[str, Any]], dict[str, float | None]]
    directions: dict[str, bool | None]
    accuracy_metric: str | None = None


@dataclass
class TaskSpec:
    """Everything the runner needs to evaluate one benchmark.

    `options` documents the task options a user can pass (`--task-arg NAME.KEY=VALUE`).
    `aggregate` sees only records without errors; the runner counts errors separately.
    """

    name: str
    version: str
    description: str
    data_source: str
    load: Loader
    score_sample: Scorer
    aggregate: Aggregator
    parsers: dict[str, Parser]
    default_parser: str
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    build_request: Callable[[Sample, GenerationConfig], Request] = single_image_request
    options: dict[str, str] = field(default_factory=dict)
    #: Metrics shown first (leaderboard columns, charts), in order.
    headline: tuple[str, ...] = ()
    #: Paired comparison of two runs (`mmhallu compare`); None → the task is listed but not tested.
    compare: CompareSpec | None = None
    #: The task's object categories mentioned in a text (CHAIR's normalisation), for caption-cleaning pair builders.
    text_objects: Callable[[str, dict[str, Any]], list[str]] | None = None
    #: Optional batch scorer (same output as `score_sample` per sample) for tasks whose scoring is heavy
    #: enough to batch, e.g. CHAIR's NLP pipeline or MMHal's LLM judge:
    #: (samples, texts, parser, task options) → one dict per sample.
    score_batch: Callable[[list[Sample], list[str], Parser, dict[str, str]], list[dict[str, Any]]] | None = None
    #: Reads a saved-answers file whose rows carry the questions too (MME result lists, FINER rows):
    #: (path, options) → (samples, {sample id: answer text}, problems). None → match against `load`.
    read_answers: Callable[[Any, dict[str, str]], tuple[list[Sample], dict[str, str], list[str]]] | None = None
    #: Samples that must stay together under `--limit` (e.g. the two questions of an MME image).
    limit_unit: Callable[[Sample], Any] | None = None
    #: Optional hook run after the records are written, e.g. to export an official-format file.
    export: Callable[[list[dict[str, Any]], Any], None] | None = None

    def parser(self, name: str | None) -> Parser:
        """Resolve a parser name (None → the task default) or fail with the valid choices."""
        name = name or self.default_parser
        if name not in self.parsers:
            raise TaskError(
                f"task {self.name!r} has no parser {name!r}; choose one of: {', '.join(sorted(self.parsers))}"
            )
        return self.parsers[name]
