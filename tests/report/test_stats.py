"""McNemar, the paired bootstrap and Holm's adjustment against hand-computed cases and scipy."""
import numpy as np
import pytest
from scipy import stats

from mmhallu_eval.errors import TaskError
from mmhallu_eval.measure import Measure, Metric, ratio
from mmhallu_eval.metrics import BOOTSTRAP_SEED
from mmhallu_eval.report.scorecard import format_scorecard, scorecard
from mmhallu_eval.report.stats import bootstrap_p, holm, mcnemar, paired_bootstrap


def test_mcnemar_hand_computed():
    # b=1, c=6: two-sided exact binomial = 2·(C(7,0)+C(7,1))/2^7 = 16/128
    assert mcnemar(1, 6) == (pytest.approx(0.125), "mcnemar-exact")
    assert mcnemar(0, 0) == (1.0, "mcnemar-exact")
    assert mcnemar(5, 5)[0] == 1.0


@pytest.mark.parametrize("b,c", [(0, 3), (2, 9), (7, 7), (12, 13), (3, 22)])
def test_mcnemar_exact_matches_scipy_binomtest(b, c):
    assert mcnemar(b, c)[0] == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-12)


@pytest.mark.parametrize("b,c", [(20, 40), (100, 130), (300, 250)])
def test_mcnemar_chi2_matches_scipy(b, c):
    p, test = mcnemar(b, c)
    assert test == "mcnemar-chi2-cc"
    assert p == pytest.approx(stats.chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1), rel=1e-9)


def test_paired_bootstrap_reproducible_and_centered():
    rng = np.random.default_rng(1)
    base = rng.random(400) < 0.6
    tuned = base.copy()
    tuned[np.flatnonzero(~base)[:45]] = True  # 45 fixed
    tuned[np.flatnonzero(base)[:15]] = False  # 15 broken
    arr_b = {"all": np.stack([base, np.ones(400)], axis=1).astype(float)}
    arr_t = {"all": np.stack([tuned, np.ones(400)], axis=1).astype(float)}
    measure = Measure(stats=("right", "n"), unit_stats=lambda rs: (0, 1), metrics=(Metric("acc", ratio("right", "n"), True, ci=True),))
    d1 = paired_bootstrap(arr_b, arr_t, measure, resamples=500)
    d2 = paired_bootstrap(arr_b, arr_t, measure, resamples=500)
    assert np.array_equal(d1["acc"][None], d2["acc"][None])
    observed = tuned.mean() - base.mean()
    lo, hi = np.quantile(d1["acc"][None], [0.025, 0.975])
    assert lo < observed < hi and lo > 0
    assert bootstrap_p(d1["acc"][None]) < 0.01
    assert bootstrap_p(np.array([-1.0, 1.0] * 50)) == pytest.approx(1.0)


def _pope_units(rng, n):
    """POPE unit rows (its declared statistics) for n answers with some unread ones."""
    from mmhallu_tasks.pope.task import MEASURE as POPE

    names = {1: "yes", 0: "no", -1: None}
    preds, labels = rng.integers(-1, 2, size=n), rng.integers(0, 2, size=n)
    records = [{"id": str(i), "parsed": names[p], "target": names[t], "strict_parsed": names[p], "correct": p == t} for i, (p, t) in enumerate(zip(preds, labels))]
    return np.array([POPE.unit_stats([r]) for r in records], dtype=float)


@pytest.mark.parametrize("kind", ["pope", "many_rows", "fractional"])
def test_paired_bootstrap_blocks_equal_the_resample_loop(kind):
    """Whole-number statistics go a block of resamples at a time: the same deltas, in the same order, as the loop
    one resample at a time (three groups of different sizes, pooled and per group, metrics that are sometimes
    undefined); fractional ones take the loop itself."""
    from mmhallu_eval.report.stats import _paired_bootstrap_loop
    from mmhallu_tasks.pope.task import MEASURE as POPE

    rng = np.random.default_rng(7)
    sizes = {"adversarial": 31, "popular": 12, "random": 50}
    measure = POPE
    base = {g: _pope_units(rng, n) for g, n in sizes.items()}
    tuned = {g: _pope_units(rng, n) for g, n in sizes.items()}
    if kind == "fractional":
        base = {g: a + 0.25 for g, a in base.items()}
    if kind == "many_rows":  # a distinct statistic row per unit: counts per unit, not per distinct row
        measure = Measure(stats=("right", "n"), unit_stats=lambda rs: (0, 1), metrics=(Metric("acc", ratio("right", "n"), True, ci=True),))
        base = {g: np.stack([rng.integers(0, 30, n), rng.integers(0, 30, n) + 30], axis=1).astype(float) for g, n in sizes.items()}
        tuned = {g: np.stack([rng.integers(0, 30, n), rng.integers(0, 30, n) + 30], axis=1).astype(float) for g, n in sizes.items()}
    got = paired_bootstrap(base, tuned, measure, resamples=300)
    want = _paired_bootstrap_loop(base, tuned, measure, 300, BOOTSTRAP_SEED)
    assert set(got) == set(want) and {k: set(v) for k, v in got.items()} == {k: set(v) for k, v in want.items()}
    for name, per in want.items():
        for key, deltas in per.items():
            assert np.array_equal(got[name][key], deltas), (name, key)


def test_holm_hand_computed():
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): 4·0.005 = 0.02; 3·0.01 = 0.03; 2·0.03 = 0.06; 1·0.04 = 0.04 → 0.06 (never below the step before)
    assert holm([0.01, 0.04, 0.03, 0.005, None]) == pytest.approx([0.03, 0.06, 0.06, 0.02, None])
    assert holm([0.5, 0.9]) == [1.0, 1.0] and holm([]) == [] and holm([None]) == [None]


def _entry(p, delta=0.01):
    return {"base": 0.5, "tuned": 0.5 + delta, "delta": delta, "ci_low": 0.0, "ci_high": 0.02, "p_value": p, "higher_is_better": True,
            "better": "tuned", "significant": p < 0.05}


def test_the_scorecard_adjusts_over_the_rows_with_a_verdict_and_draws_verdicts_by_the_adjusted_p_when_asked():
    no_direction = {**_entry(0.0001), "higher_is_better": None, "better": None}  # no verdict: not in the family
    data = {"alpha": 0.05, "tasks": {"mytask": {"metrics": {"a": _entry(0.001), "b": _entry(0.03), "c": _entry(0.04), "d": no_direction}, "groups": {}}}}
    headline = {"mytask": ["a", "b", "c", "d"]}
    plain, adjusted = scorecard(data, headline), scorecard(data, headline, adjust="holm")
    assert [r["p_holm"] for r in plain] == pytest.approx([0.003, 0.06, 0.06, None])
    assert [r["verdict"] for r in plain] == ["improved", "improved", "improved", "—"]
    assert [r["verdict"] for r in adjusted] == ["improved", "no significant change", "no significant change", "—"]
    assert format_scorecard(plain).splitlines()[0].split()[-3:] == ["p", "(Holm)", "verdict"]
    with pytest.raises(TaskError, match="one of none, holm"):
        scorecard(data, headline, adjust="bonferroni")
