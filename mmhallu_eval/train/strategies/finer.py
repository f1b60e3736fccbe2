"""`finer` (FINER-Tuning): per image and pair type a positive query or a one-slot fine-grained negative (an absent
co-occurring object, another attribute value, the opposite relation), chosen = the grounded answer."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ...annotations import OPPOSITE, cooccurrence, vocabulary
from ...errors import TaskError
from ...options import opt
from ..strategy import Strategy
from .common import PAIR_TYPES, StyleOptions, adversarial_absent, styled_adder


@dataclass
class FinerOptions(StyleOptions):
    neg_ratio: float = opt(0.5, "share of one-slot negatives among the pairs")
    both_polarities: bool = opt(False, "a positive and a one-slot negative per chosen image and type (instead of --neg-ratio)")

    def __post_init__(self) -> None:
        if not 0 <= self.neg_ratio <= 1:
            raise TaskError(f"neg_ratio {self.neg_ratio}: choose a share in [0, 1]")


@dataclass
class _Draw:
    """What every pair of one build draws from: the random stream, the dataset's vocabulary and co-occurrences, and
    where pairs go."""

    rng: random.Random
    classes: list[str]
    values: dict[str, list[Any]]
    co: Any
    add: Callable[..., None]


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
    pairs: list[dict[str, Any]] = []
    draw = _Draw(rng, classes, values, cooccurrence(graphs), styled_adder(pairs, answer_style))
    top = max(mix.values()) if mix else 1.0
    if top <= 0:
        raise TaskError(f"pair-type mix {mix}: at least one type needs a weight above 0")
    for g in graphs:
        if not g["objects"]:
            continue
        image = str(Path(images) / g["file_name"])
        for ptype in PAIR_TYPES:
            if rng.random() >= mix.get(ptype, 0.0) / top:
                continue
            polarities = ([False] if ptype == "wh" else [False, True]) if both_polarities else [rng.random() < neg_ratio]
            for neg in polarities:
                pid = f"finer-{g['image_id']}-{ptype}" + (f"-{'neg' if neg else 'pos'}" if both_polarities else "")
                meta = {"strategy": "finer", "pair_type": ptype, "polarity": "neg" if neg else "pos", "image_id": g["image_id"]}
                o = rng.choice(g["objects"])  # drawn for every type, so that each type's pairs keep their stream
                _BUILDERS[ptype](draw, pid, image, g, o, neg, meta)
    return pairs


def _object_pair(d: _Draw, pid: str, image: str, g: dict[str, Any], o: dict[str, Any], neg: bool, meta: dict[str, Any]) -> None:
    name = o["name"]
    if not neg:
        d.add(pid, image, f"Is there a {name} in the image?", (f"Yes, there is a {name} in the image.", "Yes"), (f"No, there is no {name} in the image.", "No"), **meta, slots={"object": name})
        return
    x = adversarial_absent({ob["name"] for ob in g["objects"]}, d.co, d.classes, d.rng)
    if x:
        d.add(pid, image, f"Is there a {x} in the image?", (f"No, there is no {x}, but I can see a {name}.", "No"), (f"Yes, there is a {x} in the image.", "Yes"), **meta, slots={"object": x}, swapped={"object": [name, x]})


def _attribute_pair(d: _Draw, pid: str, image: str, g: dict[str, Any], o: dict[str, Any], neg: bool, meta: dict[str, Any]) -> None:
    """An attribute question (`meta["pair_type"]` "attr": yes/no; "wh": which value) about the object's colour, else
    its first attribute; the other value is one the dataset gives that attribute elsewhere."""
    name, attrs = o["name"], o.get("attributes", {})
    key = "color" if "color" in attrs else next(iter(attrs), None)
    if key is None:
        return
    value = str(attrs[key])
    others = [v for v in d.values.get(key, []) if v != value]
    if not others:
        return
    other = d.rng.choice(others)
    if meta["pair_type"] == "wh":
        d.add(pid, image, f"What {key} is the {name}?", (f"The {name} is {value}.", value), (f"The {name} is {other}.", other), **{**meta, "polarity": "wh"}, slots={"object": name, key: value})
    elif not neg:
        d.add(pid, image, f"Is the {name} {value}?", (f"Yes, the {name} is {value}.", "Yes"), (f"No, the {name} is not {value}.", "No"), **meta, slots={"object": name, key: value})
    else:
        d.add(pid, image, f"Is the {name} {other}?", (f"No, but I can see a {value} {name}.", "No"), (f"Yes, the {name} is {other}.", "Yes"), **meta, slots={"object": name, key: other}, swapped={key: [value, other]})


def _relation_pair(d: _Draw, pid: str, image: str, g: dict[str, Any], o: dict[str, Any], neg: bool, meta: dict[str, Any]) -> None:
    rels = [r for r in g.get("relations", []) if r["predicate"] in OPPOSITE]
    if not rels:
        return
    r = d.rng.choice(rels)
    by_id = {ob["id"]: ob for ob in g["objects"]}
    a, b, pred = by_id[r["subject"]]["name"], by_id[r["object"]]["name"], r["predicate"]
    if not neg:
        d.add(pid, image, f"Is the {a} {pred} the {b}?", (f"Yes, the {a} is {pred} the {b}.", "Yes"), (f"No, the {a} is not {pred} the {b}.", "No"), **meta, slots={"subject": a, "predicate": pred, "object": b})
        return
    opp = OPPOSITE[pred]
    d.add(pid, image, f"Is the {a} {opp} the {b}?", (f"No, the {a} is {pred} the {b}.", "No"), (f"Yes, the {a} is {opp} the {b}.", "Yes"), **meta, slots={"subject": a, "predicate": opp, "object": b}, swapped={"predicate": [pred, opp]})


_BUILDERS: dict[str, Callable[..., None]] = {"obj": _object_pair, "attr": _attribute_pair, "wh": _attribute_pair, "rel": _relation_pair}


STRATEGY = Strategy(
    name="finer", description="FINER-Tuning: positive and one-slot fine-grained negative questions (obj, attr, rel, wh)", options=FinerOptions,
    build=lambda ctx, o: finer_pairs(ctx.graphs, ctx.images, ctx.mix, o.neg_ratio, ctx.seed, o.answer_style, o.both_polarities),
)
