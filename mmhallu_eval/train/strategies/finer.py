"""`finer` (FINER-Tuning): per image and pair type a positive query or a one-slot fine-grained negative (an absent
co-occurring object, another attribute value, the opposite relation), chosen = the grounded answer."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...annotations import OPPOSITE, cooccurrence, vocabulary
from ...options import opt
from ..strategy import Strategy
from .common import PAIR_TYPES, StyleOptions, adversarial_absent, styled_adder


@dataclass
class FinerOptions(StyleOptions):
    neg_ratio: float = opt(0.5, "share of one-slot negatives among the pairs")
    both_polarities: bool = opt(False, "a positive and a one-slot negative per chosen image and type (instead of --neg-ratio)")


def finer_pairs(graphs: list[dict[str, Any]], images: str | Path, mix: dict[str, float], neg_ratio: float = 0.5, seed: int = 0,
                answer_style: str = "sentence", both_polarities: bool = False) -> list[dict[str, Any]]:
    """Per image and type (chosen with probability ∝ mix weight) one pair, positive or one-slot negative
    (`neg_ratio`), or with `both_polarities` a positive and a negative each (as FINER-Tuning builds them; wh
    questions have one form), which doubles the pairs on the same images.

    `answer_style` "sentence" (FINER-Tuning's form: "No, there is no x, but I can see a y.") or "short" (the
    question with the short-answer suffix, chosen/rejected one word: "No" / "Yes", "red" / "blue"): a model tuned on
    sentences hardly moves its one-word answers, so pick the style its benchmarks are answered in."""
    rng = random.Random(seed)
    classes, values = vocabulary(graphs)
    co = cooccurrence(graphs)
    top = max(mix.values()) if mix else 1.0
    pairs: list[dict[str, Any]] = []
    add = styled_adder(pairs, answer_style)

    def one_pair(pid: str, image: str, g: dict[str, Any], ptype: str, neg: bool, meta: dict[str, Any]) -> None:
        objs = g["objects"]
        present = {o["name"] for o in objs}
        by_id = {o["id"]: o for o in objs}
        o = rng.choice(objs)
        name = o["name"]
        if ptype == "obj":
            if not neg:
                add(pid, image, f"Is there a {name} in the image?", (f"Yes, there is a {name} in the image.", "Yes"), (f"No, there is no {name} in the image.", "No"), **meta, slots={"object": name})
            else:
                x = adversarial_absent(present, co, classes, rng)
                if x:
                    add(pid, image, f"Is there a {x} in the image?", (f"No, there is no {x}, but I can see a {name}.", "No"), (f"Yes, there is a {x} in the image.", "Yes"), **meta, slots={"object": x}, swapped={"object": [name, x]})
        elif ptype in ("attr", "wh"):
            attrs = o.get("attributes", {})
            key = "color" if "color" in attrs else next(iter(attrs), None)
            if key is None:
                return
            value = str(attrs[key])
            others = [v for v in values.get(key, []) if v != value]
            if not others:
                return
            other = rng.choice(others)
            if ptype == "wh":
                add(pid, image, f"What {key} is the {name}?", (f"The {name} is {value}.", value), (f"The {name} is {other}.", other), **{**meta, "polarity": "wh"}, slots={"object": name, key: value})
            elif not neg:
                add(pid, image, f"Is the {name} {value}?", (f"Yes, the {name} is {value}.", "Yes"), (f"No, the {name} is not {value}.", "No"), **meta, slots={"object": name, key: value})
            else:
                add(pid, image, f"Is the {name} {other}?", (f"No, but I can see a {value} {name}.", "No"), (f"Yes, the {name} is {other}.", "Yes"), **meta, slots={"object": name, key: other}, swapped={key: [value, other]})
        elif ptype == "rel":
            rels = [r for r in g.get("relations", []) if r["predicate"] in OPPOSITE]
            if not rels:
                return
            r = rng.choice(rels)
            a, b, pred = by_id[r["subject"]]["name"], by_id[r["object"]]["name"], r["predicate"]
            if not neg:
                add(pid, image, f"Is the {a} {pred} the {b}?", (f"Yes, the {a} is {pred} the {b}.", "Yes"), (f"No, the {a} is not {pred} the {b}.", "No"), **meta, slots={"subject": a, "predicate": pred, "object": b})
            else:
                opp = OPPOSITE[pred]
                add(pid, image, f"Is the {a} {opp} the {b}?", (f"No, the {a} is {pred} the {b}.", "No"), (f"Yes, the {a} is {opp} the {b}.", "Yes"), **meta, slots={"subject": a, "predicate": opp, "object": b}, swapped={"predicate": [pred, opp]})

    for g in graphs:
        objs = g["objects"]
        if not objs:
            continue
        image = str(Path(images) / g["file_name"])
        for ptype in PAIR_TYPES:
            if rng.random() >= mix.get(ptype, 0.0) / top:
                continue
            polarities = ([False] if ptype == "wh" else [False, True]) if both_polarities else [rng.random() < neg_ratio]
            for neg in polarities:
                pid = f"finer-{g['image_id']}-{ptype}" + (f"-{'neg' if neg else 'pos'}" if both_polarities else "")
                meta = {"strategy": "finer", "pair_type": ptype, "polarity": "neg" if neg else "pos", "image_id": g["image_id"]}
                one_pair(pid, image, g, ptype, neg, meta)
    return pairs


STRATEGY = Strategy(
    name="finer", description="FINER-Tuning: positive and one-slot fine-grained negative questions (obj, attr, rel, wh)", options=FinerOptions,
    build=lambda ctx, o: finer_pairs(ctx.graphs, ctx.images, ctx.mix, o.neg_ratio, ctx.seed, o.answer_style, o.both_polarities),
)
