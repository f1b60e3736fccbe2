"""A task's numbers, declared once: the resampling unit, the additive statistics of one unit, and the metric
formulas over summed statistics (per group and pooled) with their direction. From that declaration alone the core
computes result.json's metrics and groups, the bootstrap intervals and the paired comparison (`report.compare`),
so a formula is written in exactly one place. Corpus metrics are ratios of sums, never means of ratios."""
from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CI_QUANTILES
from .errors import TaskError
from .resample import Resampler

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


def add_sums(sums: Iterable[Sums], stats: Sequence[str]) -> dict[str, float]:
    """Summed statistics of several groups (or units), statistic by statistic."""
    sums = list(sums)
    return {k: sum(s[k] for s in sums) for k in stats}


def pooled_totals(stats: Sequence[str], metrics: Sequence[Metric], *tables: PooledMetric) -> tuple[PooledMetric, ...]:
    """Pooled metrics for a task that also reports whole-result tables (AMBER's and HallusionBench's printouts): each
    group metric on the statistics summed over all groups, then `tables`, functions of every group's sums."""
    def on_total(formula: Callable[[Sums], Value]) -> Callable[[dict[str, Sums]], Value]:
        return lambda groups: formula(add_sums(groups.values(), stats))

    return (*(PooledMetric(m.name, on_total(m.formula), m.higher_is_better, m.ci, m.compare) for m in metrics), *tables)


def count(stat: str) -> Callable[[Sums], int]:
    """A metric that reports a summed statistic as a whole number."""
    return lambda s: int(s[stat])


def quotient(num: Any, den: Any) -> Any:
    """num / den, None when den is 0 — or, on columns of bootstrap draws (arrays), NaN where den is 0, so a formula
    written with it is evaluated on all draws at once."""
    if isinstance(den, np.ndarray):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den != 0, num / den, np.nan)
    return num / den if den else None


def f1_of(precision: Any, recall: Any) -> Any:
    """The harmonic mean 2pr / (p + r); None when either is None or both are 0 (NaN there on columns of draws)."""
    return None if precision is None or recall is None else quotient(2 * precision * recall, precision + recall)


def ratio(num: str, den: str) -> Callable[[Sums], float | None]:
    """The metric num / den (None when den is 0)."""
    return lambda s: quotient(s[num], s[den])


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
    #: result.json fields beside the metrics, from the groups present and the first records (e.g. the judge)
    extra: Callable[[list[str], list[Record]], dict[str, Any]] | None = None

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


