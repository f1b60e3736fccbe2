"""A task's numbers, declared once: the resampling unit, the additive statistics of one unit, and the metric
formulas over summed statistics (per group and pooled) with their direction. From that declaration alone the core
computes result.json's metrics and groups, the bootstrap intervals and the paired comparison (`report.compare`),
so a formula is written in exactly one place. Corpus metrics are ratios of sums, never means of ratios."""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CI_QUANTILES
from .paired import group_units

Record = dict[str, Any]
Sums = Mapping[str, float]
Value = float | int | None
#: the group of records without one (a task with no splits)
ALL = "all"


@dataclass(frozen=True)
class Metric:
    """`formula(sums)` over a group's (or all) summed unit statistics. `ci`: a 95% bootstrap interval goes into
    result.json; `compare`: `mmhallu compare` tests it (default: the metrics with an interval)."""

    name: str
    formula: Callable[[Sums], Value]
    higher_is_better: bool | None = None
    ci: bool = False
    compare: bool | None = None

    @property
    def compared(self) -> bool:
        return self.ci if self.compare is None else self.compare


@dataclass(frozen=True)
class PooledMetric:
    """A pooled metric that is not the group formula on all sums, but a function of every group's sums (MME's
    perception = the sum of its subtask scores)."""

    name: str
    formula: Callable[[dict[str, Sums]], Value]
    higher_is_better: bool | None = None
    ci: bool = False
    compare: bool | None = None

    @property
    def compared(self) -> bool:
        return self.ci if self.compare is None else self.compare


def count(stat: str) -> Callable[[Sums], int]:
    """A metric that reports a summed statistic as a whole number."""
    return lambda s: int(s[stat])


def ratio(num: str, den: str) -> Callable[[Sums], float | None]:
    """num / den, None when den is 0."""
    return lambda s: s[num] / s[den] if s[den] else None


def by_id(record: Record) -> Hashable:
    return record["id"]


@dataclass(frozen=True)
class Measure:
    """The declaration. `unit_stats(records of one unit)` returns the unit's statistics in `stats` order."""

    stats: tuple[str, ...]
    unit_stats: Callable[[list[Record]], Sequence[float]]
    metrics: tuple[Metric, ...]
    unit: Callable[[Record], Hashable] = by_id
    #: pooled metrics over every group's sums; None: `metrics` on the summed statistics of all units
    pooled: tuple[PooledMetric, ...] | None = None
    #: resample units within their groups (and take the pooled interval from the same draws), as MME does
    stratified: bool = False
    #: groups in this order first, the others sorted
    group_order: tuple[str, ...] = ()
    #: the metric that is the mean of per-sample `correct` (McNemar applies to it in compare)
    accuracy_metric: str | None = None
    #: records per unit (checked, with the unit named in the error) and a check of one unit's records
    unit_size: int | None = None
    check_unit: Callable[[Hashable, list[Record]], str | None] | None = None
    describe_unit: Callable[[Hashable], str] = str
    #: result.json fields beside the metrics (e.g. the judge that rated the answers)
    extra: Callable[[list[Record]], dict[str, Any]] | None = None

    def pooled_metrics(self) -> tuple[Metric | PooledMetric, ...]:
        return self.pooled if self.pooled is not None else self.metrics

    def directions(self, pooled: bool) -> dict[str, bool | None]:
        """Metric → higher is better (None: no direction), for the compared metrics of one level."""
        return {m.name: m.higher_is_better for m in (self.pooled_metrics() if pooled else self.metrics) if m.compared}


@dataclass
class UnitTable:
    """Units in first-seen order: their keys, groups and statistics (one row each)."""

    keys: list[Hashable]
    groups: list[str]
    rows: np.ndarray
    measure: Measure = field(repr=False)
    #: records per unit
    sizes: list[int] = field(default_factory=list)

    def group_names(self) -> list[str]:
        present = list(dict.fromkeys(self.groups))
        known = [g for g in self.measure.group_order if g in present]
        return known + sorted(g for g in present if g not in known)

    def sums(self, mask: np.ndarray | None = None) -> dict[str, float]:
        rows = self.rows if mask is None else self.rows[mask]
        return dict(zip(self.measure.stats, rows.sum(axis=0).tolist() if len(rows) else [0.0] * len(self.measure.stats)))


def unit_table(measure: Measure, records: list[Record], validate: bool = True) -> UnitTable:
    """The units of `records`; `validate` checks each unit's size and content (off for the common records of two
    runs, where a unit can have lost a record to a generation error)."""
    if validate:
        units = group_units(records, measure.unit, size=measure.unit_size, describe=measure.describe_unit, validate=measure.check_unit)
    else:
        units = group_units(records, measure.unit, size=None)
    keys = list(units)
    groups = [units[k][0].get("group") or ALL for k in keys]
    rows = np.array([list(measure.unit_stats(units[k])) for k in keys], dtype=np.float64).reshape(len(keys), len(measure.stats))
    return UnitTable(keys, groups, rows, measure, [len(units[k]) for k in keys])


