"""The "shapes world": procedurally drawn scenes with complete ground truth, written in standard formats
(COCO instances/captions, a scene-graph JSON, a CHAIR synonyms file) so the real task code runs unchanged.

Classes co-occur by design (each class has a "partner" it usually appears with), so a model trained on
the world learns priors it can hallucinate from — the way real VLMs say "fork" next to a plate.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

CLASSES = (
    "circle", "square", "triangle", "star", "cross", "diamond", "heart", "hexagon",
    "ring", "arrow", "moon", "pentagon", "ellipse", "bar", "kite",
)
#: class → the class it usually appears with (the co-occurrence prior)
PARTNERS = {
    "circle": "ring", "ring": "circle", "square": "diamond", "diamond": "square", "star": "moon", "moon": "star",
    "heart": "arrow", "arrow": "heart", "hexagon": "pentagon", "pentagon": "hexagon", "triangle": "kite",
    "kite": "triangle", "cross": "bar", "bar": "cross", "ellipse": "circle",
}
COLORS = {"red": (215, 48, 39), "green": (26, 152, 80), "blue": (49, 54, 149), "yellow": (240, 200, 20), "purple": (118, 42, 131), "orange": (244, 109, 67)}
#: a tiny object is ~4 px across in the demo model's 48 px view: its colour shows, its class hardly does — where
#: perception is uncertain, a model answers from the co-occurrence prior (POPE's adversarial split measures that)
SIZES = {"tiny": 0.3, "small": 0.55, "large": 0.95}
SYNONYMS = {
    "circle": ["circle", "disc", "dot"], "square": ["square", "box"], "triangle": ["triangle"], "star": ["star"],
    "cross": ["cross", "plus"], "diamond": ["diamond", "rhombus"], "heart": ["heart"], "hexagon": ["hexagon"],
    "ring": ["ring", "donut"], "arrow": ["arrow"], "moon": ["moon", "crescent"], "pentagon": ["pentagon"],
    "ellipse": ["ellipse", "oval"], "bar": ["bar", "stripe"], "kite": ["kite"],
}


@dataclass
class Obj:
    id: int
    name: str
    color: str
    size: str
    cell: tuple[int, int]  # (row, col) in a 3×3 grid
    bbox: list[float]


def _poly(cx: float, cy: float, r: float, n: int, rot: float = -math.pi / 2) -> list[tuple[float, float]]:
    return [(cx + r * math.cos(rot + 2 * math.pi * k / n), cy + r * math.sin(rot + 2 * math.pi * k / n)) for k in range(n)]


def draw_object(draw: ImageDraw.ImageDraw, name: str, cx: float, cy: float, r: float, fill: tuple[int, int, int], bg: tuple[int, int, int]) -> None:
    if name == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif name == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        draw.ellipse((cx - r * 0.55, cy - r * 0.55, cx + r * 0.55, cy + r * 0.55), fill=bg)
    elif name == "ellipse":
        draw.ellipse((cx - r, cy - r * 0.55, cx + r, cy + r * 0.55), fill=fill)
    elif name == "square":
        draw.rectangle((cx - r * 0.8, cy - r * 0.8, cx + r * 0.8, cy + r * 0.8), fill=fill)
    elif name == "bar":
        draw.rectangle((cx - r, cy - r * 0.3, cx + r, cy + r * 0.3), fill=fill)
    elif name == "triangle":
        draw.polygon(_poly(cx, cy, r, 3), fill=fill)
    elif name == "diamond":
        draw.polygon(_poly(cx, cy, r, 4), fill=fill)
    elif name == "pentagon":
        draw.polygon(_poly(cx, cy, r, 5), fill=fill)
    elif name == "hexagon":
        draw.polygon(_poly(cx, cy, r, 6, 0), fill=fill)
    elif name == "star":
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.42
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        draw.polygon(pts, fill=fill)
    elif name == "cross":
        w = r * 0.35
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)
    elif name == "heart":
        draw.ellipse((cx - r, cy - r * 0.75, cx, cy + r * 0.1), fill=fill)
        draw.ellipse((cx, cy - r * 0.75, cx + r, cy + r * 0.1), fill=fill)
        draw.polygon([(cx - r * 0.97, cy - r * 0.2), (cx + r * 0.97, cy - r * 0.2), (cx, cy + r)], fill=fill)
    elif name == "arrow":
        draw.rectangle((cx - r, cy - r * 0.2, cx + r * 0.2, cy + r * 0.2), fill=fill)
        draw.polygon([(cx + r * 0.1, cy - r * 0.6), (cx + r, cy), (cx + r * 0.1, cy + r * 0.6)], fill=fill)
    elif name == "moon":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        draw.ellipse((cx - r * 0.35, cy - r, cx + r * 1.3, cy + r * 0.9), fill=bg)
    elif name == "kite":
        draw.polygon([(cx, cy - r), (cx + r * 0.6, cy - r * 0.1), (cx, cy + r), (cx - r * 0.6, cy - r * 0.1)], fill=fill)
    else:
        raise ValueError(f"unknown class {name!r}")


def relation(a: Obj, b: Obj) -> str | None:
    """The spatial relation of a to b on the grid (horizontal wins when both differ)."""
    (ra, ca), (rb, cb) = a.cell, b.cell
    if ca != cb:
        return "left of" if ca < cb else "right of"
    if ra != rb:
        return "above" if ra < rb else "below"
    return None


def sample_scene(rng: random.Random, max_objects: int = 5, partner_p: float = 0.8) -> list[tuple[str, str, str]]:
    """(class, color, size) triples; a class's partner joins it with probability `partner_p`."""
    n = rng.randint(1, max_objects)
    names: list[str] = []
    while len(names) < n:
        name = rng.choice([c for c in CLASSES if c not in names])
        names.append(name)
        partner = PARTNERS[name]
        if len(names) < n and partner not in names and rng.random() < partner_p:
            names.append(partner)
    return [(name, rng.choice(list(COLORS)), rng.choice(list(SIZES))) for name in names]


