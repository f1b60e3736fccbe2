"""CHAIR_s / CHAIR_i / recall / length from captions and ground-truth object sets (OPERA's definitions)."""
from __future__ import annotations

import atexit
import multiprocessing
import os
import sys
from typing import Any, Iterable

from .normalize import CaptionWords, normalizer_for

#: below this many captions a process pool costs more than it saves
PARALLEL_MIN = 400


Normalized = tuple[list[str], list[str], "CaptionWords | None"]


def _normalize(job: tuple[str | None, list[str]]) -> tuple[list[Normalized], set[str]]:
    """Tokens, tags and (where every lemma is in the table) object words of each caption, and the words whose lemmas
    the table lacks. Runs in a worker process or in this one."""
    synonyms, captions = job
    normalizer = normalizer_for(synonyms)
    normalizer.unlearned.clear()
    out = []
    for caption in captions:
        tokens, tags = normalizer.tagged(caption)
        out.append((tokens, tags, normalizer.words_of(tokens, tags, stored_only=True)))
    return out, set(normalizer.unlearned)


def _processes() -> int:
    env = os.environ.get("MMHALLU_CHAIR_PROCESSES")
    if env:
        return max(1, int(env))
    # forking a process that runs torch's thread pools is not safe; scoring saved captions never loads torch
    if "torch" in sys.modules or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return min(os.cpu_count() or 1, 8)


_POOLS: dict[int, Any] = {}


def _pool(procs: int) -> Any:
    """One pool of forked workers per process, kept for later batches: their memoised tokens and tags carry over
    (scoring goes through batches of a few thousand captions)."""
    if procs not in _POOLS:
        _POOLS[procs] = multiprocessing.get_context("fork").Pool(procs)
        atexit.register(_POOLS[procs].terminate)
    return _POOLS[procs]


def caption_words_many(synonyms: str | None, captions: list[str]) -> list[CaptionWords]:
    """`caption_words` for many captions: tokenising and tagging split over worker processes (forked after the tagger
    is loaded), lemmas and object words in this process, where the lemma table lives; new lemmas are stored."""
    normalizer = normalizer_for(synonyms)
    procs = _processes()
    if procs <= 1 or len(captions) < PARALLEL_MIN:
        chunks = [_normalize((synonyms, captions))]
    else:
        size = -(-len(captions) // (procs * 4))
        chunks = _pool(procs).map(_normalize, [(synonyms, captions[i : i + size]) for i in range(0, len(captions), size)])
    words = [cw if cw is not None else normalizer.words_of(tokens, tags) for chunk, _ in chunks for tokens, tags, cw in chunk]
    # the next run can skip tagging where the tag cannot matter: every word's lemmas under each part of speech stored
    normalizer.learn(set().union(*(unlearned for _, unlearned in chunks)))
    normalizer.lemmas.save()
    return words  # type: ignore[return-value]


def score_caption_words(cw: CaptionWords, gt: Iterable[str]) -> dict[str, Any]:
    """Mentions of COCO objects, which are hallucinated (not in the image's ground truth), which GT are covered."""
    gt_set = set(gt)
    hallucinated = [[w, c] for w, c in zip(cw.words, cw.categories) if c not in gt_set]
    covered = sorted({c for c in cw.categories if c in gt_set})
    return {
        "mentions": [[w, c] for w, c in zip(cw.words, cw.categories)],
        "hallucinated": hallucinated,
        "covered": covered,
        "n_gt": len(gt_set),
        "n_tokens": cw.n_tokens,
    }
