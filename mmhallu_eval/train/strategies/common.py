"""What several pair strategies share: the answer styles, object sizes and positions from boxes, caption templates,
and the option fields two strategies declare alike (so they share one flag)."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from ...annotations import absent_ranked
from ...errors import TaskError
from ...options import opt
from ...prompts import SHORT_ANSWER
from ..pairs import make_pair

PAIR_TYPES = ("obj", "attr", "rel", "wh")
ANSWER_STYLES = ("sentence", "short")


@dataclass
class StyleOptions:
    answer_style: Literal["sentence", "short"] = opt("sentence", "sentence (FINER-Tuning's answers) or short (the question with LLaVA-1.5's "
                                                     "short-answer suffix, one-word answers): the style the tuned model's benchmarks are answered in")


@dataclass
class SmallObjectOptions:
    small_quantile: float = opt(0.25, "objects whose box area (relative to the image) is within this smallest share of all objects count as small")


def adversarial_absent(present: set[str], co: dict, classes: list[str], rng: random.Random) -> str | None:
    """The absent class that co-occurs most with the image's objects (POPE's adversarial choice), else random."""
    ranked = absent_ranked(present, co, classes)
    if ranked and any(co.get(p, {}).get(ranked[0], 0) for p in present):
        return ranked[0]
    absent = [c for c in classes if c not in present]
    return rng.choice(absent) if absent else None


def styled_adder(pairs: list[dict[str, Any]], answer_style: str) -> Callable[..., None]:
    """add(pid, image, question, chosen, rejected, **meta) with chosen/rejected as (sentence, one word): appends the
    pair in `answer_style` ("short": the question with the short-answer suffix, one-word answers)."""
    if answer_style not in ANSWER_STYLES:
        raise TaskError(f"answer style {answer_style!r}: choose {' or '.join(ANSWER_STYLES)}")

    def add(pid: str, image: str, question: str, chosen: tuple[str, str], rejected: tuple[str, str], **meta: Any) -> None:
        if answer_style == "short":
            pairs.append(make_pair(pid, image, question + SHORT_ANSWER, chosen[1], rejected[1], answer_style="short", **meta))
        else:
            pairs.append(make_pair(pid, image, question, chosen[0], rejected[0], **meta))
    return add


def image_size(g: dict[str, Any], images: str | Path) -> tuple[float, float]:
    """(width, height) from the graph, else from the image file's header."""
    from PIL import Image

    w, h = g.get("width"), g.get("height")
    if w and h:
        return w, h
    path = Path(images) / g["file_name"]
    if not path.is_file():
        raise TaskError(f"image {g['image_id']}: {path} not found (needed for object sizes and positions); check --images")
    with Image.open(path) as im:
        return im.size


def relative_areas(graphs: list[dict[str, Any]], images: str | Path) -> dict[tuple[int, int], float]:
    """Box area / image area for every object with a box."""
    areas: dict[tuple[int, int], float] = {}
    for g in graphs:
        boxed = [o for o in g["objects"] if o.get("bbox")]
        if not boxed:
            continue
        w, h = image_size(g, images)
        for o in boxed:
            areas[(g["image_id"], o["id"])] = o["bbox"][2] * o["bbox"][3] / (w * h)
    return areas


def small_area_limit(areas: dict[tuple[int, int], float], small_quantile: float, needs: str) -> float:
    """The relative box area at the `small_quantile` of all objects: objects at or below it count as small."""
    if not areas:
        raise TaskError(f"{needs}; the annotations have none")
    ranked = sorted(areas.values())
    return ranked[max(0, min(len(ranked), round(small_quantile * len(ranked))) - 1)]


#: caption templates: {objects} lists the objects with their attributes ("a small red circle"), {names} by class only
DEFAULT_CAPTION_TEMPLATES = ("The image shows {objects}.",)


def _object_list(objs: list[dict[str, Any]], with_attributes: bool) -> str:
    attrs = lambda o: [str(v) for v in (o.get("attributes", {}).get("size"), o.get("attributes", {}).get("color")) if v] if with_attributes else []
    parts = [" ".join(["a", *attrs(o), o["name"]]) for o in objs]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def fill_caption(template: str, objs: list[dict[str, Any]]) -> str:
    """A caption template filled with the objects in the given order ({objects} with attributes, {names} without)."""
    text = template.replace("{objects}", _object_list(objs, True)).replace("{names}", _object_list(objs, False))
    return text[:1].upper() + text[1:]


def describe(objs: list[dict[str, Any]]) -> str:
    """A ground-truth description built from the scene graph."""
    return fill_caption(DEFAULT_CAPTION_TEMPLATES[0], objs)


