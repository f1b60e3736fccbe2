"""CHAIR_s / CHAIR_i / recall / length from captions and ground-truth object sets (OPERA's definitions)."""
from __future__ import annotations

import multiprocessing
import os
import sys
from typing import Any, Iterable

import numpy as np

from mmhallu_eval import bootstrap_ci, safe_div

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


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    mentions = sum(len(r["mentions"]) for r in rows)
    hallucinated = sum(len(r["hallucinated"]) for r in rows)
    return {
        "chair_s": safe_div(sum(bool(r["hallucinated"]) for r in rows), n),
        "chair_i": safe_div(hallucinated, mentions),
        "recall": safe_div(sum(len(r["covered"]) for r in rows), sum(r["n_gt"] for r in rows)),
        "avg_len": safe_div(sum(r["n_tokens"] for r in rows), n),
        "n": n,
        "mentions": mentions,
        "hallucinated_mentions": hallucinated,
    }


def chair_metrics(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Corpus metrics (ratios of sums, as OPERA) and bootstrap CIs over captions."""
    metrics = _totals(rows)
    if not rows:
        return metrics, {}
    cols = np.array([[bool(r["hallucinated"]), len(r["hallucinated"]), len(r["mentions"]), len(r["covered"]), r["n_gt"], r["n_tokens"]] for r in rows], dtype=float)

    def stat(idx: np.ndarray) -> dict[str, float | None]:
        s = cols[idx].sum(axis=0)
        return {
            "chair_s": s[0] / len(idx),
            "chair_i": safe_div(s[1], s[2]),
            "recall": safe_div(s[3], s[4]),
            "avg_len": s[5] / len(idx),
        }

    return metrics, bootstrap_ci(len(rows), stat)
