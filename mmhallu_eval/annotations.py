"""Dense annotations as scene graphs: objects with attributes and relations per image, read from a scene-graph
JSON or derived from COCO-style instances (attributes from each annotation's `attributes`, relations from boxes)."""
from __future__ import annotations

from collections import Counter
from itertools import combinations
from pathlib import Path
from typing import Any, Callable

from .files import read_json
from .types import SceneGraph
from .task import TaskError

OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
#: size attribute words, smallest first (for "which is larger" questions and their judging)
SIZE_ORDER = {"tiny": 0, "small": 1, "medium": 2, "large": 3}


def _box_relation(a: list[float], b: list[float]) -> str | None:
    ax, ay = a[0] + a[2] / 2, a[1] + a[3] / 2
    bx, by = b[0] + b[2] / 2, b[1] + b[3] / 2
    dx, dy = bx - ax, by - ay
    if max(abs(dx), abs(dy)) < 1e-6:
        return None
    if abs(dx) >= abs(dy):
        return "left of" if dx > 0 else "right of"
    return "above" if dy > 0 else "below"


def from_coco(instances: Path) -> list[dict[str, Any]]:
    data = read_json(instances)
    names = {c["id"]: c["name"] for c in data["categories"]}
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    graphs = []
    for img in data["images"]:
        anns = by_image.get(img["id"], [])
        objs = [{"id": i + 1, "name": names[a["category_id"]], "attributes": dict(a.get("attributes", {})), "bbox": a.get("bbox")} for i, a in enumerate(anns)]
        rels = []
        for a, b in ((x, y) for x in objs for y in objs if x is not y):
            if a["bbox"] and b["bbox"] and (r := _box_relation(a["bbox"], b["bbox"])):
                rels.append({"subject": a["id"], "predicate": r, "object": b["id"]})
        graphs.append({"image_id": img["id"], "file_name": img["file_name"], "width": img.get("width"), "height": img.get("height"),
                       "objects": objs, "relations": rels})
    return graphs


def load_graphs(path: str | Path) -> list[SceneGraph]:
    """A scene-graph JSON ({"images": [...]}) or a COCO instances file."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"{path}: annotation file not found")
    data = read_json(path)
    if isinstance(data, dict) and "annotations" in data and "categories" in data:
        return from_coco(path)
    graphs = data.get("images") if isinstance(data, dict) else data
    if not isinstance(graphs, list):
        raise TaskError(f"{path}: expected a scene graph ({{\"images\": [...]}}, or a list of images) or a COCO instances file")
    for i, g in enumerate(graphs):
        if not isinstance(g, dict) or "objects" not in g or "file_name" not in g:
            raise TaskError(f"{path}: image entry {i} needs 'file_name' and 'objects'")
    return graphs


def cooccurrence(graphs: list[dict[str, Any]]) -> dict[str, Counter]:
    """For each class, how often every other class appears in the same image."""
    co: dict[str, Counter] = {}
    for g in graphs:
        names = sorted({o["name"] for o in g["objects"]})
        for a, b in combinations(names, 2):
            co.setdefault(a, Counter())[b] += 1
            co.setdefault(b, Counter())[a] += 1
    return co


def absent_ranked(present: set[str], co: dict[str, Counter], classes: list[str], tiebreak: Callable[[str], tuple] = lambda c: ()) -> list[str]:
    """The classes absent from an image, most co-occurring with its objects first (POPE's adversarial ranking);
    ties by `tiebreak`, then by name. The one definition every builder and pair strategy uses."""
    score = {c: sum(co.get(p, {}).get(c, 0) for p in present) for c in classes if c not in present}
    return sorted(score, key=lambda c: (-score[c], *tiebreak(c), c))


def partners(co: dict[str, Counter], k: int) -> dict[str, list[str]]:
    """Per class its k most co-occurring classes (ties by name)."""
    return {c: [o for o, _ in sorted(n.items(), key=lambda kv: (-kv[1], kv[0]))[:k]] for c, n in co.items()}


def vocabulary(graphs: list[dict[str, Any]]) -> tuple[list[str], dict[str, list[str]]]:
    classes = sorted({o["name"] for g in graphs for o in g["objects"]})
    values: dict[str, set[str]] = {}
    for g in graphs:
        for o in g["objects"]:
            for k, v in o.get("attributes", {}).items():
                values.setdefault(k, set()).add(str(v))
    return classes, {k: sorted(v) for k, v in values.items()}


def reading_order(objs: list[dict[str, Any]], size: tuple[float, float]) -> list[dict[str, Any]]:
    """Objects top to bottom by thirds of the image height, left to right within a third (objects without a box
    keep their place at the end): the order a description of the scene would name them in."""
    w, h = size
    boxed = [o for o in objs if o.get("bbox")]
    key = lambda o: (min(2, int((o["bbox"][1] + o["bbox"][3] / 2) * 3 / h)), (o["bbox"][0] + o["bbox"][2] / 2) / w)
    return sorted(boxed, key=key) + [o for o in objs if not o.get("bbox")]