def layout(objects: list[tuple[str, str, str]], rng: random.Random, size: int = 96) -> list[Obj]:
    """Place each object in its own cell of the 3×3 grid (the only randomness of `render`)."""
    cells = rng.sample([(r, c) for r in range(3) for c in range(3)], len(objects))
    cell_px = size / 3
    placed = []
    for k, ((name, color, sz), (row, col)) in enumerate(zip(objects, cells)):
        r = cell_radius(sz, size)
        cx, cy = col * cell_px + cell_px / 2, row * cell_px + cell_px / 2
        placed.append(Obj(k + 1, name, color, sz, (row, col), [round(cx - r, 1), round(cy - r, 1), round(2 * r, 1), round(2 * r, 1)]))
    return placed


def render(objects: list[tuple[str, str, str]], rng: random.Random, size: int = 96) -> tuple[Image.Image, list[Obj]]:
    bg = (242, 242, 238)
    im = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(im)
    placed = layout(objects, rng, size)
    cell_px = size / 3
    for o in placed:
        row, col = o.cell
        draw_object(draw, o.name, col * cell_px + cell_px / 2, row * cell_px + cell_px / 2, cell_radius(o.size, size), COLORS[o.color], bg)
    return im, placed


def cell_radius(size_name: str, size: int = 96) -> float:
    return size / 3 / 2 * SIZES[size_name] * 0.9


def scene_graph(image_id: int, file_name: str, objs: list[Obj]) -> dict:
    """The scene-graph record of one image: objects with attributes and boxes, and all pairwise grid relations."""
    return {
        "image_id": image_id, "file_name": file_name,
        "objects": [{"id": o.id, "name": o.name, "attributes": {"color": o.color, "size": o.size}, "bbox": o.bbox} for o in objs],
        "relations": [{"subject": a.id, "predicate": rel, "object": b.id} for a in objs for b in objs if a.id != b.id and (rel := relation(a, b))],
    }


CAPTION_TEMPLATES = (
    "A picture with {list}.",
    "There is {list} in this image.",
    "The image shows {list}.",
    "In this picture we can see {list}.",
    "{List} on a light background.",
)


def _phrase(o: Obj, with_attrs: bool) -> str:
    return f"a {o.size} {o.color} {o.name}" if with_attrs else f"a {o.name}"


def captions_for(objs: list[Obj], rng: random.Random, shuffle: bool = True) -> list[str]:
    """One caption per template; the objects in a random order per caption, or with `shuffle` False in the given one."""
    out = []
    for k, template in enumerate(CAPTION_TEMPLATES):
        order = objs[:]
        if shuffle:
            rng.shuffle(order)
        parts = [_phrase(o, with_attrs=k % 2 == 0) for o in order]
        text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        out.append(template.format(list=text, List=text[0].upper() + text[1:]))
    return out


def build_world(out: str | Path, seed: int = 0, n_train: int = 400, n_test: int = 200, size: int = 96) -> Path:
    """Write images/, instances_{train,test}.json, captions_{train,test}.json, scene_graph_{train,test}.json,
    synonyms.txt and world.json (the parameters). Deterministic for a seed; splits share no images."""
    out = Path(out)
    rng = random.Random(seed)
    categories = [{"id": i + 1, "name": c, "supercategory": "shape"} for i, c in enumerate(CLASSES)]
    cat_id = {c["name"]: c["id"] for c in categories}
    next_image = 1
    for split, n in (("train", n_train), ("test", n_test)):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        images, anns, caps, graphs = [], [], [], []
        for _ in range(n):
            image_id = next_image
            next_image += 1
            im, objs = render(sample_scene(rng), rng, size)
            file_name = f"{split}/shapes_{image_id:06d}.png"
            im.save(out / "images" / file_name)
            images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
            for o in objs:
                anns.append({"id": len(anns) + 1 + image_id * 100, "image_id": image_id, "category_id": cat_id[o.name], "bbox": o.bbox,
                             "area": o.bbox[2] * o.bbox[3], "iscrowd": 0, "attributes": {"color": o.color, "size": o.size}})
            for c in captions_for(objs, rng):
                caps.append({"id": len(caps) + 1 + image_id * 100, "image_id": image_id, "caption": c})
            graphs.append(scene_graph(image_id, file_name, objs))
        info = {"description": f"mmhallu-eval shapes world, seed {seed}, split {split}"}
        (out / f"instances_{split}.json").write_text(json.dumps({"info": info, "images": images, "annotations": anns, "categories": categories}))
        (out / f"captions_{split}.json").write_text(json.dumps({"info": info, "images": images, "annotations": caps}))
        (out / f"scene_graph_{split}.json").write_text(json.dumps({"images": graphs}))
    (out / "synonyms.txt").write_text("".join(", ".join(SYNONYMS[c]) + "\n" for c in CLASSES))
    (out / "world.json").write_text(json.dumps(world_params(seed, n_train, n_test, size), indent=1))
    return out


def world_params(seed: int = 0, n_train: int = 400, n_test: int = 200, size: int = 96) -> dict:
    """What world.json records: a cached world is reused only when these match."""
    return {"seed": seed, "train": n_train, "test": n_test, "size": size, "classes": list(CLASSES), "partners": PARTNERS,
            "colors": list(COLORS), "sizes": SIZES}
