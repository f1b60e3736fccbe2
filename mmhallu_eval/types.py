"""Core value types that flow through a run: Sample → Request → Response → record.

They are plain dataclasses so that tasks, backends and the runner agree on one shape without
importing each other, and so that everything written to disk is JSON-serialisable.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypedDict, Union

from PIL import Image

#: An image is either a path on disk or an in-memory PIL image (e.g. embedded in an HF dataset).
ImageLike = Union[str, Path, Image.Image]


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings; greedy unless temperature > 0. Part of every cache key."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def with_overrides(self, **overrides: Any) -> "GenerationConfig":
        """Return a copy where every non-None override replaces the task default."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class Sample:
    """One benchmark item, independent of any model.

    `id` is unique within a task (namespaced per split where the source ids repeat);
    `group` is the split/category used for per-group metrics.
    """

    id: str
    prompt: str
    images: list[ImageLike] = field(default_factory=list)
    target: Any = None
    group: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Request:
    """What a backend receives: chat messages with image placeholders plus the images in order."""

    id: str
    messages: list[dict[str, Any]]
    images: list[ImageLike]
    generation: GenerationConfig


@dataclass
class Response:
    """A backend's answer to one request. `error` is set instead of `text` when generation failed."""

    id: str
    text: str = ""
    n_output_tokens: int | None = None
    #: prompt length in tokens as the model saw it (images expanded), where the engine reports it
    n_prompt_tokens: int | None = None
    error: str | None = None
    cached: bool = False


def user_message(prompt: str, n_images: int = 1) -> list[dict[str, Any]]:
    """The single-turn chat the benchmarks use: image placeholders first, then the text."""
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": prompt})
    return [{"role": "user", "content": content}]


class SceneObject(TypedDict, total=False):
    """One annotated object: `name` is its class; `bbox` is COCO's [x, y, width, height]."""

    id: int | str
    name: str
    attributes: dict[str, Any]
    bbox: list[float]


class SceneGraph(TypedDict, total=False):
    """One image's complete annotation, as scene-graph files and COCO instances are read (annotations.load_graphs)."""

    image_id: int | str
    file_name: str
    width: int
    height: int
    objects: list[SceneObject]
    relations: list[dict[str, Any]]


class Record(TypedDict, total=False):
    """One line of <task>/samples.jsonl: the sample, the raw response, what the parser read, and its score."""

    id: str
    group: str | None
    prompt: str
    images: list[str]
    response: str
    n_prompt_tokens: int | None
    n_output_tokens: int | None
    target: Any
    parsed: Any
    correct: bool | None
    error: str | None
    metadata: dict[str, Any]
    answer: str
    reasoning: str


class Pair(TypedDict, total=False):
    """One preference pair in TRL's vision layout, plus its provenance (strategy, pair_type, image_id, …)."""

    id: str
    images: list[str]
    prompt: list[dict[str, Any]]
    chosen: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    strategy: str
    pair_type: str
