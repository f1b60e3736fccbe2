"""The contract a benchmark plugin fulfils: a `TaskSpec` (loader, prompt, named versioned parsers, and the metric
declaration its numbers derive from)."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any, Callable

from .errors import TaskError
from .measure import Measure
from .options import TaskOptions, check_option_types, parse
from .types import GenerationConfig, Request, Sample, user_message

__all__ = ["Capabilities", "Loader", "LmmsEvalTask", "MixProbe", "PeerMetric", "Parser", "Scorer", "TaskError", "TaskOptions", "TaskSpec", "VlmevalkitDataset", "single_image_request"]


@dataclass(frozen=True)
class Parser:
    """A named, versioned map from model text to a label; the name is written into every result."""

    name: str
    version: str
    fn: Callable[[str], Any]
    description: str = ""

    def __call__(self, text: str) -> Any:
        return self.fn(text)


#: Loader signature: the task's typed options (its `options` dataclass) → samples.
Loader = Callable[[Any], list[Sample]]
#: Scorer signature: (sample, response text, parser) → JSON-able record fields.
Scorer = Callable[[Sample, str, Parser], dict[str, Any]]
Record = dict[str, Any]


def check_samples(task: str, samples: Any, source: str) -> list[Sample]:
    """What a task's loader or answers reader hands the core, checked once: a list of `Sample`s, each with a text id
    of its own, a text prompt, a list of images (file paths or PIL images), a text group or none, and its metadata as
    a dict. A task whose code breaks this is named here with the sample, rather than met as a crash inside the run or
    as records the run's own report refuses."""
    from PIL import Image

    if not isinstance(samples, list):
        raise TaskError(f"task {task!r}: its {source} returned {type(samples).__name__}, not a list of Sample (a fault in the task's code)")
    seen: set[str] = set()
    for i, s in enumerate(samples):
        problem = ("is a " + type(s).__name__ + ", not a Sample" if not isinstance(s, Sample)
                   else "has an id that is not text" if not isinstance(s.id, str) or not s.id
                   else "has a prompt that is not text" if not isinstance(s.prompt, str)
                   else "has images that are not a list of file paths or PIL images"
                   if not isinstance(s.images, list) or not all(isinstance(im, (str, Path, Image.Image)) for im in s.images)
                   else "has a group that is neither text nor None" if s.group is not None and not isinstance(s.group, str)
                   else "has metadata that is not a dict" if not isinstance(s.metadata, dict) else None)
        if problem:
            shown = repr(s.id) if isinstance(s, Sample) else repr(s)[:80]
            raise TaskError(f"task {task!r}: item {i} of its {source} ({shown}) {problem} (a fault in the task's code)")
        if s.id in seen:
            raise TaskError(f"task {task!r}: sample id {s.id!r} occurs more than once in the data (every sample is scored "
                            "once under its id): remove the repeated entry or give it an id of its own")
        seen.add(s.id)
    return samples


@dataclass(frozen=True)
class MixProbe:
    """A slice of this task's result that says how often the model fails one pair type (the adaptive pair mix):
    `metric` of `group` (None: pooled) is an accuracy; with `baseline` the gap `baseline − group` adds to the error."""

    pair_type: str
    group: str | None
    metric: str
    baseline: str | None = None


@dataclass(frozen=True)
class LmmsEvalTask:
    """How one lmms-eval task's log maps onto a task here (declared by the task, in its capabilities). Lines join the
    samples by `doc_id` (the document's row in lmms-eval's dataset, in the order of this task's loader), or, where that
    dataset's order is its own, by a key both sides name (`key` and `line_key`)."""

    name: str
    #: the samples its documents are, in dataset order: those of this group (None: all samples, in loader order)
    group: str | None
    #: lmms-eval metric name → the metric here with the same meaning (a name in the group's or the whole result's
    #: metrics, or a place in result.json)
    metrics: Mapping[str, "str | PeerMetric"] = field(default_factory=dict)
    #: a line against the sample it lands on: an error text when they are not the same question, else None
    check: Callable[[Sample, dict[str, Any]], str | None] | None = None
    #: lmms-eval's own parsed label in a line (compared with this harness's parser)
    label: Callable[[dict[str, Any]], Any] | None = None
    #: join by key instead of doc_id: a sample's key and a line's (a line's raises TaskError naming what it lacks)
    key: Callable[[Sample], Hashable] | None = None
    line_key: Callable[[dict[str, Any]], Hashable] | None = None
    #: the samples lmms-eval's dataset holds (None: all) and, when some are left out, why
    covers: Callable[[Sample], bool] | None = None
    covers_note: str = ""
    #: a task whose questions are the log's own (CHAIR: the images captioned, ground truth from the task's options):
    #: ([(where, line)] with `filtered_resps` the answer text, typed options) → (samples, their answers)
    from_lines: Callable[[list[tuple[str, dict[str, Any]]], Any], tuple[list[Sample], Any]] | None = None

    def peer_metrics(self) -> dict[str, "PeerMetric"]:
        """`metrics` as places in result.json: the group's metric, or the whole result's."""
        where = ("groups", self.group) if self.group else ("metrics",)
        return {peer: mine if isinstance(mine, PeerMetric) else PeerMetric((*where, mine)) for peer, mine in self.metrics.items()}


