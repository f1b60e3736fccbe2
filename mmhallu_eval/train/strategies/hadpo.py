"""`hadpo` (HA-DPO): pairs from a run of the model on *training* images — every task that declares how to turn one
of its failures into a preference pair (`Capabilities.failure_pair`: CHAIR cleans a hallucinated caption, POPE
pairs a wrong yes/no answer with the right one) contributes its failures."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import TaskError
from ...files import iter_jsonl, read_json
from ...options import opt
from ...registry import get_task, task_names
from ..pairs import make_pair
from ..strategy import PairContext, Strategy


@dataclass
class HadpoOptions:
    reference_captions: str | None = opt(None, "COCO captions file: chosen captions where cleaning leaves nothing")


def _references(path: str | None) -> dict[int, str]:
    if not path:
        return {}
    refs: dict[int, str] = {}
    for ann in read_json(path).get("annotations", []):
        refs.setdefault(ann["image_id"], ann["caption"])
    return refs


def hadpo_pairs(run_dir: str | Path, reference_captions: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """Failures of every task in the run that can pair them, task by task in name order."""
    run_dir = Path(run_dir)
    known = set(task_names())
    context = {"reference_captions": reference_captions or {}}
    pairs = []
    for samples in sorted(run_dir.glob("*/samples.jsonl")):
        task = samples.parent.name
        pair_of = get_task(task).capabilities.failure_pair if task in known else None
        if pair_of is None:
            continue
        for _, r in iter_jsonl(samples):
            if r.get("error") or not r.get("images"):
                continue
            made = pair_of(r, context)
            if made is not None:
                chosen, rejected, provenance = made
                pairs.append(make_pair(f"hadpo-{task}-{r['id']}", r["images"][0], r["prompt"], chosen, rejected, strategy="hadpo", **provenance))
    if not pairs:
        raise TaskError(f"{run_dir}: no failures to build HA-DPO pairs from (no task of the run declares them, or every answer was right)")
    return pairs


def build(ctx: PairContext, o: HadpoOptions) -> list[dict[str, Any]]:
    if not ctx.run:
        raise TaskError("hadpo needs --run RUN_DIR (a run of the model on training images)")
    return hadpo_pairs(ctx.run, _references(o.reference_captions))


STRATEGY = Strategy(name="hadpo", description="HA-DPO: the model's own failures on training images (a run), cleaned or corrected",
                    options=HadpoOptions, build=build, needs=("run",))
