"""Preference-pair strategies: `finer` (one-slot fine-grained negatives, FINER-Tuning), `povid` (ground truth vs
rule-injected hallucinations, optionally noised-image answers, POVID), `contrast` (small objects vs their most
co-occurring absent classes, on the same image), `caption_swap` (ground-truth captions vs the same caption with one
object's class swapped in place for a co-occurring absent one), `hadpo` (a model's own hallucinated captions and wrong yes/no
answers, cleaned, HA-DPO)."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable

from ..registry import get_task
from ..task import TaskError
from .pairs import make_pair
from ..annotations import OPPOSITE, cooccurrence, reading_order, vocabulary

PAIR_TYPES = ("obj", "attr", "rel", "wh")
#: pair strategies built from annotations (what `mmhallu loop` can build) and all `mmhallu pairs build` knows
#: (hadpo reads a run on training images)
ANNOTATION_STRATEGIES = ("finer", "povid", "contrast", "caption_swap")
STRATEGIES = (*ANNOTATION_STRATEGIES, "hadpo")
DESCRIBE = "Please describe this image in detail."


def _adversarial_absent(present: set[str], co: dict, classes: list[str], rng: random.Random) -> str | None:
    """The absent class that co-occurs most with the image's objects (POPE's adversarial choice), else random."""
    scores: dict[str, int] = {}
    for p in present:
        for other, n in co.get(p, {}).items():
            if other not in present:
                scores[other] = scores.get(other, 0) + n
    if scores:
        return max(sorted(scores), key=lambda c: scores[c])
    absent = [c for c in classes if c not in present]
    return rng.choice(absent) if absent else None


#: the short-answer prompt of LLaVA-1.5 (and POPE runs): pairs in this style teach the one-word answers that
#: yes/no benchmarks read
SHORT_SUFFIX = "\nAnswer the question using a single word or phrase."
ANSWER_STYLES = ("sentence", "short")


def _styled_adder(pairs: list[dict[str, Any]], answer_style: str) -> Callable[..., None]:
    """add(pid, image, question, chosen, rejected, **meta) with chosen/rejected as (sentence, one word): appends the
    pair in `answer_style` ("short": the question with the short-answer suffix, one-word answers)."""
    if answer_style not in ANSWER_STYLES:
        raise TaskError(f"answer style {answer_style!r}: choose {' or '.join(ANSWER_STYLES)}")

    def add(pid: str, image: str, question: str, chosen: tuple[str, str], rejected: tuple[str, str], **meta: Any) -> None:
        if answer_style == "short":
            pairs.append(make_pair(pid, image, question + SHORT_SUFFIX, chosen[1], rejected[1], answer_style="short", **meta))
        else:
            pairs.append(make_pair(pid, image, question, chosen[0], rejected[0], **meta))
    return add


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
    add = _styled_adder(pairs, answer_style)

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
                x = _adversarial_absent(present, co, classes, rng)
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


def _image_size(g: dict[str, Any], images: str | Path) -> tuple[float, float]:
    """(width, height) from the graph, else from the image file's header."""
    from PIL import Image

    w, h = g.get("width"), g.get("height")
    if w and h:
        return w, h
    path = Path(images) / g["file_name"]
    if not path.is_file():
        raise TaskError(f"image {g['image_id']}: {path} not found (needed for object sizes and positions); check --images")
    with Image.open(path) as im:
        return im.size


def _relative_areas(graphs: list[dict[str, Any]], images: str | Path) -> dict[tuple[int, int], float]:
    """Box area / image area for every object with a box."""
    areas: dict[tuple[int, int], float] = {}
    for g in graphs:
        boxed = [o for o in g["objects"] if o.get("bbox")]
        if not boxed:
            continue
        w, h = _image_size(g, images)
        for o in boxed:
            areas[(g["image_id"], o["id"])] = o["bbox"][2] * o["bbox"][3] / (w * h)
    return areas


def _small_area_limit(areas: dict[tuple[int, int], float], small_quantile: float, needs: str) -> float:
    """The relative box area at the `small_quantile` of all objects: objects at or below it count as small."""
    if not areas:
        raise TaskError(f"{needs}; the annotations have none")
    ranked = sorted(areas.values())
    return ranked[max(0, min(len(ranked), round(small_quantile * len(ranked))) - 1)]