def evaluate(measure: Measure, sums_by_group: dict[str, Sums], pooled: bool) -> dict[str, Value]:
    """The metric values of one group (`pooled` False, one entry) or pooled over the given groups."""
    if not pooled:
        (sums,) = sums_by_group.values()
        return {m.name: m.formula(sums) for m in measure.metrics}
    if measure.pooled is not None:
        return {m.name: m.formula(sums_by_group) for m in measure.pooled}
    total = {k: sum(s[k] for s in sums_by_group.values()) for k in measure.stats}
    return {m.name: m.formula(total) for m in measure.metrics}


def _quantiles(values: dict[str, list[float]], names: list[str]) -> dict[str, list[float]]:
    out = {}
    for name in names:
        arr = np.asarray(values.get(name, []), dtype=np.float64)
        if arr.size:
            out[name] = [float(np.quantile(arr, q)) for q in CI_QUANTILES]
    return out


def _resampled_sums(rows: np.ndarray, strata: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """One bootstrap draw per stratum (units with replacement, the stratum's size), as summed statistics. The
    draws are `rng.integers(0, n, n)` per stratum in order, so intervals are reproducible; summing through
    per-unit counts keeps memory at one vector per draw, whatever the number of resamples."""
    out = []
    for units in strata:
        picks = rng.integers(0, len(units), size=len(units))
        counts = np.bincount(picks, minlength=len(units)).astype(np.float64)
        out.append(counts @ rows[units])
    return out


def intervals(measure: Measure, table: UnitTable, groups: list[str],
              resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[dict[str, list[float]], dict[str, dict[str, list[float]]]]:
    """(pooled intervals, per-group intervals). Unstratified: the pooled draw resamples all units, each group is
    resampled on its own (a fresh generator per set); stratified: one draw per group feeds both."""
    ci_group = [m.name for m in measure.metrics if m.ci]
    ci_pooled = [m.name for m in measure.pooled_metrics() if m.ci]
    if not len(table.keys) or not (ci_group or ci_pooled):
        return {}, {}
    labels = np.asarray(table.groups)
    group_units_idx = {g: np.flatnonzero(labels == g) for g in groups}
    if measure.stratified:
        strata_order = list(dict.fromkeys(table.groups))  # first appearance, the order the draws are made in
        rng = np.random.default_rng(seed)
        pooled_vals: dict[str, list[float]] = {}
        group_vals: dict[str, dict[str, list[float]]] = {g: {} for g in groups}
        for _ in range(resamples):
            drawn = dict(zip(strata_order, _resampled_sums(table.rows, [group_units_idx[g] for g in strata_order], rng)))
            by_group = {g: dict(zip(measure.stats, drawn[g])) for g in groups}
            _collect(pooled_vals, evaluate(measure, by_group, pooled=True), ci_pooled)
            for g in groups:
                _collect(group_vals[g], evaluate(measure, {g: by_group[g]}, pooled=False), ci_group)
        return _quantiles(pooled_vals, ci_pooled), {g: _quantiles(group_vals[g], ci_group) for g in groups}

    def one(units: np.ndarray, pooled: bool, names: list[str]) -> dict[str, list[float]]:
        rng = np.random.default_rng(seed)
        vals: dict[str, list[float]] = {}
        for _ in range(resamples):
            (sums,) = _resampled_sums(table.rows, [units], rng)
            by = {ALL: dict(zip(measure.stats, sums))}
            _collect(vals, evaluate(measure, by, pooled=pooled), names)
        return _quantiles(vals, names)

    pooled_ci = one(np.arange(len(table.keys)), True, ci_pooled)
    per_group = {g: one(group_units_idx[g], False, ci_group) for g in groups} if ci_group else {}
    return pooled_ci, per_group


def _collect(into: dict[str, list[float]], values: dict[str, Value], names: list[str]) -> None:
    for name in names:
        v = values.get(name)
        if v is not None and not (isinstance(v, float) and np.isnan(v)):
            into.setdefault(name, []).append(float(v))


@dataclass
class Summary:
    """What the core computes for result.json from a task's records."""

    metrics: dict[str, Value]
    groups: dict[str, dict[str, Any]]
    ci: dict[str, list[float]]
    extra: dict[str, Any]


def summarize(measure: Measure, records: list[Record]) -> Summary:
    """Metrics pooled and per group (with their intervals), from the declaration. Records without a group form no
    group entries (only pooled values)."""
    table = unit_table(measure, records)
    grouped = any(r.get("group") is not None for r in records)
    groups = table.group_names() if grouped else []
    group_sums = {g: table.sums(np.asarray(table.groups) == g) for g in table.group_names()}
    pooled = evaluate(measure, group_sums, pooled=True)
    pooled_ci, group_ci = intervals(measure, table, groups or [ALL])
    out_groups = {}
    for g in groups:
        values: dict[str, Any] = evaluate(measure, {g: group_sums[g]}, pooled=False)
        if any(m.ci for m in measure.metrics):
            values["ci"] = group_ci.get(g, {})
        out_groups[g] = values
    extra = measure.extra(records) if measure.extra is not None else {}
    return Summary(metrics=pooled, groups=out_groups, ci=pooled_ci, extra=extra)