@dataclass(frozen=True)
class PeerMetric:
    """Where a peer tool's reported number sits in this harness's result.json, and the factor from its scale to ours."""

    path: tuple[str, ...]
    scale: float = 1.0


@dataclass(frozen=True)
class VlmevalkitDataset:
    """How one VLMEvalKit dataset's prediction file maps onto a task here (declared by the task, in its capabilities)."""

    #: VLMEvalKit's dataset name, the tail of its file names ({model}_{name}.xlsx)
    name: str
    #: a sample's join key
    key: Callable[[Sample], Hashable]
    #: a row's join keys, one per question it answers (a POPE row answers every split its category lists); raises
    #: TaskError naming what the row lacks
    row_keys: Callable[[dict[str, str]], list[Hashable]]
    #: columns the rows must have besides index and prediction
    columns: tuple[str, ...] = ()
    #: VLMEvalKit's extracted Yes/No/Unknown → this task's parsed value (None: the two are not comparable)
    label: Callable[[str], Any] | None = None
    #: the samples VLMEvalKit's dataset holds (None: all) and, when some are left out, why
    covers: Callable[[Sample], bool] | None = None
    covers_note: str = ""
    #: VLMEvalKit's score-file cells ("row/column" for tables with a split column, else "column") → ours
    metrics: Mapping[str, PeerMetric] = field(default_factory=dict)
    #: for a dataset whose rows state everything its scoring needs (POPE: label and split): a file with none of
    #: `join_columns` is scored on its own questions, a row → its samples (raises TaskError naming what is wrong)
    join_columns: tuple[str, ...] = ()
    from_rows: Callable[[dict[str, str]], list[Sample]] | None = None


