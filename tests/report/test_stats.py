"""McNemar and the paired bootstrap against hand-computed cases and scipy."""
import numpy as np
import pytest
from scipy import stats

from mmhallu_eval.measure import Measure, Metric, ratio
from mmhallu_eval.report.stats import bootstrap_p, mcnemar, paired_bootstrap


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
