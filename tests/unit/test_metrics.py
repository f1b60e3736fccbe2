"""The metric declaration engine (measure.py): values from summed unit statistics, zero denominators as null,
reproducible bootstrap intervals that equal an index-resampling loop, stratified resampling."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmhallu_eval.measure import ALL, Measure, Metric, PooledMetric, count, evaluate, intervals, pooled_totals, ratio, summarize, unit_table
from mmhallu_eval.metrics import BOOTSTRAP_SEED, CI_QUANTILES
from mmhallu_tasks.pope.task import MEASURE as POPE


def _pope_records(pred, label, group="random"):
    names = {1: "yes", 0: "no", None: None, -1: None}
    return [{"id": str(i), "group": group, "parsed": names[p], "target": names[t], "strict_parsed": names[p], "correct": p == t}
            for i, (p, t) in enumerate(zip(pred, label))]


def test_pope_declaration_hand_computed():
    # pred: 1 1 0 0 1 ; label: 1 0 0 1 1 → tp=2 fp=1 tn=1 fn=1
    m = summarize(POPE, _pope_records([1, 1, 0, 0, 1], [1, 0, 0, 1, 1])).metrics
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 1, 1, 1) and all(isinstance(m[k], int) for k in ("tp", "n", "unparsed"))
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(2 / 3)
    assert m["yes_ratio"] == pytest.approx(3 / 5)  # share of predicted yes, not of labels
    assert m["unparsed"] == 0


def test_zero_divisions_are_null():
    m = summarize(POPE, _pope_records([0, 0], [0, 0])).metrics
    assert m["precision"] is None and m["recall"] is None and m["f1"] is None and m["accuracy"] == 1.0
    assert summarize(POPE, []).metrics["accuracy"] is None


def test_unread_answers_are_wrong_but_not_predictions():
    m = summarize(POPE, _pope_records([None, 1, None, 0], [1, 1, 0, 0])).metrics
    assert (m["tp"], m["fp"], m["tn"], m["fn"], m["unparsed"]) == (1, 0, 1, 0, 2)
    assert m["accuracy"] == 0.5 and m["recall"] == 0.5 and m["precision"] == 1.0 and m["yes_ratio"] == 0.25


ACCURACY = Measure(stats=("right", "n"), unit_stats=lambda rs: (bool(rs[0]["correct"]), 1), metrics=(Metric("acc", ratio("right", "n"), True, ci=True),))


def test_bootstrap_reproducible_and_brackets_estimate():
    rng = np.random.default_rng(0)
    records = [{"id": str(i), "correct": bool(c)} for i, c in enumerate(rng.random(500) < 0.7)]
    a, b = summarize(ACCURACY, records), summarize(ACCURACY, records)
    assert a.ci == b.ci and a.groups == {}
    lo, hi = a.ci["acc"]
    p = a.metrics["acc"]
    assert lo < p < hi
    se = np.sqrt(p * (1 - p) / 500)  # normal approximation of the 95% interval for a proportion
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert summarize(ACCURACY, []).ci == {}


def _counted_loop_ci(measure, records, names):
    """Intervals by counting, one resample at a time: a fresh generator; per resample, how often each of the
    records' distinct statistic rows is drawn — multinomial(n, the row's share)."""
    table = unit_table(measure, records)
    patterns, inverse = np.unique(table.rows, axis=0, return_inverse=True)
    shares = np.bincount(np.asarray(inverse).reshape(-1)) / len(records)
    draws = np.random.default_rng(BOOTSTRAP_SEED)
    values: dict[str, list[float]] = {}
    for _ in range(1000):
        sums = dict(zip(measure.stats, draws.multinomial(len(records), shares) @ patterns))
        for k, v in evaluate(measure, {ALL: sums}, pooled=True).items():
            if v is not None and k in names:
                values.setdefault(k, []).append(v)
    return {k: [float(np.quantile(v, q)) for q in CI_QUANTILES] for k, v in values.items()}


POPE_CI = ("accuracy", "precision", "recall", "f1", "yes_ratio")


@pytest.mark.parametrize("case", ["mixed", "all_no", "with_unread"])
def test_intervals_of_few_distinct_rows_equal_a_counting_loop(case):
    """POPE's units share a few statistic rows (its confusion cells): each resample draws how often each is drawn,
    all resamples at once — the intervals of a loop drawing one resample's counts at a time."""
    rng = np.random.default_rng(3)
    label = rng.integers(0, 2, size=57)
    pred = {"mixed": rng.integers(0, 2, size=57), "all_no": np.zeros(57, dtype=np.int64), "with_unread": rng.integers(-1, 2, size=57)}[case]
    records = _pope_records(pred.tolist(), label.tolist())
    got = summarize(POPE, records)
    expected = _counted_loop_ci(POPE, records, POPE_CI)
    assert got.ci == expected
    assert got.groups["random"]["ci"] == expected  # one group: resampled alone with a fresh generator, same draws


