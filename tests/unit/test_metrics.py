import numpy as np
import pytest

from mmhallu_eval.metrics import binary_metrics, binary_rates, bootstrap_ci, safe_div


def test_binary_metrics_hand_computed():
    # pred:  1 1 0 0 1 ; label: 1 0 0 1 1 → tp=2 fp=1 tn=1 fn=1
    m = binary_metrics([1, 1, 0, 0, 1], [1, 0, 0, 1, 1])
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 1, 1, 1)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["yes_ratio"] == pytest.approx(3 / 5)  # share of predicted yes, not of labels
    assert m["unparsed"] == 0


def test_zero_divisions_are_null():
    m = binary_metrics([0, 0], [0, 0])
    assert m["precision"] is None and m["recall"] is None and m["f1"] is None and m["accuracy"] == 1.0
    assert binary_metrics([], [])["accuracy"] is None
    assert safe_div(1, 0) is None


def test_unread_answers_are_wrong_but_not_predictions():
    m = binary_metrics([None, 1, None, 0], [1, 1, 0, 0])
    assert (m["tp"], m["fp"], m["tn"], m["fn"], m["unparsed"]) == (1, 0, 1, 0, 2)
    assert m["accuracy"] == 0.5 and m["recall"] == 0.5 and m["precision"] == 1.0 and m["yes_ratio"] == 0.25


def test_bootstrap_reproducible_and_brackets_estimate():
    rng = np.random.default_rng(0)
    correct = rng.random(500) < 0.7
    stat = lambda idx: {"acc": float(correct[idx].mean())}
    ci1 = bootstrap_ci(len(correct), stat)
    ci2 = bootstrap_ci(len(correct), stat)
    assert ci1 == ci2
    lo, hi = ci1["acc"]
    assert lo < correct.mean() < hi
    # normal approximation of the 95% interval for a proportion, n=500
    se = np.sqrt(correct.mean() * (1 - correct.mean()) / 500)
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert bootstrap_ci(0, stat) == {}


@pytest.mark.parametrize("case", ["mixed", "all_no", "with_unread"])
def test_batched_bootstrap_equals_per_resample_loop(case):
    """The vectorised path (used by POPE) draws the same resamples and gives the very same intervals."""
    rng = np.random.default_rng(3)
    label = rng.integers(0, 2, size=57)
    pred = {"mixed": rng.integers(0, 2, size=57), "all_no": np.zeros(57, dtype=np.int64),
            "with_unread": rng.integers(-1, 2, size=57)}[case]
    keys = ("accuracy", "precision", "recall", "f1", "yes_ratio")

    def one(idx):
        m = binary_metrics(pred[idx], label[idx])
        return {k: m[k] for k in keys}

    def many(idx):
        return binary_rates(pred[idx], label[idx])

    assert bootstrap_ci(len(label), many, batched=True) == bootstrap_ci(len(label), one)
    strata = np.arange(57) % 3
    assert bootstrap_ci(len(label), many, batched=True, strata=strata) == bootstrap_ci(len(label), one, strata=strata)
