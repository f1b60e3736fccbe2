"""Pure metric functions over per-sample values. Corpus metrics aggregate counts, never average ratios."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

BOOTSTRAP_SEED = 20240101
BOOTSTRAP_RESAMPLES = 1000


def safe_div(num: float, den: float) -> float | None:
    """num/den, or None when den is 0 (reported as null instead of crashing)."""
    return None if den == 0 else num / den


def _pred_array(pred: Sequence[int | None]) -> np.ndarray:
    return pred if isinstance(pred, np.ndarray) else np.asarray([-1 if v is None else v for v in pred], dtype=np.int64)


def binary_counts(pred: Sequence[int | None], label: Sequence[int]) -> dict[str, int]:
    """tp/fp/tn/fn with 1 = positive class; a None (or -1) prediction (unread answer) is in no cell."""
    p = _pred_array(pred)
    y = np.asarray(label, dtype=np.int64)
    return {
        "tp": int(((p == 1) & (y == 1)).sum()),
        "fp": int(((p == 1) & (y == 0)).sum()),
        "tn": int(((p == 0) & (y == 0)).sum()),
        "fn": int(((p == 0) & (y == 1)).sum()),
    }


def binary_metrics(pred: Sequence[int | None], label: Sequence[int]) -> dict[str, Any]:
    """Accuracy, precision, recall, F1 and the share of *predicted* positives, from counts.

    Unread answers (None) count as wrong: they lower accuracy and recall (a missed positive)
    but are not positive predictions. With no None values this is the textbook definition.
    The rates come from `binary_rates` (one formula for a run and for its bootstrap); undefined ones are None.
    """
    p, y = _pred_array(pred), np.asarray(label, dtype=np.int64)
    c = binary_counts(p, y)
    n = len(y)
    rates = {k: None if np.isnan(v) else float(v) for k, v in binary_rates(p, y).items()}
    return {**rates, **c, "n": n, "unparsed": n - sum(c.values())}


def binary_rates(pred: np.ndarray, label: np.ndarray) -> dict[str, np.ndarray]:
    """`binary_metrics`' rates for many resamples at once: rows of `pred`/`label` (−1 = unread) are resamples.
    Undefined values are NaN; the arithmetic is the same as `binary_metrics`, so each row's floats are equal."""
    tp = ((pred == 1) & (label == 1)).sum(-1)
    fp = ((pred == 1) & (label == 0)).sum(-1)
    tn = ((pred == 0) & (label == 0)).sum(-1)
    n = label.shape[-1]
    positives = (label == 1).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), np.nan)
        recall = np.where(positives > 0, tp / np.maximum(positives, 1), np.nan)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), np.nan)
    return {"accuracy": (tp + tn) / n if n else np.full(tp.shape, np.nan), "precision": precision, "recall": recall, "f1": f1,
            "yes_ratio": (tp + fp) / n if n else np.full(tp.shape, np.nan)}


def bootstrap_ci(
    n: int,
    statistic: Callable[[np.ndarray], dict[str, Any]],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
    strata: Sequence[Any] | None = None,
    batched: bool = False,
) -> dict[str, list[float] | None]:
    """Percentile bootstrap CIs for every metric `statistic(indices)` returns.

    `statistic` receives an index array of length n (a resample of the units) so that corpus
    metrics are recomputed from resampled counts. With `strata` (a label per unit) units are resampled
    within each stratum, e.g. images within each MME subtask. Fixed seed → reproducible intervals.
    With `batched`, `statistic` gets all resamples at once as a (resamples, n) index matrix and returns an
    array per metric (NaN = undefined): the same draws and intervals, without a Python loop per resample.
    """
    if n == 0:
        return {}
    rng = np.random.default_rng(seed)
    groups = None
    if strata is not None:
        labels = np.asarray(strata)
        groups = [np.flatnonzero(labels == v) for v in dict.fromkeys(labels.tolist())]

    def draw() -> np.ndarray:
        if groups is None:
            return rng.integers(0, n, size=n)
        return np.concatenate([g[rng.integers(0, len(g), size=len(g))] for g in groups])

    draws: dict[str, np.ndarray] = {}
    if batched:
        for key, values in statistic(np.stack([draw() for _ in range(resamples)])).items():
            values = np.asarray(values, dtype=np.float64)
            draws[key] = values[~np.isnan(values)]
    else:
        collected: dict[str, list[float]] = {}
        for _ in range(resamples):
            for key, value in statistic(draw()).items():
                if value is not None:
                    collected.setdefault(key, []).append(float(value))
        draws = {key: np.asarray(values) for key, values in collected.items()}
    alpha = (1 - level) / 2
    out: dict[str, list[float] | None] = {}
    for key, arr in draws.items():
        if arr.size:
            out[key] = [float(np.quantile(arr, alpha)), float(np.quantile(arr, 1 - alpha))]
    return out
