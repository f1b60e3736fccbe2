"""Paired tests for before/after comparisons: McNemar on per-sample correctness, paired bootstrap over units."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..measure import Measure, draw_values, evaluate
from ..metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from ..resample import Resampler

EXACT_MAX = 25  # exact binomial McNemar up to this many discordant pairs, chi-square with correction above


def mcnemar(b: int, c: int) -> tuple[float, str]:
    """Two-sided McNemar p-value for b (base right, tuned wrong) and c (base wrong, tuned right)."""
    n = b + c
    if n == 0:
        return 1.0, "mcnemar-exact"
    if n <= EXACT_MAX:
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        return min(1.0, 2 * tail), "mcnemar-exact"
    stat = (abs(b - c) - 1) ** 2 / n
    return math.erfc(math.sqrt(stat / 2)), "mcnemar-chi2-cc"


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment: each p-value made comparable to alpha for the whole family at once (the
    chance of any false "significant" among them at most alpha, whatever their dependence); None stays None."""
    order = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[i] = running
    return adjusted


def bootstrap_p(deltas: np.ndarray) -> float:
    """Two-sided p of a paired percentile bootstrap: how often the resampled delta falls on either side of 0."""
    r = len(deltas)
    if r == 0:
        return 1.0
    low = (np.sum(deltas <= 0) + 1) / (r + 1)
    high = (np.sum(deltas >= 0) + 1) / (r + 1)
    return float(min(1.0, 2 * min(low, high)))


def paired_bootstrap(
    base: dict[Any, np.ndarray],
    tuned: dict[Any, np.ndarray],
    measure: Measure,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, dict[Any, np.ndarray]]:
    """Resampled deltas (tuned − base) of every compared metric, pooled (key None) and per group.

    `base`/`tuned` map group → (units × stats) arrays whose rows are the same units in the same order.
    Units are resampled within each group with the same indices for both runs (the pairing); the metric values
    come from the task's declaration (`measure.evaluate`), as result.json's do. The draws are
    `rng.integers(0, n_g, n_g)` group after group, resample after resample; with whole-number statistics they are
    summed and evaluated a block of resamples at a time (`resample.Resampler`, `measure.draw_values`), otherwise one
    resample at a time — the same deltas either way.
    """
    groups = list(base)
    sizes = [len(base[g]) for g in groups]
    if not (groups and all(sizes)):
        return _paired_bootstrap_loop(base, tuned, measure, resamples, seed)
    rb, rt = (Resampler(np.concatenate([runs[g] for g in groups])) for runs in (base, tuned))
    if not (rb.exact and rt.exact):
        return _paired_bootstrap_loop(base, tuned, measure, resamples, seed)
    bounds = np.cumsum([0, *sizes])
    strata = [np.arange(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    parts: dict[str, list[list[np.ndarray]]] = {"base": [[] for _ in groups], "tuned": [[] for _ in groups]}
    for picks in Resampler.draw(sizes, np.random.default_rng(seed), resamples):
        for run, resampler in (("base", rb), ("tuned", rt)):
            for i, sums in enumerate(resampler.sums(strata, [picks])):
                parts[run][i].append(sums)
    drawn = {run: {g: np.concatenate(blocks) for g, blocks in zip(groups, per)} for run, per in parts.items()}
    out: dict[str, dict[Any, np.ndarray]] = {}
    for key, subset in [(None, groups)] + [(g, [g]) for g in groups]:
        pooled = key is None
        names = measure.directions(pooled=pooled)
        vb, vt = (draw_values(measure, names, {g: drawn[run][g] for g in subset}, pooled, drop_missing=False) for run in ("base", "tuned"))
        for name in vb:
            both = ~np.isnan(vb[name]) & ~np.isnan(vt[name])
            if both.any():
                out.setdefault(name, {})[key] = vt[name][both] - vb[name][both]
    return out


def _paired_bootstrap_loop(base: dict[Any, np.ndarray], tuned: dict[Any, np.ndarray], measure: Measure, resamples: int, seed: int) -> dict[str, dict[Any, np.ndarray]]:
    """`paired_bootstrap` one resample at a time (fractional statistics: sums in the order a resample lists them)."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[Any, list[float]]] = {}
    groups = list(base)
    pooled_names, group_names = set(measure.directions(pooled=True)), set(measure.directions(pooled=False))
    for _ in range(resamples):
        idx = {g: rng.integers(0, len(base[g]), size=len(base[g])) for g in groups}
        sb = {g: dict(zip(measure.stats, base[g][idx[g]].sum(axis=0))) for g in groups}
        st = {g: dict(zip(measure.stats, tuned[g][idx[g]].sum(axis=0))) for g in groups}
        for key, sub_b, sub_t in [(None, sb, st)] + [(g, {g: sb[g]}, {g: st[g]}) for g in groups]:
            pooled = key is None
            mb, mt = evaluate(measure, sub_b, pooled), evaluate(measure, sub_t, pooled)
            for name in pooled_names if pooled else group_names:
                vb, vt = mb.get(name), mt.get(name)
                if vb is not None and vt is not None:
                    out.setdefault(name, {}).setdefault(key, []).append(vt - vb)
    return {name: {k: np.asarray(v) for k, v in per.items()} for name, per in out.items()}
