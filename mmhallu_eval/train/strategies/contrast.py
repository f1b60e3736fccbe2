"""`contrast`: weak-evidence contrast pairs — small objects against their most co-occurring absent classes, on the
same image, with both answers (POPE's adversarial failure)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...annotations import cooccurrence
from ...annotations import partners as partners_of
from ...errors import TaskError
from ...options import opt
from ..strategy import Strategy
from .common import SmallObjectOptions, StyleOptions, relative_areas, small_area_limit, styled_adder


@dataclass
class ContrastOptions(StyleOptions, SmallObjectOptions):
    partners: int = opt(1, "how many of a small object's most co-occurring classes to ask about when absent")


def contrast_pairs(graphs: list[dict[str, Any]], images: str | Path, small_quantile: float = 0.25, partners: int = 1,
                   answer_style: str = "short") -> list[dict[str, Any]]:
    """Weak-evidence contrast pairs. For every *small* object X (box area relative to its image at or below the
    `small_quantile` of all annotated objects) and each of the `partners` classes that co-occur most with X in the
    annotations that is absent from the image, P: "Is there a P?" No ≻ Yes, and once per X "Is there a X?" Yes ≻ No
    on the same image (X without an absent partner gives no pairs).

    Why: a model whose co-occurrence prior wins where the visual evidence is weak says "yes" to P next to a small
    X — POPE's adversarial failure. Negatives alone teach it "No" (recall falls); the two questions on one image ask
    it to tell X's evidence from P's. Needs boxes (COCO instances or a scene graph with `bbox`)."""
    if not 0 < small_quantile <= 1:
        raise TaskError(f"small_quantile {small_quantile}: choose a share of objects in (0, 1]")
    if partners < 1:
        raise TaskError(f"partners {partners}: choose at least 1")
    pairs: list[dict[str, Any]] = []
    add = styled_adder(pairs, answer_style)  # checks the style before any image is read
    areas = relative_areas(graphs, images)
    limit = small_area_limit(areas, small_quantile, "contrast pairs need object boxes (bbox)")
    top = partners_of(cooccurrence(graphs), partners)

    for g in graphs:
        present = {o["name"] for o in g["objects"]}
        image = str(Path(images) / g["file_name"])
        for o in g["objects"]:
            area = areas.get((g["image_id"], o["id"]))
            if area is None or area > limit:
                continue
            x = o["name"]
            absent = [p for p in top.get(x, []) if p not in present]
            if not absent:
                continue
            meta = {"strategy": "contrast", "pair_type": "obj", "image_id": g["image_id"], "small_object": x, "relative_area": round(area, 5)}
            add(f"contrast-{g['image_id']}-{o['id']}-pos", image, f"Is there a {x} in the image?", (f"Yes, there is a {x} in the image.", "Yes"),
                (f"No, there is no {x} in the image.", "No"), polarity="pos", slots={"object": x}, **meta)
            for p in absent:
                add(f"contrast-{g['image_id']}-{o['id']}-neg-{p}", image, f"Is there a {p} in the image?", (f"No, there is no {p}, but I can see a {x}.", "No"),
                    (f"Yes, there is a {p} in the image.", "Yes"), polarity="neg", slots={"object": p}, **meta)
    return pairs


STRATEGY = Strategy(
    name="contrast", description="small objects vs their most co-occurring absent classes on the same image (needs boxes)", options=ContrastOptions,
    build=lambda ctx, o: contrast_pairs(ctx.graphs, ctx.images, o.small_quantile, o.partners, o.answer_style),
)