class UnitAccumulator:
    """Units built as records stream in, holding only each unit's statistics (a multi-record unit's records only
    until it is complete), so memory grows with the units, not with the records' text. Units keep the order in
    which they were first seen."""

    def __init__(self, measure: Measure, validate: bool = True):
        self.measure = measure
        self.validate = validate
        self.index: dict[Hashable, int] = {}
        self.groups: list[str] = []
        self.rows: list[tuple[float, ...] | None] = []
        self.sizes: list[int] = []
        self.pending: dict[Hashable, list[Record]] = {}
        self.single = measure.unit_size == 1 or (measure.unit_size is None and measure.unit is by_id)
        #: units that lost a record to a failure (or a missing answer): left out of the metrics whole
        self.failed: set[Hashable] = set()
        #: the failed units that had scored records, and how many records these were (left out with their unit)
        self.cut: set[Hashable] = set()
        self.left_out = 0

    def fail(self, record: Record) -> None:
        """A record without a score (a failed generation, an answer the file lacks). A unit of several records loses
        it whole: its statistics would be those of part of a unit (an MME image judged on one of its questions, a
        FINER pair on its positive alone), which the metric's formulas do not describe. A single-record unit simply
        has no record."""
        if self.single:
            return
        key = self.measure.unit(record)
        i = self.index.get(key)
        if i is not None and self.rows[i] is not None:
            raise self._size_error(key, self.sizes[i] + 1)
        if key not in self.failed:
            self.failed.add(key)
            dropped = self.pending.pop(key, [])
            if dropped:
                self.cut.add(key)
                self.left_out += len(dropped)

    def add(self, record: Record) -> None:
        key = self.measure.unit(record)
        if key in self.failed:
            self.cut.add(key)
            self.left_out += 1
            return
        i = self.index.get(key)
        if i is None:
            i = self.index[key] = len(self.rows)
            self.rows.append(None)
            self.groups.append(record.get("group") or ALL)
            self.sizes.append(0)
        elif self.rows[i] is not None:
            raise self._size_error(key, self.sizes[i] + 1)
        self.sizes[i] += 1
        if self.single:
            self.rows[i] = self._stats(key, [record])
            return
        members = self.pending.setdefault(key, [])
        members.append(record)
        if self.measure.unit_size is not None and len(members) == self.measure.unit_size:
            self._finish(key)

    def _size_error(self, key: Hashable, found: int, members: list[Record] | None = None) -> TaskError:
        ids = f" (ids: {', '.join(str(m.get('id')) for m in members)})" if members else ""
        return TaskError(f"{self.measure.describe_unit(key)}: expected {self.measure.unit_size or 1} questions, found {found}{ids}")

    def _finish(self, key: Hashable) -> None:
        members = self.pending.pop(key)
        if self.validate and self.measure.check_unit is not None:
            problem = self.measure.check_unit(key, members)
            if problem:
                raise TaskError(f"{self.measure.describe_unit(key)}: {problem}")
        self.rows[self.index[key]] = self._stats(key, members)

    def _stats(self, key: Hashable, members: list[Record]) -> tuple[float, ...]:
        """The unit's statistics, one number per declared statistic (a task's `unit_stats` that returns another count
        or text is named with the unit, not met as a reshape error when the result is built)."""
        row = tuple(self.measure.unit_stats(members))
        if len(row) != len(self.measure.stats) or not all(isinstance(v, (int, float, np.number, np.bool_)) for v in row):
            unit = f"sample {key!r}" if self.measure.describe_unit is str else self.measure.describe_unit(key)
            raise TaskError(f"{unit}: the task's unit_stats returned {row!r:.100}; it must return "
                            f"{len(self.measure.stats)} numbers, one per statistic ({', '.join(self.measure.stats)})")
        return row

    def table(self) -> UnitTable:
        for key in list(self.pending):
            members = self.pending[key]
            if self.validate and self.measure.unit_size is not None and len(members) != self.measure.unit_size:
                raise self._size_error(key, len(members), members)
            self._finish(key)
        keys, groups, unit_rows, sizes = list(self.index), self.groups, self.rows, self.sizes
        if self.failed:
            kept = [i for i, key in enumerate(keys) if key not in self.failed]
            keys, groups, unit_rows, sizes = ([column[i] for i in kept] for column in (keys, groups, unit_rows, sizes))
        rows = np.array(unit_rows, dtype=np.float64).reshape(len(unit_rows), len(self.measure.stats))
        return UnitTable(keys, groups, rows, self.measure, sizes)


def unit_table(measure: Measure, records: Iterable[Record], validate: bool = True) -> UnitTable:
    """The units of `records`; `validate` checks each unit's size and content (off for the common records of two
    runs, which `compare` has already cut to whole units)."""
    acc = UnitAccumulator(measure, validate)
    for r in records:
        acc.add(r)
    return acc.table()


def _formula_input(measure: Measure, sums_by_group: dict[str, Any], pooled: bool) -> Any:
    """What a formula is called with: the group's sums, every group's sums (a pooled table), or their total."""
    if not pooled:
        (sums,) = sums_by_group.values()
        return sums
    if measure.pooled is not None:
        return sums_by_group
    return add_sums(sums_by_group.values(), measure.stats)


def evaluate(measure: Measure, sums_by_group: dict[str, Sums], pooled: bool) -> dict[str, Value]:
    """The metric values of one group (`pooled` False, one entry) or pooled over the given groups."""
    arg = _formula_input(measure, sums_by_group, pooled)
    return {m.name: m.formula(arg) for m in (measure.pooled_metrics() if pooled else measure.metrics)}


#: sets of drawn metric values held at once for one quantile call (a task with many groups stays at this many)
_QUANTILE_SETS = 64


