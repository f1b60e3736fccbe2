"""MME-style yes/no pairs, FINER-style 5-way MCQ pairs and MMHal-style open questions from dense annotations
(scene graphs, or COCO instances with attributes and boxes)."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from ..annotations import OPPOSITE, SIZE_ORDER, absent_ranked, cooccurrence, load_graphs, vocabulary
from ..errors import TaskError
from ..prompts import YES_NO
from .writing import write_built_files


def build_mme(annotations: str | Path, out: str | Path, seed: int = 0) -> dict[str, Path]:
    """existence, count, position, color: one Yes and one No question per image, `<subtask>.txt` flat lists."""
    graphs = load_graphs(annotations)
    classes, values = vocabulary(graphs)
    co = cooccurrence(graphs)
    rng = random.Random(seed)
    lines: dict[str, list[str]] = {"existence": [], "count": [], "position": [], "color": []}
    for g in graphs:
        objs = g["objects"]
        if not objs:
            continue
        present = {o["name"] for o in objs}
        name = g["file_name"]
        o = rng.choice(objs)
        absent = absent_ranked(present, co, classes)
        if absent:
            lines["existence"] += [f"{name}\tIs there a {o['name']} in this image?{YES_NO}\tYes", f"{name}\tIs there a {absent[0]} in this image?{YES_NO}\tNo"]
        n = len(objs)
        wrong = rng.choice([k for k in range(1, 7) if k != n])
        noun = lambda k: "object" if k == 1 else "objects"
        verb = lambda k: "is" if k == 1 else "are"
        lines["count"] += [f"{name}\t{verb(n).capitalize()} there {n} {noun(n)} in this image?{YES_NO}\tYes",
                           f"{name}\t{verb(wrong).capitalize()} there {wrong} {noun(wrong)} in this image?{YES_NO}\tNo"]
        rels = [r for r in g.get("relations", []) if r["predicate"] in OPPOSITE]
        if rels:
            r = rng.choice(rels)
            by_id = {x["id"]: x["name"] for x in objs}
            a, b, p = by_id[r["subject"]], by_id[r["object"]], r["predicate"]
            lines["position"] += [f"{name}\tIs the {a} {p} the {b}?{YES_NO}\tYes", f"{name}\tIs the {a} {OPPOSITE[p]} the {b}?{YES_NO}\tNo"]
        color = o.get("attributes", {}).get("color")
        others = [c for c in values.get("color", []) if c != color]
        if color and others:
            lines["color"] += [f"{name}\tIs there a {color} {o['name']} in this image?{YES_NO}\tYes",
                               f"{name}\tIs there a {rng.choice(others)} {o['name']} in this image?{YES_NO}\tNo"]
    kept = {subtask: rows for subtask, rows in lines.items() if rows}
    files = {Path(out) / f"{subtask}.txt": "".join(r + "\n" for r in rows) for subtask, rows in kept.items()}
    return dict(zip(kept, write_built_files(files, [annotations])))


def _mcq(question: str, correct: str, distractors: list[str], rng: random.Random) -> dict[str, Any]:
    choices = [correct] + [d for d in dict.fromkeys(distractors) if d != correct][:4]
    while len(choices) < 5:
        choices.append(f"None of the above ({len(choices)}).")
    rng.shuffle(choices)
    return {"question": question, **{f"choice{i + 1}": c for i, c in enumerate(choices)}, "gt_index": choices.index(correct)}


def build_finer(annotations: str | Path, out: str | Path, seed: int = 0, n_images: int | None = None) -> dict[str, Path]:
    """Per image and setting a positive MCQ and its one-slot negative (`qtype` <base>_pos / <base>_neg).

    `n_images`: ask about the first N images of the file only (all by default). Distractors and absent objects still
    come from every image's classes, colours and co-occurrences, so the questions are those a build on all images
    writes for those images (each file's first rows)."""
    if n_images is not None and n_images < 1:
        raise TaskError(f"build finer: n_images {n_images}; give 1 or more, or leave it out for every image")
    graphs = load_graphs(annotations)
    classes, values = vocabulary(graphs)
    co = cooccurrence(graphs)
    rng = random.Random(seed)
    rows: dict[str, list[dict]] = {"multi_obj": [], "multi_attr": [], "multi_rel": [], "wh": []}
    for g in graphs[:n_images]:
        objs = g["objects"]
        if not objs:
            continue
        base = {"image_filename": g["file_name"]}
        present = {o["name"] for o in objs}
        absent = absent_ranked(present, co, classes)
        o = rng.choice(objs)
        name, color = o["name"], o.get("attributes", {}).get("color")
        if absent:
            x = absent[0]
            yes = f"Yes, there is a {name}."
            no_x = f"No, there is no {x}, but I can see a {name}."
            distract = [f"Yes, there is a {c}." for c in absent[1:4]]
            rows["multi_obj"].append({**base, "qtype": "obj1_pos", **_mcq(f"Is there a {name} in the image?", yes, [f"No, there is no {name}."] + distract, rng)})
            rows["multi_obj"].append({**base, "qtype": "obj1_neg", **_mcq(f"Is there a {x} in the image?", no_x, [f"Yes, there is a {x}.", f"Yes, there is a {x} next to the {name}."] + distract, rng)})
        others = [c for c in values.get("color", []) if c != color]
        if color and others:
            other = rng.choice(others)
            rows["multi_attr"].append({**base, "qtype": "attr1_pos", **_mcq(f"Is the {name} {color}?", f"Yes, the {name} is {color}.", [f"No, but I can see a {c} {name}." for c in others], rng)})
            rows["multi_attr"].append({**base, "qtype": "attr1_neg", **_mcq(f"Is the {name} {other}?", f"No, but I can see a {color} {name}.", [f"Yes, the {name} is {other}."] + [f"No, but I can see a {c} {name}." for c in others if c != other], rng)})
            rows["wh"].append({**base, "qtype": "wh1_pos", **_mcq(f"What color is the {name}?", f"The {name} is {color}.", [f"The {name} is {c}." for c in others], rng)})
            if absent:
                rows["wh"].append({**base, "qtype": "wh1_neg", **_mcq(f"What color is the {absent[0]}?", f"There is no {absent[0]}, but I can see a {color} {name}.", [f"The {absent[0]} is {c}." for c in values["color"]], rng)})
            else:
                rows["wh"].pop()
        rels = [r for r in g.get("relations", []) if r["predicate"] in OPPOSITE]
        if rels:
            r = rng.choice(rels)
            by_id = {x["id"]: x["name"] for x in objs}
            a, b, p = by_id[r["subject"]], by_id[r["object"]], r["predicate"]
            preds = list(OPPOSITE)
            rows["multi_rel"].append({**base, "qtype": "rel1_pos", **_mcq(f"Is the {a} {p} the {b}?", f"Yes, the {a} is {p} the {b}.", [f"No, the {a} is {q} the {b}." for q in preds if q != p], rng)})
            rows["multi_rel"].append({**base, "qtype": "rel1_neg", **_mcq(f"Is the {a} {OPPOSITE[p]} the {b}?", f"No, the {a} is {p} the {b}.", [f"Yes, the {a} is {OPPOSITE[p]} the {b}."] + [f"No, the {a} is {q} the {b}." for q in preds if q not in (p,)], rng)})
    kept = {setting: items for setting, items in rows.items() if items}
    files = {Path(out) / f"{setting}.jsonl": "".join(json.dumps(r) + "\n" for r in items) for setting, items in kept.items()}
    return dict(zip(kept, write_built_files(files, [annotations])))


QUESTION_TYPES = ("attribute", "adversarial", "comparison", "counting", "relation", "environment", "holistic", "other")


def build_mmhal(annotations: str | Path, out: str | Path, n_items: int = 96, seed: int = 0) -> Path:
    """MMHal-style items (the response_template.json fields), question types cycling in the official order."""
    graphs = [g for g in load_graphs(annotations) if len(g["objects"]) >= 2]
    classes, _ = vocabulary(graphs)
    co = cooccurrence(graphs)
    rng = random.Random(seed)
    items = []
    for i in range(min(n_items, len(graphs))):
        g = graphs[i]
        objs = g["objects"]
        a, b = rng.sample(objs, 2)
        qtype = QUESTION_TYPES[i % 8]
        absent = absent_ranked({o["name"] for o in objs}, co, classes)
        attrs = lambda o: o.get("attributes", {})
        if qtype == "attribute":
            q, gt = f"What color is the {a['name']}?", f"The {a['name']} is {attrs(a).get('color')}."
        elif qtype == "adversarial":
            x = absent[0] if absent else "giraffe"
            q, gt = f"What color is the {x} in the image?", f"There is no {x} in the image."
        elif qtype == "comparison":
            sa, sb = SIZE_ORDER.get(str(attrs(a).get("size")), -1), SIZE_ORDER.get(str(attrs(b).get("size")), -1)
            q, gt = f"Which is larger, the {a['name']} or the {b['name']}?", ("They are the same size." if sa == sb else f"The {a['name'] if sa > sb else b['name']} is larger.")
        elif qtype == "counting":
            q, gt = "How many objects are in the image?", f"There are {len(objs)} objects."
        elif qtype == "relation":
            rel = next((r["predicate"] for r in g.get("relations", []) if r["subject"] == a["id"] and r["object"] == b["id"]), None)
            q, gt = f"Where is the {a['name']} relative to the {b['name']}?", f"The {a['name']} is {rel} the {b['name']}." if rel else f"The {a['name']} is next to the {b['name']}."
        elif qtype == "environment":
            q, gt = "What does the background look like?", "The background is plain and light gray."
        elif qtype == "holistic":
            q, gt = "Describe the image.", "The image shows " + ", ".join(f"a {attrs(o).get('color', '')} {o['name']}".replace("  ", " ") for o in objs) + "."
        else:
            q, gt = f"What shape is the {attrs(a).get('color')} object?", f"The {attrs(a).get('color')} object is a {a['name']}."
        items.append({
            "question_type": qtype, "question_topic": "shapes", "image_id": Path(g["file_name"]).stem, "image_src": g["file_name"],
            "image_content": sorted({o["name"].capitalize() for o in objs}), "question": q, "gt_answer": gt, "model_answer": "",
        })
    return write_built_files({Path(out): json.dumps(items, indent=1)}, [annotations])[0]
