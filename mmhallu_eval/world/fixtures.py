"""Generated benchmark fixtures in the official file formats (images drawn with PIL, no downloads).

The POPE fixture follows POPE's layout: per image up to 3 present objects ("yes") and as many absent
ones ("no"), written as coco_pope_<split>.json question files next to an images/ folder.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

from .shapes import draw_object

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30)}


BACKGROUND = (245, 245, 245)


def draw_in_cell(draw: ImageDraw.ImageDraw, shape: str, x: int, y: int, cell: int, fill: tuple[int, int, int]) -> None:
    """One shape filling a square cell with a 4 px margin (the shapes world's drawing code)."""
    draw_object(draw, shape, x + cell / 2, y + cell / 2, cell / 2 - 4, fill, BACKGROUND)


def build_pope_fixture(out: str | Path, n_images: int = 8, seed: int = 0, size: int = 64) -> Path:
    """Images with 1–3 shapes and POPE question files for the random/popular/adversarial splits."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    scenes: list[tuple[str, list[str]]] = []
    for i in range(n_images):
        name = f"shapes_{i:06d}.png"
        objects = rng.sample(SHAPES, rng.randint(1, 3))
        im = Image.new("RGB", (size, size), BACKGROUND)
        draw = ImageDraw.Draw(im)
        cell = size // 2
        for k, shape in enumerate(objects):
            x, y = (k % 2) * cell, (k // 2) * cell
            draw_in_cell(draw, shape, x, y, cell, rng.choice(list(COLORS.values())))
        im.save(out / "images" / name)
        scenes.append((name, objects))
    freq = {s: sum(s in objs for _, objs in scenes) for s in SHAPES}
    for split in ("random", "popular", "adversarial"):
        rows, qid = [], 1
        for name, objects in scenes:
            absent = [s for s in SHAPES if s not in objects]
            if split == "random":
                negatives = rng.sample(absent, min(len(objects), len(absent)))
            else:  # popular: most frequent overall; adversarial uses the same order on this tiny fixture
                negatives = sorted(absent, key=lambda s: (-freq[s], s))[: len(objects)]
            for obj, label in [(o, "yes") for o in objects] + [(o, "no") for o in negatives]:
                rows.append({"question_id": qid, "image": name, "text": f"Is there a {obj} in the image?", "label": label})
                qid += 1
        (out / f"shapes_pope_{split}.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def _shape_scene(rng: random.Random, size: int, n_max: int = 3) -> tuple[Image.Image, list[tuple[str, str]]]:
    objects = [(shape, rng.choice(list(COLORS))) for shape in rng.sample(SHAPES, rng.randint(1, n_max))]
    im = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(im)
    cell = size // 2
    for k, (shape, color) in enumerate(objects):
        x, y = (k % 2) * cell, (k // 2) * cell
        draw_in_cell(draw, shape, x, y, cell, COLORS[color])
    return im, objects


def build_mme_fixture(out: str | Path, n_images: int = 6, seed: int = 0, size: int = 64) -> Path:
    """MME's flat lists (`<subtask>.txt`: image, question, Yes/No) for existence and color, two questions per
    image (one Yes, one No), with images under `<subtask>/images/`."""
    out = Path(out)
    rng = random.Random(seed)
    for subtask in ("existence", "color"):
        (out / subtask / "images").mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(n_images):
            name = f"{i:012d}.png"
            im, objects = _shape_scene(rng, size)
            im.save(out / subtask / "images" / name)
            shape, color = objects[0]
            if subtask == "existence":
                absent = next(s for s in SHAPES if s not in {o for o, _ in objects})
                qa = [(f"Is there a {shape} in this image?", "Yes"), (f"Is there a {absent} in this image?", "No")]
            else:
                other = next(c for c in COLORS if c != color)
                qa = [(f"Is there a {color} {shape} in this image?", "Yes"), (f"Is there a {other} {shape} in this image?", "No")]
            lines += [f"{name}\t{q} Please answer yes or no.\t{a}\n" for q, a in qa]
        (out / f"{subtask}.txt").write_text("".join(lines))
    return out


def build_finer_fixture(out: str | Path, n_images: int = 4, seed: int = 0, size: int = 64) -> Path:
    """FINER-style rows (`<setting>.jsonl`: image_filename, qtype, question, choice1..5, gt_index) in
    positive / one-slot-negative pairs for multi_obj and multi_attr, with images under images/."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows: dict[str, list[dict]] = {"multi_obj": [], "multi_attr": []}
    for i in range(n_images):
        name = f"finer_{i:04d}.png"
        im, objects = _shape_scene(rng, size, n_max=2)
        im.save(out / "images" / name)
        shape, color = objects[0]
        absent = [s for s in SHAPES if s not in {o for o, _ in objects}]
        other_colors = [c for c in COLORS if c != color]
        for setting, pos_q, neg_q, right, wrong_pool in (
            ("multi_obj", f"Is there a {shape} in the image?", f"Is there a {absent[0]} in the image?", shape, absent),
            ("multi_attr", f"Is there a {color} {shape}?", f"Is there a {other_colors[0]} {shape}?", color, other_colors),
        ):
            for polarity, question in (("pos", pos_q), ("neg", neg_q)):
                answer = f"Yes, there is a {right}." if polarity == "pos" else f"No, but I can see a {right}."
                distractors = [f"Yes, there is a {w}." for w in wrong_pool[:3]] + ["No, there is nothing there."]
                gt = rng.randrange(5)
                choices = distractors[:gt] + [answer] + distractors[gt:4]
                row = {"image_filename": name, "qtype": f"{setting.split('_')[1]}1_{polarity}", "question": question, "gt_index": gt}
                row.update({f"choice{k + 1}": c for k, c in enumerate(choices)})
                rows[setting].append(row)
    for setting, items in rows.items():
        (out / f"{setting}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    return out


COCO_FIXTURE_CATEGORIES = [(1, "person"), (2, "bicycle"), (3, "car"), (17, "cat"), (18, "dog"), (62, "chair"), (67, "dining table"), (70, "toilet")]


def build_coco_fixture(out: str | Path, n_images: int = 6, seed: int = 0, size: int = 64, split: str = "val2014") -> Path:
    """COCO-format `instances_<split>.json` and `captions_<split>.json` (5 captions per image) over generated
    images named like COCO's (`COCO_<split>_<id:012d>.jpg`), for the CHAIR task and POPE-style builders.
    Each object is a coloured box labelled with a COCO category; one image has no instances."""
    out = Path(out)
    img_dir = out / split
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    images, instances, captions = [], [], []
    ann_id = 1
    for k in range(n_images):
        image_id = 100 + k * 7
        name = f"COCO_{split}_{image_id:012d}.jpg"
        im = Image.new("RGB", (size, size), (250, 250, 250))
        draw = ImageDraw.Draw(im)
        cats = [] if k == n_images - 1 else rng.sample(COCO_FIXTURE_CATEGORIES, rng.randint(1, 3))
        for j, (cat_id, _) in enumerate(cats):
            x0, y0 = 4 + 20 * j, 4 + 10 * j
            box = [x0, y0, 18, 18]
            draw.rectangle((x0, y0, x0 + 18, y0 + 18), fill=tuple(rng.randrange(256) for _ in range(3)))
            instances.append({
                "id": ann_id, "image_id": image_id, "category_id": cat_id, "bbox": box, "area": 324.0, "iscrowd": 0,
                "segmentation": [[x0, y0, x0 + 18, y0, x0 + 18, y0 + 18, x0, y0 + 18]],
            })
            ann_id += 1
        im.save(img_dir / name, quality=95)
        images.append({"id": image_id, "file_name": name, "width": size, "height": size})
        names = [n for _, n in cats] or ["wall"]
        for c in range(5):
            captions.append({"id": image_id * 10 + c, "image_id": image_id, "caption": f"A picture {c} with a {' and a '.join(names)}."})
    categories = [{"id": i, "name": n, "supercategory": "thing"} for i, n in COCO_FIXTURE_CATEGORIES]
    info = {"description": "mmhallu-eval generated COCO-style fixture"}
    (out / f"instances_{split}.json").write_text(json.dumps({"info": info, "images": images, "annotations": instances, "categories": categories}))
    (out / f"captions_{split}.json").write_text(json.dumps({"info": info, "images": images, "annotations": captions}))
    return out