def _quantiles(sets: Iterable[dict[str, np.ndarray]]) -> list[dict[str, list[float]]]:
    """Each set's metric intervals; every metric of up to `_QUANTILE_SETS` sets with as many values (no draw left out)
    in one call, row by row the same numbers."""
    sets = iter(sets)
    out: list[dict[str, list[float]]] = []
    while chunk := list(itertools.islice(sets, _QUANTILE_SETS)):
        out += _quantiles_of(chunk)
    return out


def _quantiles_of(sets: list[dict[str, np.ndarray]]) -> list[dict[str, list[float]]]:
    by_size: dict[int, list[tuple[int, str]]] = {}
    for i, values in enumerate(sets):
        for name, arr in values.items():
            if arr.size:
                by_size.setdefault(arr.size, []).append((i, name))
    found: dict[tuple[int, str], list[float]] = {}
    for keys in by_size.values():
        rows = np.quantile(np.stack([sets[i][n] for i, n in keys]), CI_QUANTILES, axis=1).T.tolist()
        found.update(zip(keys, rows))
    return [{name: found[i, name] for name in values if (i, name) in found} for i, values in enumerate(sets)]


#: draws on which a formula's result over all draws at once is checked against its value draw by draw
_CHECKED_DRAWS = 8
#: picks kept to be reused by the next set of the same size (32 MB of int32); larger sets draw them again
_KEPT_PICKS = 1 << 23


def draw_values(measure: Measure, names: Iterable[str], drawn: dict[str, np.ndarray], pooled: bool, drop_missing: bool = True) -> dict[str, np.ndarray]:
    """Each named metric on every draw (`drawn`: group → (draws, statistics) sums), None and NaN left out (or, with
    `drop_missing` off, kept as NaN so that draws stay aligned). A formula runs once on whole columns of draws when it
    accepts arrays and agrees with its draw-by-draw value on the first draws (plain arithmetic does; `x if y else
    None` raises and is evaluated draw by draw)."""
    n_draws = len(next(iter(drawn.values())))
    columns = {g: {s: a[:, i] for i, s in enumerate(measure.stats)} for g, a in drawn.items()}
    whole = _formula_input(measure, columns, pooled)
    per_draw: list[Any] = []

    def draw(j: int) -> Any:
        while len(per_draw) <= j:
            k = len(per_draw)
            per_draw.append(_formula_input(measure, {g: dict(zip(measure.stats, a[k])) for g, a in drawn.items()}, pooled))
        return per_draw[j]

    out = {}
    for m in (m for m in (measure.pooled_metrics() if pooled else measure.metrics) if m.name in names):
        values = _on_columns(m.formula, whole, [m.formula(draw(j)) for j in range(min(n_draws, _CHECKED_DRAWS))], n_draws)
        if values is None:
            values = np.asarray([_as_float(m.formula(draw(j))) for j in range(n_draws)], dtype=np.float64)
        out[m.name] = values[~np.isnan(values)] if drop_missing else values
    return out


def _as_float(v: Value) -> float:
    return np.nan if v is None else float(v)


def _on_columns(formula: Callable[[Any], Any], whole: Any, checked: list[Value], n_draws: int) -> np.ndarray | None:
    try:
        with np.errstate(all="ignore"):
            values = formula(whole)
    except Exception:  # noqa: BLE001 - a formula written for one draw at a time (a conditional, int(), max())
        return None
    if not (isinstance(values, np.ndarray) and values.shape == (n_draws,) and values.dtype.kind in "biuf"):
        return None
    values = values.astype(np.float64)
    expected = np.asarray([_as_float(v) for v in checked], dtype=np.float64)
    return values if np.array_equal(values[:len(expected)], expected, equal_nan=True) else None


