"""`povid` (POVID): ground-truth descriptions vs the same description with a co-occurring absent object added and an
attribute changed (rules, or an LLM injector), and optionally the model's own description of a noised image."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from ...annotations import cooccurrence, reading_order, vocabulary
from ...errors import TaskError
from ...options import opt
from ...prompts import DESCRIBE
from ..pairs import make_pair
from ..strategy import PairContext, Strategy
from .common import adversarial_absent, describe, image_size

OBJECT_ORDERS = ("reading", "annotation")


@dataclass
class PovidOptions:
    object_order: Literal["annotation", "reading"] = opt("annotation", "name the objects in the annotations' order or in reading order "
                                                         "(top to bottom by thirds, left to right; needs boxes)")
    noise_model: str | None = opt(None, "also pair ground truth with this model's descriptions of noised images")
    noise_strength: float = opt(0.5, "forward-diffusion noise level 1-alpha_bar in (0, 1)")
    injector_model: str | None = opt(None, "an LLM that injects hallucinations instead of the rules (OpenAI-compatible)")
    injector_base_url: str | None = opt(None, "base URL of the injector LLM")

    def __post_init__(self) -> None:
        if not 0 < self.noise_strength < 1:  # 1 - strength is ᾱ, under a square root
            raise TaskError(f"noise_strength {self.noise_strength}: choose a level in (0, 1)")


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
            objs = reading_order(objs, image_size(g, images))
        truth = describe(objs)
        if injector is not None:
            rejected, how = injector(truth), "llm"
        else:
            fake = [dict(o, attributes=dict(o.get("attributes", {}))) for o in objs]
            changes = []
            x = adversarial_absent({o["name"] for o in objs}, co, classes, rng)
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


INJECT = "Rewrite this image description so that it adds one object that is not there and changes one attribute. Keep the style; output only the description.\n\n"


def build(ctx: PairContext, o: PovidOptions) -> list[dict[str, Any]]:
    injector = None
    if o.injector_model:
        from ...backends.openai_chat import ChatClient

        client = ChatClient(o.injector_base_url, o.injector_model)
        injector = lambda text: client.complete_one([{"role": "user", "content": INJECT + text}]).text or text
    pairs = povid_pairs(ctx.graphs, ctx.images, ctx.seed, injector, o.object_order)
    if o.noise_model:
        from ...backends import create_backend
        from ...types import GenerationConfig, Request, user_message

        backend = create_backend("transformers", model=o.noise_model)
        gen = GenerationConfig(max_new_tokens=96)
        answer = lambda paths: [r.text for r in backend.generate([Request(str(i), user_message(DESCRIBE), [p], gen) for i, p in enumerate(paths)])]
        pairs += noised_image_pairs(ctx.graphs, ctx.images, answer, ctx.work_dir / "noised", o.noise_strength, ctx.seed)
    return pairs


STRATEGY = Strategy(name="povid", description="POVID: ground truth vs injected hallucinations (rules or an LLM), optionally noised-image answers",
                    options=PovidOptions, build=build)