def test_counted_draws_have_the_distribution_of_drawn_positions():
    """Counting draws of the distinct rows is the bootstrap itself, not an approximation: the counts have the
    multinomial mean and covariance of n positions drawn with replacement, and POPE's intervals agree with an
    index-resampling loop's to within the resampling noise of 1,000 draws."""
    from mmhallu_eval.resample import Resampler

    rng = np.random.default_rng(8)
    rows = np.eye(4)[rng.integers(0, 4, size=300)]
    share = rows.mean(axis=0)
    (sums,) = Resampler(rows).counted_sums([np.arange(300)], np.random.default_rng(1), 20_000)
    positions = rows[np.random.default_rng(2).integers(0, 300, size=(20_000, 300))].sum(axis=1)
    expected_cov = 300 * (np.diag(share) - np.outer(share, share))
    for draws in (sums, positions):
        assert np.allclose(draws.mean(axis=0), 300 * share, rtol=0.01)
        assert np.allclose(np.cov(draws.T), expected_cov, atol=0.05 * expected_cov.max())
    label = rng.integers(0, 2, size=400)
    records = _pope_records(np.where(rng.random(400) < 0.85, label, 1 - label).tolist(), label.tolist())
    got, by_positions = summarize(POPE, records).ci, _loop_ci(POPE, records, POPE_CI)
    for name, (lo, hi) in by_positions.items():
        assert got[name] == pytest.approx([lo, hi], abs=0.2 * (hi - lo)), name


SCORE = Measure(stats=("score", "n"), unit_stats=lambda rs: (rs[0]["score"], 1), metrics=(Metric("mean", ratio("score", "n"), ci=True),))


def _loop_ci(measure, records, names):
    """Intervals by the textbook loop: a fresh generator, 1,000 resamples of the records' indices."""
    table = unit_table(measure, records)
    draws = np.random.default_rng(BOOTSTRAP_SEED)
    values: dict[str, list[float]] = {}
    for _ in range(1000):
        idx = draws.integers(0, len(records), size=len(records))
        sums = dict(zip(measure.stats, table.rows[idx].sum(axis=0)))
        for k, v in evaluate(measure, {ALL: sums}, pooled=True).items():
            if v is not None and k in names:
                values.setdefault(k, []).append(v)
    return {k: [float(np.quantile(v, q)) for q in CI_QUANTILES] for k, v in values.items()}


@pytest.mark.parametrize("kind", ["pope", "scores"])
@pytest.mark.parametrize("block, kept, sets", [(1 << 20, 1 << 23, 64), (1000, 10, 1)])
def test_groups_of_one_size_and_every_drawing_path_equal_the_loop(kind, block, kept, sets, monkeypatch):
    """Groups of equal size reuse one set of picks (each set's generator starts from the seed); picks drawn in
    several blocks, not kept, few or many distinct unit rows, whole or fractional statistics, intervals taken set by
    set or several sets at once: every group's interval is that of its own index-resampling loop (to the last bits,
    for fractional statistics)."""
    import mmhallu_eval.measure as measure_module
    import mmhallu_eval.resample as resample_module

    monkeypatch.setattr(resample_module, "_DRAW_BLOCK", block)
    monkeypatch.setattr(measure_module, "_KEPT_PICKS", kept)
    monkeypatch.setattr(measure_module, "_QUANTILE_SETS", sets)
    rng = np.random.default_rng(11)
    if kind == "pope":
        measure, names = POPE, POPE_CI
        groups = {g: _pope_records(rng.integers(-1, 2, size=40).tolist(), rng.integers(0, 2, size=40).tolist(), group=g) for g in ("a", "b")}
    else:
        measure, names = SCORE, ("mean",)
        groups = {g: [{"id": str(i), "group": g, "score": float(x)} for i, x in enumerate(rng.random(40) * 3)] for g in ("a", "b")}
    for g, rs in groups.items():
        for r in rs:
            r["id"] = f"{g}{r['id']}"
    got = summarize(measure, [r for rs in groups.values() for r in rs])
    for g, rs in groups.items():
        expected = (_counted_loop_ci if kind == "pope" else _loop_ci)(measure, rs, names)
        if kind == "pope":
            assert got.groups[g]["ci"] == expected, g
        else:  # fractional sums: the same draws, added in another order
            assert got.groups[g]["ci"] == {k: pytest.approx(v, rel=1e-12) for k, v in expected.items()}, g


