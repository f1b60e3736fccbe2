"""POPE's question sampling (Li et al., 2023) on COCO-format instances: per image 3 present objects ("yes")
and 3 absent ones ("no"), negatives drawn at random, by overall frequency (popular) or by co-occurrence with
the image's objects (adversarial). Written as `<name>_pope_<split>.json`, the official format."""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from ..annotations import absent_ranked, cooccurrence, from_coco
from ..errors import TaskError
from .writing import write_built_files

SPLITS = ("random", "popular", "adversarial")


def build_pope(instances: str | Path, out: str | Path, name: str = "coco", n_images: int = 500, per_image: int = 3,
               min_objects: int = 3, seed: int = 0) -> dict[str, Path]:
    all_graphs = from_coco(Path(instances))  # read once: COCO's instances_val2014.json is 160 MB
    graphs = [g for g in all_graphs if len({o["name"] for o in g["objects"]}) >= min_objects]
    if not graphs:
        raise TaskError(f"{instances}: no image has {min_objects} or more distinct objects")
    rng = random.Random(seed)
    chosen = rng.sample(graphs, min(n_images, len(graphs)))
    classes = sorted({o["name"] for g in all_graphs for o in g["objects"]})
    frequency = Counter(o for g in all_graphs for o in {o["name"] for o in g["objects"]})
    co = cooccurrence(all_graphs)
    out = Path(out)
    files = {}
    for split in SPLITS:
        rows, qid = [], 1
        split_rng = random.Random(f"{seed}-{split}")
        for g in chosen:
            present = sorted({o["name"] for o in g["objects"]})
            positives = split_rng.sample(present, min(per_image, len(present)))
            absent = [c for c in classes if c not in present]
            if split == "random":
                negatives = split_rng.sample(absent, min(per_image, len(absent)))
            elif split == "popular":
                negatives = sorted(absent, key=lambda c: (-frequency[c], c))[:per_image]
            else:
                negatives = absent_ranked(set(present), co, classes, tiebreak=lambda c: (-frequency[c],))[:per_image]
            for pos, neg in zip(positives, negatives):
                for obj, label in ((pos, "yes"), (neg, "no")):
                    rows.append({"question_id": qid, "image": g["file_name"], "text": f"Is there a {obj} in the image?", "label": label})
                    qid += 1
        files[out / f"{name}_pope_{split}.json"] = "".join(json.dumps(r) + "\n" for r in rows)
    return dict(zip(SPLITS, write_built_files(files, [instances])))
