"""The preference-pair format (TRL's vision preference layout + provenance), I/O and the contamination guard."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import MISSING, image_digest, open_image
from ..files import atomic_write_json, atomic_write_jsonl, iter_jsonl, recorded_cwd, written_from
from ..registry import get_task
from ..task import TaskError
from ..types import Pair, user_message

REQUIRED = ("images", "prompt", "chosen", "rejected")


def assistant_turn(text: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def make_pair(pair_id: str, image: str, question: str, chosen: str, rejected: str, **provenance: Any) -> Pair:
    """One preference pair: conversational prompt with an image, chosen/rejected assistant turns, provenance."""
    if chosen.strip() == rejected.strip():
        raise ValueError(f"pair {pair_id}: chosen and rejected are identical")
    return {
        "id": pair_id, "images": [str(image)], "prompt": user_message(question),
        "chosen": assistant_turn(chosen), "rejected": assistant_turn(rejected), **provenance,
    }


def read_pairs(path: str | Path) -> list[Pair]:
    """The pairs of a pairs.jsonl, each checked before any model loads (`check_pair`) with images that exist and
    decode. A bad line is named here, not met as an Arrow or processor error deep inside training."""
    pairs = []
    readable: set[str] = set()
    built_in = recorded_cwd(Path(path).with_suffix(".meta.json"))  # the folder `pairs build` ran in
    for lineno, row in iter_jsonl(path):
        where = f"{path}:{lineno}"
        check_pair(row, where)
        row["images"] = [written_from(im, built_in) for im in row["images"]]
        for im in row["images"]:
            if im not in readable:
                try:
                    open_image(im)
                except FileNotFoundError:
                    relative = "" if Path(im).is_absolute() else (f" (a relative name is read from the folder the pairs were built in, {built_in}, "
                                                                 f"or else from the current folder)" if built_in else " (read from the current folder)")
                    raise TaskError(f"{where}: image not found: {im}{relative}") from None
                except OSError as exc:  # UnreadableImage, naming the file
                    raise TaskError(f"{where}: {exc}") from None
                readable.add(im)
        pairs.append(row)
    if not pairs:
        raise TaskError(f"{path}: no preference pairs")
    return pairs


def check_pair(row: Any, where: str) -> None:
    """TRL's vision preference layout: a conversational prompt with one image placeholder per image, chosen and
    rejected assistant turns, and the images as a list of file names."""
    if not isinstance(row, dict):
        raise TaskError(f"{where}: a preference pair is an object with {', '.join(REQUIRED)} (got {type(row).__name__})")
    missing = [f for f in REQUIRED if f not in row]
    if missing:
        raise TaskError(f"{where}: a preference pair needs {', '.join(REQUIRED)} (missing {', '.join(missing)})")
    for name in ("prompt", "chosen", "rejected"):
        _check_turns(row[name], name, where)
    images = row["images"]
    if not isinstance(images, list) or not images or not all(isinstance(im, str) and im for im in images):
        raise TaskError(f"{where}: images must be a list of image file names, e.g. [\"images/0001.png\"] (got {images!r:.80})")
    placeholders = sum(1 for turn in row["prompt"] if isinstance(turn["content"], list)
                       for part in turn["content"] if part["type"] == "image")  # parts checked by _check_turns
    if placeholders != len(images):
        raise TaskError(f"{where}: the prompt has {placeholders} image placeholder(s) ({{\"type\": \"image\"}}) for {len(images)} image(s); "
                        "give one per image")


def _is_part(part: Any) -> bool:
    """One part of a message's content, as chat templates read it: {"type": "text", "text": ...} or {"type": "image"}."""
    return isinstance(part, dict) and (part.get("type") == "image" or (part.get("type") == "text" and isinstance(part.get("text"), str)))


def _check_turns(turns: Any, name: str, where: str) -> None:
    """A conversation: a list of {"role": ..., "content": text or a list of parts} messages."""
    ok = isinstance(turns, list) and bool(turns) and all(
        isinstance(t, dict) and isinstance(t.get("role"), str) and
        (isinstance(t.get("content"), str) or (isinstance(t.get("content"), list) and all(_is_part(p) for p in t["content"]))) for t in turns)
    if not ok:
        raise TaskError(f"{where}: {name} must be a list of messages such as "
                        f"[{{\"role\": \"{'user' if name == 'prompt' else 'assistant'}\", \"content\": [{{\"type\": \"text\", \"text\": \"...\"}}]}}] "
                        f"(got {turns!r:.80})")


@dataclass
class PairSet:
    pairs: list[dict[str, Any]]
    dropped_contaminated: int = 0
    mix: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def write(self, out: str | Path) -> None:
        out = Path(out)
        atomic_write_jsonl(out, self.pairs)
        counts: dict[str, int] = {}
        for p in self.pairs:
            key = f"{p.get('strategy')}/{p.get('pair_type')}"
            counts[key] = counts.get(key, 0) + 1
        atomic_write_json(out.with_suffix(".meta.json"), {
            "n_pairs": len(self.pairs), "counts": counts, "dropped_contaminated": self.dropped_contaminated, "mix": self.mix, **self.info,
            #: relative image names in the pairs are relative to this folder (`read_pairs` resolves them there)
            "cwd": os.getcwd(),
        })


def eval_images(tasks: list[str], task_args: dict[str, dict[str, str]]) -> tuple[set[str], set[str]]:
    """(basenames, content digests) of every image the named evaluation tasks use."""
    names: set[str] = set()
    digests: set[str] = set()
    for name in tasks:
        spec = get_task(name)
        for sample in spec.load(task_args.get(name, {})):
            for im in sample.images:
                if isinstance(im, (str, Path)):
                    names.add(Path(im).name)
                digest = image_digest(im)
                if not digest.startswith(MISSING):
                    digests.add(digest)
    return names, digests


def drop_contaminated(pairs: list[dict[str, Any]], tasks: list[str], task_args: dict[str, dict[str, str]]) -> tuple[list[dict[str, Any]], int]:
    """Refuse pairs whose image is an evaluation image (same file name or same pixels)."""
    if not tasks:
        return pairs, 0
    names, digests = eval_images(tasks, task_args)
    kept = [p for p in pairs if not any(Path(im).name in names or image_digest(im) in digests for im in p["images"])]
    return kept, len(pairs) - len(kept)
