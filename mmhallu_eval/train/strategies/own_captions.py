"""`own_captions` pairs: best-of-n on the model's own captions. Sample several captions per training image from the
model being tuned, judge each against the image's annotations with the CHAIR parser, and pair a caption that names
an absent object (rejected) with one of the same image that names none and covers at least as many of the image's
objects (chosen).

Why: pairs written from annotations (FINER, POVID, caption_swap) show the model hallucinations it might make; these
are the ones it does make, in its own words, so DPO moves probability between its own outputs (on-policy, as
RLHF-V and HA-DPO collect theirs). The annotations are the judge, so no reward model or LLM is needed."""
from __future__ import annotations

import difflib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ...backends import create_backend
from ...errors import TaskError
from ...files import atomic_write_jsonl, iter_jsonl
from ...options import opt
from ...prompts import DESCRIBE
from ...reasoning import UNFINISHED, split_reasoning
from ...registry import get_task
from ...types import GenerationConfig, Request, user_message
from ..pairs import make_pair
from ..strategy import PairContext, Strategy

CAPTIONS_FILE = "own_captions.jsonl"


@dataclass
class OwnCaptionsOptions:
    own_samples: int = opt(16, "captions sampled per training image from the base model (best-of-n)")
    own_temperature: float = opt(0.7, "sampling temperature")
    own_max_per_image: int = opt(4, "at most this many pairs (distinct hallucinating captions) per image")
    own_repeat: int = opt(1, "write each pair this many times (its weight in the DPO mix)")
    own_synonyms: str | None = opt(None, "synonyms file for judging the captions (default: the judging task's own synonyms option)")


def caption_judge(tasks: list[str], task_args: dict[str, dict[str, Any]], synonyms: str | None = None) -> Callable[[str], list[str]]:
    """The object mentions of a caption, by the first evaluation task that declares them (`Capabilities.mentions`),
    with that task's synonyms option unless `synonyms` is given."""
    for name in tasks:
        spec = get_task(name)
        if spec.capabilities.mentions is not None:
            options = spec.parse_options(task_args.get(name, {}))
            meta = {"synonyms": synonyms or getattr(options, "synonyms", None)}
            mentions = spec.capabilities.mentions
            return lambda text: list(mentions(text, meta))
    raise TaskError(f"own_captions judges captions with an evaluation task that names the objects a text mentions; none of {', '.join(tasks) or '(no tasks)'} does")


