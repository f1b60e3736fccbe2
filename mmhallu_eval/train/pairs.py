"""The preference-pair format (TRL's vision preference layout + provenance), I/O and the contamination guard."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import MISSING, image_digest
from ..files import atomic_write_json, atomic_write_jsonl, iter_jsonl
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
    pairs = []
    for lineno, row in iter_jsonl(path):
        missing = [f for f in REQUIRED if f not in row]
        if missing:
            raise TaskError(f"{path}:{lineno}: a preference pair needs {', '.join(REQUIRED)} (missing {', '.join(missing)})")
        pairs.append(row)
    if not pairs:
        raise TaskError(f"{path}: no preference pairs")
    return pairs


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
