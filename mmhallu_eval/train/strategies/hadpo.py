"""`hadpo` (HA-DPO): pairs from a run of the model on *training* images — every task that declares how to turn one
of its failures into a preference pair (`Capabilities.failure_pair`: CHAIR cleans a hallucinated caption, POPE
pairs a wrong yes/no answer with the right one) contributes its failures."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...annotations import check_coco_captions
from ...errors import TaskError
from ...files import iter_jsonl, read_json, recorded_cwd, written_from
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
    for ann in check_coco_captions(read_json(path), f"--reference-captions {path}"):
        refs.setdefault(ann["image_id"], ann["caption"])
    return refs


def hadpo_pairs(run_dir: str | Path, reference_captions: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """Failures of every task in the run that can pair them, task by task in name order."""
    run_dir = Path(run_dir)
    known = set(task_names())
    context = {"reference_captions": reference_captions or {}}
    if not run_dir.is_dir():
        raise TaskError(f"--run {run_dir}: folder not found")
    tasks = sorted(p.parent for p in run_dir.glob("*/result.json"))
    if not tasks:
        raise TaskError(f"{run_dir}: no <task>/result.json inside; give --run a run folder written by `mmhallu run`")
    started_in = recorded_cwd(run_dir / "manifest.json")  # the run's relative image names are relative to it
    pairs = []
    for folder in tasks:
        task = folder.name
        pair_of = get_task(task).capabilities.failure_pair if task in known else None
        if pair_of is None:
            continue
        samples = folder / "samples.jsonl"
        if not samples.is_file():
            raise TaskError(f"{samples}: not found, so {task}'s answers are missing; rerun the command that wrote {run_dir} "
                            "(`mmhallu run` resumes from its cache) to write them again")
        for lineno, r in iter_jsonl(samples):
            if r.get("error") or not r.get("images"):
                continue
            if not isinstance(r.get("id"), str) or not isinstance(r.get("prompt"), str) or not isinstance(r["images"], list) \
                    or not isinstance(r["images"][0], str):
                raise TaskError(f"{samples}:{lineno}: a record needs its id and prompt as text and images as a list of file names")
            if isinstance(r.get("answer"), str):  # a reasoning model's: the answer after its reasoning, which was scored
                r = {**r, "response": r["answer"]}
            try:
                made = pair_of(r, context)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a record not as `mmhallu run` wrote it
                raise TaskError(f"{samples}:{lineno}: record {r['id']!r} cannot be read as a {task} answer ({type(exc).__name__}: {exc}); "
                                "the file is not as `mmhallu run` wrote it") from None
            if made is not None:
                chosen, rejected, provenance = made
                image = written_from(r["images"][0], started_in)
                pairs.append(make_pair(f"hadpo-{task}-{r['id']}", image, r["prompt"], chosen, rejected, strategy="hadpo", **provenance))
    if not pairs:
        raise TaskError(f"{run_dir}: no failures to build HA-DPO pairs from (no task of the run declares them, or every answer was right)")
    return pairs


def build(ctx: PairContext, o: HadpoOptions) -> list[dict[str, Any]]:
    if not ctx.run:
        raise TaskError("hadpo needs --run RUN_DIR (a run of the model on training images)")
    return hadpo_pairs(ctx.run, _references(o.reference_captions))


STRATEGY = Strategy(name="hadpo", description="HA-DPO: the model's own failures on training images (a run), cleaned or corrected",
                    options=HadpoOptions, build=build, needs=("run",))