@dataclass(frozen=True)
class Capabilities:
    """What the loop and the reports may ask of a task, declared by the task instead of looked up by its name."""

    #: the object categories a text mentions, given a record's metadata (CHAIR's normaliser): judges sampled
    #: captions and cleans hallucinated sentences
    mentions: Callable[[str, dict[str, Any]], list[str]] | None = None
    #: a failed record → (chosen, rejected, provenance) for a preference pair on its image, or None (HA-DPO)
    failure_pair: Callable[[Record, dict[str, Any]], tuple[str, str, dict[str, Any]] | None] | None = None
    #: slices of the result that steer the adaptive pair mix
    mix_probes: tuple[MixProbe, ...] = ()
    #: a record's parsed value as one line for the report pages (default: its JSON)
    display: Callable[[Any], str] | None = None
    #: answers are rated by a judge: `mmhallu run --judge-*` options go to this task
    judged: bool = False
    #: the lmms-eval tasks whose `--log_samples` files `mmhallu score --format lmms-eval` reads as this task's answers
    lmms_eval: tuple[LmmsEvalTask, ...] = ()
    #: the VLMEvalKit datasets whose prediction files `mmhallu score --format vlmevalkit` reads as this task's answers
    vlmevalkit: tuple[VlmevalkitDataset, ...] = ()
    #: groups whose headline metrics get their own rows on the compare scorecard (POPE's splits)
    scorecard_groups: tuple[str, ...] = ()


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

    A plugin is its loader, prompt builder, parsers, options dataclass and metric declaration; the core derives the
    rest. The metrics see only records without errors; the runner counts errors separately.
    """

    name: str
    version: str
    description: str
    data_source: str
    loader: Loader
    score_sample: Scorer
    #: the metric declaration: result.json, bootstrap intervals and the paired comparison all derive from it
    measure: Measure
    parsers: dict[str, Parser]
    default_parser: str
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    build_request: Callable[[Sample, GenerationConfig], Request] = single_image_request
    #: the options dataclass (derived from TaskOptions): types, defaults and help of `--task-arg NAME.KEY=VALUE`
    options: type = TaskOptions
    #: Metrics shown first (leaderboard columns, charts), in order.
    headline: tuple[str, ...] = ()
    capabilities: Capabilities = field(default_factory=Capabilities)
    #: Optional batch scorer (same output as `score_sample` per sample) for tasks whose scoring is heavy
    #: enough to batch, e.g. CHAIR's NLP pipeline or MMHal's LLM judge:
    #: (samples, texts, parser, task options) → one dict per sample.
    score_batch: Callable[[list[Sample], list[str], Parser, Any], list[dict[str, Any]]] | None = None
    #: Reads a saved-answers file whose rows carry the questions too (MME result lists, FINER rows):
    #: (path, options) → (samples, AnswerMatch of their answers). None → match against `load`.
    read_answers: Callable[[Any, Any], tuple[list[Sample], Any]] | None = None
    #: Samples that must stay together under `--limit` (e.g. the two questions of an MME image).
    limit_unit: Callable[[Sample], Any] | None = None
    #: Optional hook run after the records are written, e.g. to export an official-format file.
    export: Callable[[list[dict[str, Any]], Any], None] | None = None

    def __post_init__(self) -> None:
        """The declaration checked when the task is made, so that a fault in it is named before any model loads:
        the default parser is one of the parsers, the accuracy metric one of the metrics, and every metric's formula
        reads only declared statistics."""
        check_option_types(self.options, f"task {self.name!r}")
        if self.default_parser not in self.parsers:
            raise TaskError(f"task {self.name!r}: default_parser {self.default_parser!r} is not one of its parsers ({', '.join(sorted(self.parsers))})")
        names = [m.name for m in self.measure.metrics]
        if len(set(names)) < len(names):
            raise TaskError(f"task {self.name!r}: its Measure names a metric twice ({', '.join(sorted({n for n in names if names.count(n) > 1}))})")
        if self.measure.accuracy_metric is not None and self.measure.accuracy_metric not in names:
            raise TaskError(f"task {self.name!r}: accuracy_metric {self.measure.accuracy_metric!r} is not one of its metrics ({', '.join(names)})")
        zeros = dict.fromkeys(self.measure.stats, 0.0)
        for metric in self.measure.metrics:
            try:
                metric.formula(zeros)
            except KeyError as exc:
                raise TaskError(f"task {self.name!r}: metric {metric.name!r} reads the statistic {exc.args[0]!r}, which its Measure's stats "
                                f"({', '.join(self.measure.stats)}) do not declare") from None
            except Exception:  # noqa: BLE001 - other faults of a formula on all-zero sums are its own business (a division by zero)
                pass

    def parse_options(self, raw: Mapping[str, Any] | Any) -> Any:
        """The typed options from `--task-arg` strings (or values); unknown keys and bad values are errors."""
        return parse(self.options, raw or {}, f"task {self.name!r}", prefix=f"--task-arg {self.name}.")

    def load(self, options: Mapping[str, Any] | Any = None) -> list[Sample]:
        """The samples, from raw or typed options, checked (`check_samples`)."""
        return check_samples(self.name, self.loader(self.parse_options(options)), "loader")

    def answers(self, path: Any, options: Mapping[str, Any] | Any = None) -> tuple[list[Sample], Any]:
        """A saved-answers file that carries its questions (`read_answers`), with raw or typed options."""
        if self.read_answers is None:
            raise TaskError(f"task {self.name!r} matches saved answers against its data (no answers reader)")
        samples, match = self.read_answers(path, self.parse_options(options))
        return check_samples(self.name, samples, "answers reader"), match

    def parser(self, name: str | None) -> Parser:
        """Resolve a parser name (None → the task default) or fail with the valid choices."""
        name = name or self.default_parser
        if name not in self.parsers:
            close = difflib.get_close_matches(name, sorted(self.parsers), n=1)
            raise TaskError(f"task {self.name!r} has no parser {name!r}{f' (did you mean {close[0]!r}?)' if close else ''}; "
                            f"choose one of: {', '.join(sorted(self.parsers))}")
        return self.parsers[name]
