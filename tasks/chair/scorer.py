"""CHAIR_s / CHAIR_i / recall / length from captions and ground-truth object sets (OPERA's definitions)."""
from __future__ import annotations

import multiprocessing
import os
import sys
from typing import Any, Iterable

from .normalize import CaptionWords, normalizer_for

#: below this many captions a process pool costs more than it saves
PARALLEL_MIN = 400


def _words_worker(job: tuple[str | None, list[str]]) -> list[CaptionWords]:
    synonyms, captions = job
    normalizer = normalizer_for(synonyms)
    return [normalizer.caption_words(c) for c in captions]


def _processes() -> int:
    env = os.environ.get("MMHALLU_CHAIR_PROCESSES")
    if env:
        return max(1, int(env))
    # forking a process that runs torch's thread pools is not safe; scoring saved captions never loads torch
    if "torch" in sys.modules or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return min(os.cpu_count() or 1, 8)


def caption_words_many(synonyms: str | None, captions: list[str]) -> list[CaptionWords]:
    """`caption_words` for many captions, split over worker processes (forked after NLTK is loaded)."""
    procs = _processes()
    if procs <= 1 or len(captions) < PARALLEL_MIN:
        return _words_worker((synonyms, captions))
    normalizer_for(synonyms)
    size = -(-len(captions) // (procs * 4))
    jobs = [(synonyms, captions[i : i + size]) for i in range(0, len(captions), size)]
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        return [cw for chunk in pool.map(_words_worker, jobs) for cw in chunk]


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