def _most_cooccurring(co: dict[str, Any], k: int) -> dict[str, list[str]]:
    """Per class its k most co-occurring classes (ties by name)."""
    return {c: [o for o, _ in sorted(n.items(), key=lambda kv: (-kv[1], kv[0]))[:k]] for c, n in co.items()}


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
    add = _styled_adder(pairs, answer_style)  # checks the style before any image is read
    areas = _relative_areas(graphs, images)
    limit = _small_area_limit(areas, small_quantile, "contrast pairs need object boxes (bbox)")
    top = _most_cooccurring(cooccurrence(graphs), partners)

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


CAPTION_SWAP_KINDS = ("swap", "swap_partner", "add_partner")
#: the kinds built when none are named
DEFAULT_SWAP_KINDS = ("swap", "swap_partner")
#: caption templates: {objects} lists the objects with their attributes ("a small red circle"), {names} by class only
DEFAULT_CAPTION_TEMPLATES = ("The image shows {objects}.",)


def _object_list(objs: list[dict[str, Any]], with_attributes: bool) -> str:
    attrs = lambda o: [str(v) for v in (o.get("attributes", {}).get("size"), o.get("attributes", {}).get("color")) if v] if with_attributes else []
    parts = [" ".join(["a", *attrs(o), o["name"]]) for o in objs]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def fill_caption(template: str, objs: list[dict[str, Any]]) -> str:
    """A caption template filled with the objects in the given order ({objects} with attributes, {names} without)."""
    text = template.replace("{objects}", _object_list(objs, True)).replace("{names}", _object_list(objs, False))
    return text[:1].upper() + text[1:]


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
    top = {c: first[0] for c, first in _most_cooccurring(co, 1).items() if first}
    areas = _relative_areas(graphs, images)
    limit = _small_area_limit(areas, small_quantile, "caption swap pairs need object boxes (bbox) for the reading order")
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
        objs = reading_order(g["objects"], _image_size(g, images))
        present = {o["name"] for o in objs}
        if "swap" in kinds:
            for k in range(len(templates)):
                x = _adversarial_absent(present, co, classes, rng)
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


def describe(objs: list[dict[str, Any]]) -> str:
    """A ground-truth description built from the scene graph."""
    return fill_caption(DEFAULT_CAPTION_TEMPLATES[0], objs)


OBJECT_ORDERS = ("reading", "annotation")


def povid_pairs(graphs: list[dict[str, Any]], images: str | Path, seed: int = 0, injector: Callable[[str], str] | None = None,
                order: str = "annotation") -> list[dict[str, Any]]:
    """chosen = the ground-truth description; rejected = it with a co-occurring absent object added and one
    attribute changed (rules), or rewritten by an LLM `injector` when given.

    `order`: the description names the objects in "reading" order (top to bottom by thirds, left to right; needs
    boxes, else annotation order) or in "annotation" order (the file's, which is arbitrary)."""
    if order not in OBJECT_ORDERS:
        raise TaskError(f"object order {order!r}: choose {' or '.join(OBJECT_ORDERS)}")
    rng = random.Random(seed)
    classes, values = vocabulary(graphs)
    co = cooccurrence(graphs)
    pairs = []
    for g in graphs:
        objs = g["objects"]
        if not objs:
            continue
        if order == "reading" and any(o.get("bbox") for o in objs):
            objs = reading_order(objs, _image_size(g, images))
        truth = describe(objs)
        if injector is not None:
            rejected, how = injector(truth), "llm"
        else:
            fake = [dict(o, attributes=dict(o.get("attributes", {}))) for o in objs]
            changes = []
            x = _adversarial_absent({o["name"] for o in objs}, co, classes, rng)
            if x:
                # the injected object is described like the real ones (every attribute kind they carry), so the
                # pair differs only in what is hallucinated, not in a form the model could learn to avoid instead
                kinds = sorted({k for o in objs for k in o.get("attributes", {}) if values.get(k)})
                fake.insert(rng.randrange(len(fake) + 1), {"name": x, "attributes": {k: rng.choice(values[k]) for k in kinds}})
                changes.append(f"added {x}")
            o = rng.choice([f for f in fake if f["name"] != x] or fake)
            if o.get("attributes", {}).get("color") and len(values.get("color", [])) > 1:
                new = rng.choice([c for c in values["color"] if c != o["attributes"]["color"]])
                changes.append(f"{o['name']} {o['attributes']['color']}→{new}")
                o["attributes"]["color"] = new
            rejected, how = describe(fake), "; ".join(changes)
        if rejected.strip() == truth.strip():
            continue
        pairs.append(make_pair(f"povid-{g['image_id']}", str(Path(images) / g["file_name"]), DESCRIBE, truth, rejected,
                               strategy="povid", pair_type="caption", image_id=g["image_id"], injected=how, object_order=order))
    return pairs


