"""Dense annotations as scene graphs: objects with attributes and relations per image, read from a scene-graph
JSON or derived from COCO-style instances (attributes from each annotation's `attributes`, relations from boxes)."""
from __future__ import annotations

from collections import Counter
from itertools import combinations
from pathlib import Path
from typing import Any, Callable

from .files import read_json
from .options import is_number
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


def _is_box(value: Any) -> bool:
    """COCO's [x, y, width, height]: four finite numbers."""
    return isinstance(value, list) and len(value) == 4 and all(is_number(v) for v in value)


def check_coco_instances(data: Any, path: str | Path) -> tuple[list[dict], list[dict], list[dict]]:
    """(images, annotations, categories) of a COCO instances file, each entry checked for what the builders and CHAIR
    read: a damaged or hand-made file is named with the entry at fault, not met as a KeyError in the middle of a
    build (or inside pycocotools)."""
    if not isinstance(data, dict):
        raise TaskError(f"{path}: expected a COCO instances file (an object with images, annotations and categories)")
    lists = []
    for key in ("images", "annotations", "categories"):
        value = data.get(key)
        if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
            raise TaskError(f"{path}: a COCO instances file needs \"{key}\" as a list of objects")
        lists.append(value)
    images, annotations, categories = lists
    for key, entries, text in (("categories", categories, "name"), ("images", images, "file_name")):
        seen: set[Any] = set()
        for i, entry in enumerate(entries):
            if not isinstance(entry.get("id"), (int, str)) or not isinstance(entry.get(text), str) or not entry[text]:
                raise TaskError(f"{path}: {key}[{i}] needs an \"id\" and \"{text}\" as text")
            if entry["id"] in seen:
                raise TaskError(f"{path}: {key}[{i}]: id {entry['id']!r} appears twice in {key}")
            seen.add(entry["id"])
    files = Counter(im["file_name"] for im in images)
    if files and max(files.values()) > 1:
        twice = next(name for name, n in files.items() if n > 1)
        raise TaskError(f"{path}: images: file_name {twice!r} appears {files[twice]} times; each image is one entry")
    image_ids, category_ids = {im["id"] for im in images}, {c["id"] for c in categories}
    for i, ann in enumerate(annotations):
        for key, known, what in (("image_id", image_ids, "images"), ("category_id", category_ids, "categories")):
            value = ann.get(key)
            if not isinstance(value, (int, str)) or value not in known:
                raise TaskError(f"{path}: annotations[{i}]: {key} {value!r:.40} is not among the {what}")
        box = ann.get("bbox")
        if box is not None and not _is_box(box):
            raise TaskError(f"{path}: annotations[{i}]: bbox must be [x, y, width, height] (got {box!r:.60})")
        attributes = ann.get("attributes", {})
        if not isinstance(attributes, dict) or not all(isinstance(v, str) or is_number(v) for v in attributes.values()):
            raise TaskError(f"{path}: annotations[{i}]: attributes must be an object of text or numbers such as {{\"color\": \"red\"}}")
    return images, annotations, categories


def check_coco_captions(data: Any, where: str | Path) -> list[dict]:
    """The annotations of a COCO captions file, each checked for what is read of it (an image_id and a caption):
    CHAIR's ground truth and HA-DPO's reference captions."""
    annotations = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(annotations, list):
        raise TaskError(f"{where}: not a COCO captions file (no \"annotations\" list)")
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict) or "image_id" not in ann or not isinstance(ann.get("caption"), str):
            raise TaskError(f"{where}: annotations[{i}] needs an image_id and a caption (text)")
    return annotations


