"""`caption_swap`: caption pairs that differ in one class, named in its place (or, `add_partner`, after a small
object), in the caption templates the tuned model writes."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...annotations import cooccurrence, partners, reading_order, vocabulary
from ...errors import TaskError
from ...options import opt
from ...prompts import DESCRIBE
from ..pairs import make_pair
from ..strategy import Strategy
from .common import DEFAULT_CAPTION_TEMPLATES, SmallObjectOptions, adversarial_absent, fill_caption, image_size, relative_areas, small_area_limit

CAPTION_SWAP_KINDS = ("swap", "swap_partner", "add_partner")
#: the kinds built when none are named
DEFAULT_SWAP_KINDS = ("swap", "swap_partner")


@dataclass
class CaptionSwapOptions(SmallObjectOptions):
    swap_kinds: str = opt(",".join(DEFAULT_SWAP_KINDS), "swap (a random object → the absent class co-occurring most with the image's objects, per "
                          "template), swap_partner (each small object → its most co-occurring class when absent) and/or add_partner (that class "
                          "named after the small object instead)")
    caption_template: tuple[str, ...] = opt(DEFAULT_CAPTION_TEMPLATES, "a caption template with {objects} (objects with attributes) or "
                                            "{names} (class names); repeatable")


def caption_swap_pairs(graphs: list[dict[str, Any]], images: str | Path, kinds: tuple[str, ...] | list[str] = DEFAULT_SWAP_KINDS,
                       templates: tuple[str, ...] | list[str] = DEFAULT_CAPTION_TEMPLATES, small_quantile: float = 0.25,
                       seed: int = 0) -> list[dict[str, Any]]:
    """Caption pairs whose sides differ in one object's class, named in its place. chosen = the ground-truth caption
    (objects in reading order, needs boxes) in a template; rejected = the same caption with one class replaced by an
    absent one:
      swap          one pair per image and template: a random object → the absent class that co-occurs most with
                    the image's objects (POPE's adversarial choice);
      swap_partner  one pair per *small* object (box area within the `small_quantile` smallest, as `contrast`), in a
                    random template: the object → its most co-occurring class, when that is absent;
      add_partner   the same small objects and templates, but the absent class is named *after* the object (same
                    attributes) instead of replacing it: the caption-side form of POPE's adversarial error, an
                    object its companion makes likely, said where only the companion is.

    Why: POVID's injected object adds a phrase, so its rejected caption differs in length and form, which a model can
    learn to avoid instead; a swap in place differs only in the hallucinated word, and in templates the model itself
    writes its captions in (`templates`: "{objects}" lists objects with their attributes, "{names}" by class only)."""
    unknown = [k for k in kinds if k not in CAPTION_SWAP_KINDS]
    if unknown or not kinds:
        raise TaskError(f"caption swap kinds {', '.join(unknown) or '(none)'}: choose from {', '.join(CAPTION_SWAP_KINDS)}")
    bad = [t for t in templates if "{objects}" not in t and "{names}" not in t]
    if bad or not templates:
        raise TaskError(f"caption template {bad[0] if bad else '(none)'!r}: a template needs {{objects}} or {{names}} where the objects go")
    if not 0 < small_quantile <= 1:
        raise TaskError(f"small_quantile {small_quantile}: choose a share of objects in (0, 1]")
    rng = random.Random(seed)
    classes, _ = vocabulary(graphs)
    co = cooccurrence(graphs)
    top = {c: first[0] for c, first in partners(co, 1).items() if first}
    areas = relative_areas(graphs, images)
    limit = small_area_limit(areas, small_quantile, "caption swap pairs need object boxes (bbox) for the reading order")
    pairs: list[dict[str, Any]] = []

    def add(pid: str, g: dict[str, Any], objs: list[dict[str, Any]], k: int, i: int, new: str, kind: str) -> None:
        if kind == "add_partner":
            fake = objs[:i + 1] + [dict(objs[i], name=new)] + objs[i + 1:]
            change = {"added": {"object": new, "after": objs[i]["name"]}}
        else:
            fake = [dict(o, name=new) if j == i else o for j, o in enumerate(objs)]
            change = {"swapped": {"object": [objs[i]["name"], new]}}
        pairs.append(make_pair(pid, str(Path(images) / g["file_name"]), DESCRIBE, fill_caption(templates[k], objs), fill_caption(templates[k], fake),
                               strategy="caption_swap", pair_type="caption", kind=kind, template=k, image_id=g["image_id"], **change))

    for g in graphs:
        if not any(o.get("bbox") for o in g["objects"]):
            continue
        objs = reading_order(g["objects"], image_size(g, images))
        present = {o["name"] for o in objs}
        if "swap" in kinds:
            for k in range(len(templates)):
                x = adversarial_absent(present, co, classes, rng)
                if x:
                    add(f"caption-swap-{g['image_id']}-t{k}", g, objs, k, rng.randrange(len(objs)), x, "swap")
        for kind, prefix in (("swap_partner", "partner"), ("add_partner", "added")):
            if kind not in kinds:
                continue
            for i, o in enumerate(objs):
                area = areas.get((g["image_id"], o["id"]))
                partner = top.get(o["name"])
                if area is not None and area <= limit and partner and partner not in present:
                    add(f"caption-{prefix}-{g['image_id']}-{o['id']}", g, objs, rng.randrange(len(templates)), i, partner, kind)
    return pairs


def _kinds(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


STRATEGY = Strategy(
    name="caption_swap", description="ground-truth captions vs the same caption with one class swapped in place (needs boxes)", options=CaptionSwapOptions,
    build=lambda ctx, o: caption_swap_pairs(ctx.graphs, ctx.images, _kinds(o.swap_kinds), o.caption_template, o.small_quantile, ctx.seed),
)
