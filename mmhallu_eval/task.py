"""The contract a benchmark plugin fulfils: a `TaskSpec` (loader, prompt, named versioned parsers, and the metric
declaration its numbers derive from)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import TaskError
from .measure import Measure
from .types import GenerationConfig, Request, Sample, user_message

__all__ = ["Loader", "Parser", "Scorer", "TaskError", "TaskSpec", "single_image_request"]


@dataclass(frozen=True)
class Parser:
    """A named, versioned map from model text to a label; the name is written into every result."""

    name: str
    version: str
    fn: Callable[[str], Any]
    description: str = ""

    def __call__(self, text: str) -> Any:
        return self.fn(text)


#: Loader signature: task options (strings from the CLI, e.g. data=..., images=...) → samples.
Loader = Callable[[dict[str, str]], list[Sample]]
#: Scorer signature: (sample, response text, parser) → JSON-able record fields.
Scorer = Callable[[Sample, str, Parser], dict[str, Any]]


def single_image_request(sample: Sample, generation: GenerationConfig) -> Request:
    """Default prompt builder: one user turn with the sample's images then its prompt text."""
    return Request(
        id=sample.id,
        messages=user_message(sample.prompt, n_images=len(sample.images)),
        images=list(sample.images),
        generation=generation,
    )


@dataclass
class TaskSpec:
    """Everything the runner needs to evaluate one benchmark.

    `options` documents the task options a user can pass (`--task-arg NAME.KEY=VALUE`).
    The metrics see only records without errors; the runner counts errors separately.
    """

    name: str
    version: str
    description: str
    data_source: str
    load: Loader
    score_sample: Scorer
    #: the metric declaration: result.json, bootstrap intervals and the paired comparison all derive from it
    measure: Measure
    parsers: dict[str, Parser]
    default_parser: str
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    build_request: Callable[[Sample, GenerationConfig], Request] = single_image_request
    options: dict[str, str] = field(default_factory=dict)
    #: Metrics shown first (leaderboard columns, charts), in order.
    headline: tuple[str, ...] = ()
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