def sample_captions(model: str, graphs: list[dict[str, Any]], images: str | Path, judge: Callable[[str], list[str]], n: int = 16,
                    temperature: float = 0.7, seed: int = 0, backend: str = "transformers", backend_args: dict[str, Any] | None = None,
                    batch_size: int = 32, max_new_tokens: int = 128, prompt: str = DESCRIBE,
                    log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """`n` sampled captions per image of `graphs`, each with the CHAIR objects it names, the image's ground-truth
    objects (the annotation names through the same parser) and the hallucinated ones (named, not in the image)."""
    if n < 2:
        raise TaskError(f"own_captions: {n} sample(s) per image; best-of-n needs at least 2")
    if temperature <= 0:
        raise TaskError(f"own_captions: temperature {temperature}; sampling needs a temperature above 0")
    truth_of: dict[str, list[str]] = {}

    def truth(g: dict[str, Any]) -> set[str]:
        out: set[str] = set()
        for o in g["objects"]:
            if o["name"] not in truth_of:
                truth_of[o["name"]] = judge(f"There is a {o['name']}.")
            out.update(truth_of[o["name"]])
        return out

    gen = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature)
    todo = [(g, k) for g in graphs if g["objects"] for k in range(n)]
    try:
        import torch

        torch.manual_seed(seed)  # the transformers backend samples with torch's generator
    except ImportError:
        pass
    be = create_backend(backend, model=model, **(backend_args or {}))
    rows: list[dict[str, Any]] = []
    try:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            requests = [Request(id=f"{g['image_id']}-{k}", messages=user_message(prompt, 1), images=[str(Path(images) / g["file_name"])], generation=gen)
                        for g, k in chunk]
            for (g, k), req, resp in zip(chunk, requests, be.generate(requests)):
                caption = split_reasoning(resp.text, be.opens_reasoning)  # a reasoning model's caption is its answer
                error = resp.error or (f"{UNFINISHED}: the caption's reasoning block never closes" if caption.unfinished else None)
                if error:
                    rows.append({"image_id": g["image_id"], "sample": k, "image": req.images[0], "error": error})
                    continue
                named, gt = judge(caption.answer), truth(g)
                rows.append({"image_id": g["image_id"], "sample": k, "image": req.images[0], "prompt": prompt, "caption": caption.answer,
                             "objects": named, "truth": sorted(gt), "hallucinated": sorted({c for c in named if c not in gt})})
            if (start // batch_size) % 20 == 0:
                log(f"[own_captions] sampled {min(start + batch_size, len(todo))}/{len(todo)} captions")
    finally:
        be.close()
    return rows


def _opening(caption: str) -> list[str]:
    return caption.lower().split()[:2]


def own_caption_pairs(samples: list[dict[str, Any]], max_per_image: int = 4, repeat: int = 1, seed: int = 0) -> list[dict[str, Any]]:
    """Per image, up to `max_per_image` distinct hallucinating captions (rejected), each paired with a clean caption
    (chosen) that covers at least as many true objects: one that opens the same way when there is one (a pair across
    caption styles teaches the style, not the object), then the one covering most, then the closest in wording. `repeat` > 1 writes each pair that many times (its weight in
    the DPO mix)."""
    if max_per_image < 1 or repeat < 1:
        raise TaskError(f"own_captions: max_per_image {max_per_image} and repeat {repeat} must be at least 1")
    rng = random.Random(seed)
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for s in samples:
        if not s.get("error"):
            by_image.setdefault(s["image_id"], []).append(s)
    covered = lambda s: len(set(s["objects"]) & set(s["truth"]))
    pairs: list[dict[str, Any]] = []
    for image_id in sorted(by_image, key=str):
        group = by_image[image_id]
        seen: set[str] = set()
        bad = [s for s in group if s["hallucinated"] and not (s["caption"].strip() in seen or seen.add(s["caption"].strip()))]
        rng.shuffle(bad)
        made = 0
        for b in bad:
            clean = [s for s in group if not s["hallucinated"] and covered(s) >= covered(b) and s["caption"].strip()]
            if not clean:
                continue
            words = b["caption"].split()
            same = [s for s in clean if _opening(s["caption"]) == _opening(b["caption"])]
            chosen = max(same or clean, key=lambda s: (covered(s), difflib.SequenceMatcher(None, s["caption"].split(), words).ratio(), -s["sample"]))
            for r in range(repeat):
                pairs.append(make_pair(f"own-{image_id}-{b['sample']}" + (f"-r{r}" if repeat > 1 else ""), b["image"], b["prompt"], chosen["caption"], b["caption"],
                                       strategy="own_captions", pair_type="caption", image_id=image_id, hallucinated=b["hallucinated"],
                                       samples=[chosen["sample"], b["sample"]]))
            made += 1
            if made >= max_per_image:
                break
    return pairs


def prepare(ctx: PairContext, o: OwnCaptionsOptions) -> dict[str, Any]:
    """Sample and judge the captions once (a loop stage); the pairs are built from the saved file."""
    if not ctx.model:
        raise TaskError("own_captions samples the model being tuned: build these pairs with `mmhallu loop --strategy own_captions`")
    judge = caption_judge(ctx.tasks, ctx.task_args, o.own_synonyms)
    ctx.log(f"[loop] own_captions: sampling {o.own_samples} captions per training image at temperature {o.own_temperature}")
    rows = sample_captions(ctx.model, ctx.graphs, ctx.images, judge, o.own_samples, o.own_temperature, ctx.seed, backend_args=ctx.backend_args,
                           batch_size=ctx.batch_size or 32, max_new_tokens=ctx.max_new_tokens or 128, log=ctx.log)
    path = ctx.work_dir / CAPTIONS_FILE
    atomic_write_jsonl(path, rows)
    bad = sum(1 for r in rows if r.get("hallucinated"))
    failed = sum(1 for r in rows if r.get("error"))
    ctx.log(f"[loop] own_captions: {len(rows)} captions, {bad} name an absent object, {failed} failed")
    return {"captions": str(path), "n": len(rows), "hallucinating": bad, "failed": failed}


def build(ctx: PairContext, o: OwnCaptionsOptions) -> list[dict[str, Any]]:
    path = ctx.work_dir / CAPTIONS_FILE
    if not path.is_file():
        raise TaskError("own_captions samples the model being tuned: build these pairs with `mmhallu loop --strategy own_captions`")
    return own_caption_pairs([row for _, row in iter_jsonl(path)], o.own_max_per_image, o.own_repeat, ctx.seed)


STRATEGY = Strategy(name="own_captions", description="best-of-n on the base model's own sampled captions, judged against the annotations",
                    options=OwnCaptionsOptions, build=build, needs=("annotations", "model"), prepare=prepare)