def intervals(measure: Measure, table: UnitTable, groups: list[str],
              resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[dict[str, list[float]], dict[str, dict[str, list[float]]]]:
    """(pooled intervals, per-group intervals). Units of few distinct statistic rows are drawn as counts of those
    rows (`Resampler.counted_sums`), others by position. Unstratified: the pooled draw resamples all units, each
    group is resampled on its own (a fresh generator per set); stratified: one draw per group feeds both."""
    ci_group = [m.name for m in measure.metrics if m.ci]
    ci_pooled = [m.name for m in measure.pooled_metrics() if m.ci]
    if not len(table.keys) or not (ci_group or ci_pooled):
        return {}, {}
    labels = np.asarray(table.groups)
    group_units_idx = {g: np.flatnonzero(labels == g) for g in groups}
    resampler = Resampler(table.rows)
    if measure.stratified:
        strata_order = list(dict.fromkeys(table.groups))  # first appearance, the order the draws are made in
        strata = [group_units_idx[g] for g in strata_order]
        rng = np.random.default_rng(seed)
        drawn = dict(zip(strata_order, resampler.counted_sums(strata, rng, resamples) if resampler.few else
                         resampler.sums(strata, resampler.draw([len(u) for u in strata], rng, resamples))))
        pooled_ci, *group_ci = _quantiles(itertools.chain([draw_values(measure, ci_pooled, {g: drawn[g] for g in groups}, pooled=True)],
                                                          (draw_values(measure, ci_group, {g: drawn[g]}, pooled=False) for g in groups)))
        return pooled_ci, dict(zip(groups, group_ci))

    drawn_for: dict[int, list[np.ndarray]] = {}

    def one(units: np.ndarray, pooled: bool, names: list[str]) -> dict[str, np.ndarray]:
        if resampler.few:
            (sums,) = resampler.counted_sums([units], np.random.default_rng(seed), resamples)
            return draw_values(measure, names, {ALL: sums}, pooled)
        # each set's generator starts afresh from the seed, so sets of one size draw the very same picks: drawn once
        blocks = drawn_for.get(len(units))
        if blocks is None:
            blocks = resampler.draw([len(units)], np.random.default_rng(seed), resamples)
            if len(units) * resamples <= _KEPT_PICKS:
                blocks = drawn_for[len(units)] = list(blocks)
        (sums,) = resampler.sums([units], blocks)
        return draw_values(measure, names, {ALL: sums}, pooled)

    # a group of every unit (a task without groups, or a run of one split) draws the pooled set's very picks; with
    # the group formulas pooled too, its intervals are the pooled ones, computed once
    own = [g for g in groups if measure.pooled is not None or len(group_units_idx[g]) < len(table.keys)] if ci_group else []
    pooled_ci, *group_ci = _quantiles(itertools.chain([one(np.arange(len(table.keys)), True, ci_pooled)],
                                                      (one(group_units_idx[g], False, ci_group) for g in own)))
    by_group = dict(zip(own, group_ci))
    return pooled_ci, {g: by_group[g] if g in by_group else dict(pooled_ci) for g in groups} if ci_group else {}


@dataclass
class Summary:
    """What the core computes for result.json from a task's records."""

    metrics: dict[str, Value]
    groups: dict[str, dict[str, Any]]
    ci: dict[str, list[float]]
    extra: dict[str, Any]


def summarize(measure: Measure, records: Iterable[Record]) -> Summary:
    """Metrics pooled and per group (with their intervals), from the declaration. Records without a group form no
    group entries (only pooled values)."""
    records = list(records)
    return summarize_table(measure, unit_table(measure, records), records[:EXTRA_HEAD])


#: how many records `Measure.extra` sees (the first ones): extras describe the run, not every sample
EXTRA_HEAD = 100


def summarize_table(measure: Measure, table: UnitTable, head: list[Record]) -> Summary:
    grouped = any(g != ALL for g in table.groups)
    groups = table.group_names() if grouped else []
    labels = np.asarray(table.groups)
    group_sums = {g: table.sums(labels == g) for g in table.group_names()}
    pooled = evaluate(measure, group_sums, pooled=True)
    pooled_ci, group_ci = intervals(measure, table, groups or [ALL])
    out_groups = {}
    for g in groups:
        values: dict[str, Any] = evaluate(measure, {g: group_sums[g]}, pooled=False)
        if any(m.ci for m in measure.metrics):
            values["ci"] = group_ci.get(g, {})
        out_groups[g] = values
    extra = measure.extra(table.group_names(), head) if measure.extra is not None else {}
    return Summary(metrics=pooled, groups=out_groups, ci=pooled_ci, extra=extra)