def from_coco(instances: Path, data: Any = None) -> list[dict[str, Any]]:
    """Scene graphs from a COCO instances file (`data`: its contents, when already read)."""
    images, annotations, categories = check_coco_instances(read_json(instances) if data is None else data, instances)
    names = {c["id"]: c["name"] for c in categories}
    by_image: dict[int, list[dict]] = {}
    for ann in annotations:
        by_image.setdefault(ann["image_id"], []).append(ann)
    graphs = []
    for img in images:
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
    if isinstance(data, dict) and "annotations" in data:  # COCO (from_coco names what else it lacks)
        return from_coco(path, data)
    graphs = data.get("images") if isinstance(data, dict) else data
    if not isinstance(graphs, list):
        raise TaskError(f"{path}: expected a scene graph ({{\"images\": [...]}}, or a list of images) or a COCO instances file")
    return check_scene_graphs(graphs, path)


def check_scene_graphs(graphs: list[Any], path: str | Path) -> list[SceneGraph]:
    """Every entry of a scene-graph file checked for what the builders and pair strategies read, the first entry at
    fault named; `image_id` (default: the file name) and object `id`s (default: 1, 2, … in order) filled in where a
    file leaves them out, so that pair ids and relations always have them."""
    files: dict[str, int] = {}
    ids: dict[Any, int] = {}
    for i, g in enumerate(graphs):
        if not isinstance(g, dict) or "objects" not in g or "file_name" not in g:
            raise TaskError(f"{path}: image entry {i} needs 'file_name' and 'objects'")
        if not isinstance(g["file_name"], str) or not g["file_name"] or not isinstance(g["objects"], list):
            raise TaskError(f"{path}: image entry {i}: 'file_name' must be text and 'objects' a list")
        if g["file_name"] in files:
            raise TaskError(f"{path}: image entries {files[g['file_name']]} and {i} both describe {g['file_name']}; merge them into one entry")
        files[g["file_name"]] = i
        g.setdefault("image_id", g["file_name"])
        if not isinstance(g["image_id"], (int, str)) or isinstance(g["image_id"], bool):
            raise TaskError(f"{path}: image entry {i}: 'image_id' must be a number or text (got {g['image_id']!r:.40})")
        if g["image_id"] in ids:
            raise TaskError(f"{path}: image entries {ids[g['image_id']]} and {i} have the same image_id {g['image_id']!r}")
        ids[g["image_id"]] = i
        for key in ("width", "height"):
            if g.get(key) is not None and not (is_number(g[key]) and g[key] > 0):
                raise TaskError(f"{path}: image entry {i}: '{key}' must be a positive number of pixels (got {g[key]!r:.40})")
        object_ids: set[Any] = set()
        for k, o in enumerate(g["objects"]):
            where = f"{path}: image entry {i}, object {k}"
            if not isinstance(o, dict) or not isinstance(o.get("name"), str) or not o["name"].strip() or not isinstance(o.get("attributes", {}), dict):
                raise TaskError(f"{where}: needs a \"name\" as text (and \"attributes\", if any, as an object)")
            if not all(isinstance(v, str) or is_number(v) for v in o.get("attributes", {}).values()):
                raise TaskError(f"{where}: attribute values must be text or numbers, as in {{\"color\": \"red\"}}")
            if o.get("bbox") is not None and not _is_box(o["bbox"]):
                raise TaskError(f"{where}: bbox must be [x, y, width, height] (got {o['bbox']!r:.60})")
            o.setdefault("id", k + 1)
            if not isinstance(o["id"], (int, str)) or isinstance(o["id"], bool) or o["id"] in object_ids:
                raise TaskError(f"{where}: 'id' must be a number or text that no other object of the image has (got {o['id']!r:.40})")
            object_ids.add(o["id"])
        relations = g.get("relations", [])
        if not isinstance(relations, list):
            raise TaskError(f"{path}: image entry {i}: 'relations' must be a list")
        for k, r in enumerate(relations):
            ends = (r.get("subject"), r.get("object")) if isinstance(r, dict) else (None, None)
            if not isinstance(r, dict) or not isinstance(r.get("predicate"), str) or not all(isinstance(e, (int, str)) and e in object_ids for e in ends):
                raise TaskError(f"{path}: image entry {i}, relation {k}: needs a \"predicate\" as text and a \"subject\" and an \"object\" "
                                "that are ids of the image's objects")
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