@pytest.mark.parametrize("units", [300, 70_000])
def test_counts_of_few_distinct_rows_equal_index_sums(units):
    """Few distinct unit rows are counted in a narrow integer type sized to the stratum (16 bits below 65,536 units,
    32 above): each draw's sums equal the picked rows summed directly."""
    from mmhallu_eval.resample import Resampler

    rng = np.random.default_rng(5)
    rows = np.eye(4)[rng.integers(0, 4, size=units)]  # four distinct rows, like POPE's confusion cells
    resampler = Resampler(rows)
    blocks = list(resampler.draw([units], np.random.default_rng(0), 3))
    (sums,) = resampler.sums([np.arange(units)], blocks)
    expected = np.concatenate([rows[picks].sum(axis=1) for picks in blocks])
    assert np.array_equal(sums, expected)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_distinct_rows_are_numpys_unique_rows(data):
    """The resampler's distinct rows — numbered for whole-number rows, else `np.unique(axis=0)` — are
    `np.unique(axis=0)`'s rows and indices."""
    from mmhallu_eval.resample import Resampler

    n, k = data.draw(st.integers(1, 60)), data.draw(st.integers(1, 8))
    values = data.draw(st.sampled_from([st.integers(-3, 3), st.integers(0, 2**40), st.floats(-4, 4).map(lambda x: round(x, 1))]))
    rows = np.array(data.draw(st.lists(st.lists(values, min_size=k, max_size=k), min_size=n, max_size=n)), dtype=np.float64)
    resampler = Resampler(rows)
    expected, expected_inverse = np.unique(rows, axis=0, return_inverse=True)
    assert np.array_equal(resampler.patterns, expected) and np.array_equal(resampler.inverse, np.asarray(expected_inverse).reshape(-1))


def test_stratified_resampling_keeps_group_sizes():
    """Stratified: every draw has each group's own number of units, and pooled values come from the same draws."""
    records = [{"id": f"{g}{i}", "group": g, "correct": i % k != 0} for g, n, k in (("a", 30, 3), ("b", 10, 2)) for i in range(n)]
    seen = []
    measure = Measure(
        stats=("right", "n"), unit_stats=lambda rs: (bool(rs[0]["correct"]), 1), stratified=True, group_order=("b", "a"),
        metrics=(Metric("acc", ratio("right", "n"), ci=True), Metric("n", count("n"))),
        # the formula may see one draw or a column of draws at once (see measure.draw_values)
        pooled=(PooledMetric("sizes", lambda by: seen.append({g: set(np.atleast_1d(s["n"]).tolist()) for g, s in by.items()}) or 0.0, ci=True),),
    )
    out = summarize(measure, records)
    assert list(out.groups) == ["b", "a"] and out.groups["a"]["n"] == 30
    assert seen and all(s == {"b": {10.0}, "a": {30.0}} for s in seen)
    table = unit_table(measure, records)
    pooled, per = intervals(measure, table, ["b", "a"])
    assert pooled == out.ci and per["a"] == out.groups["a"]["ci"]


def test_unit_sizes_are_checked():
    from mmhallu_eval import TaskError

    measure = Measure(stats=("n",), unit_stats=lambda rs: (1,), metrics=(), unit=lambda r: r["u"], unit_size=2, describe_unit=lambda k: f"image {k}")
    with pytest.raises(TaskError, match="image x: expected 2 questions, found 1"):
        summarize(measure, [{"id": "1", "u": "x"}])


def test_formulas_on_columns_of_draws_equal_draw_by_draw():
    """A formula that takes arrays runs once on all draws; the intervals equal those of the same formula written
    for one draw at a time, and a formula that means something else on arrays is caught and run draw by draw."""
    records = [{"id": str(i), "group": "ab"[i % 2], "correct": i % 3 != 0} for i in range(90)]

    def measure(formula):
        return Measure(stats=("right", "n"), unit_stats=lambda rs: (bool(rs[0]["correct"]), 1), metrics=(Metric("acc", formula, ci=True),))

    table = unit_table(measure(ratio("right", "n")), records)
    per_draw = intervals(measure(lambda s: s["right"] / s["n"] if s["n"] else None), table, ["a", "b"])
    assert intervals(measure(ratio("right", "n")), table, ["a", "b"]) == per_draw
    assert intervals(measure(lambda s: np.max(s["right"]) / s["n"]), table, ["a", "b"]) == per_draw
    assert per_draw[0]["acc"][0] < 2 / 3 < per_draw[0]["acc"][1]


def test_a_group_of_every_unit_has_the_pooled_intervals():
    """A run of one POPE split (and a task without groups) resamples the same units for the group as for the pooled
    values: the group's intervals are the pooled ones, equal to those the group's own draw gives."""
    records = _pope_records([1, 1, 0, 0, 1, -1, 0, 1] * 9, [1, 0, 0, 1, 1, 1, 0, 0] * 9, group="adversarial")
    table = unit_table(POPE, records)
    pooled, per = intervals(POPE, table, ["adversarial"])
    # pooled formulas declared apart turn the shortcut off: the group is drawn on its own
    apart = Measure(stats=POPE.stats, unit_stats=POPE.unit_stats, metrics=POPE.metrics, pooled=pooled_totals(POPE.stats, POPE.metrics))
    own_pooled, own = intervals(apart, table, ["adversarial"])
    assert per == own and pooled == own_pooled == per["adversarial"] and set(pooled) == {"accuracy", "precision", "recall", "f1", "yes_ratio"}
    assert per["adversarial"] is not pooled