def noised_image_pairs(graphs: list[dict[str, Any]], images: str | Path, answer_fn: Callable[[list[str]], list[str]], out_dir: Path, strength: float = 0.5, seed: int = 0) -> list[dict[str, Any]]:
    """POVID's second stage: rejected = the model's own description of a noised copy of the image
    (forward-diffusion Gaussian noise x_t = √ᾱ·x + √(1−ᾱ)·ε with ᾱ = 1 − strength), chosen = ground truth."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    noisy_paths, kept = [], []
    for g in graphs:
        if not g["objects"]:
            continue
        src = Path(images) / g["file_name"]
        x = np.asarray(Image.open(src).convert("RGB"), dtype=np.float32) / 127.5 - 1.0
        abar = 1.0 - strength
        xt = np.sqrt(abar) * x + np.sqrt(1 - abar) * rng.standard_normal(x.shape).astype(np.float32)
        path = out_dir / f"noised_{g['image_id']}.png"
        Image.fromarray(((np.clip(xt, -1, 1) + 1) * 127.5).astype(np.uint8)).save(path)
        noisy_paths.append(str(path))
        kept.append(g)
    answers = answer_fn(noisy_paths)
    pairs = []
    for g, ans in zip(kept, answers):
        truth = describe(g["objects"])
        if ans.strip() and ans.strip() != truth:
            pairs.append(make_pair(f"povid-noise-{g['image_id']}", str(Path(images) / g["file_name"]), DESCRIBE, truth, ans,
                                   strategy="povid", pair_type="noised", image_id=g["image_id"], noise_strength=strength))
    return pairs


def hadpo_pairs(run_dir: str | Path, reference_captions: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """From a run on *training* images: CHAIR captions with hallucinated objects (chosen = the caption without
    the sentences that mention them, or a reference caption) and wrong POPE answers (chosen = the right answer)."""
    import json

    import nltk

    run_dir = Path(run_dir)
    pairs = []
    chair_samples = run_dir / "chair" / "samples.jsonl"
    if chair_samples.exists():
        spec = get_task("chair")
        if spec.text_objects is None:
            raise TaskError("the chair task does not expose text_objects; cannot clean captions")
        for line in chair_samples.read_text().splitlines():
            r = json.loads(line)
            parsed = r.get("parsed") or {}
            bad = {c for _, c in parsed.get("hallucinated", [])}
            if r.get("error") or not bad or not r.get("images"):
                continue
            kept = [s for s in nltk.sent_tokenize(r["response"]) if not (set(spec.text_objects(s, r["metadata"])) & bad)]
            chosen = " ".join(kept) or (reference_captions or {}).get(int(r["metadata"]["image_id"]), "")
            if not chosen or chosen.strip() == r["response"].strip():
                continue
            pairs.append(make_pair(f"hadpo-chair-{r['id']}", r["images"][0], r["prompt"], chosen, r["response"],
                                   strategy="hadpo", pair_type="caption", image_id=r["metadata"]["image_id"], hallucinated=sorted(bad)))
    pope_samples = run_dir / "pope" / "samples.jsonl"
    if pope_samples.exists():
        for line in pope_samples.read_text().splitlines():
            r = json.loads(line)
            if r.get("error") or r.get("correct") is not False or not r.get("images"):
                continue
            right = "Yes" if r["target"] == "yes" else "No"
            if r["response"].strip() == right:
                continue
            pairs.append(make_pair(f"hadpo-pope-{r['id']}", r["images"][0], r["prompt"], right, r["response"],
                                   strategy="hadpo", pair_type="yesno", question_id=r["metadata"].get("question_id")))
    if not pairs:
        raise TaskError(f"{run_dir}: no chair or pope failures to build HA-DPO pairs from")
    return pairs
