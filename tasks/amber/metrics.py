"""AMBER's numbers from summed per-answer counters: unrounded fractions for comparison, and the official printout
(`official_table`), computed the way the script computes it — counters that start at 0.001, percentages rounded to
one decimal, F1 from the rounded precision and recall with 0.0001 (existence: 0.001) in the denominator."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from mmhallu_eval import Sums, add_sums, f1_of, quotient, ratio

from .loaders import INITIAL_NUM

GENERATIVE_STATS = ("chair_score", "chair_num", "safe_cover_score", "safe_cover_num", "hallu_cover_score", "hallu_cover_num",
                    "non_hallu_score", "non_hallu_num")
DISCRIMINATIVE_STATS = ("correct_score", "correct_num", "no_score", "no_num", "ans_no_score", "ans_no_num")
STATS = GENERATIVE_STATS + DISCRIMINATIVE_STATS
ATTRIBUTES = ("state", "number", "action")
DISCRIMINATIVE = ("existence", *ATTRIBUTES, "relation")


@lru_cache(maxsize=65536)
def counter(total: int) -> float:
    """A `*_num` counter after `total` increments: 0.001 plus one, `total` times, in floating point as the script adds
    (not 0.001 + total, which differs in the last bit for about one count in six). Counters the script raises by more
    than one at a time are replayed in steps of one; the two can differ in the last bit of the denominator, which moves
    a printed value only within 1e-13 of a rounding boundary."""
    value = INITIAL_NUM
    for _ in range(int(total)):
        value += 1
    return value


def _complement(formula):
    """1 - formula (None stays None)."""
    def complement(s: Sums) -> Any:
        value = formula(s)
        return None if value is None else 1 - value
    return complement


def precision(s: Sums) -> float | None:
    """Of the answers "No", the share whose truth is no."""
    return quotient(s["ans_no_score"], s["ans_no_num"])


def recall(s: Sums) -> float | None:
    return quotient(s["no_score"], s["no_num"])


def f1(s: Sums) -> float | None:
    return f1_of(precision(s), recall(s))


FRACTIONS = {
    "chair": (ratio("chair_score", "chair_num"), False),
    "cover": (ratio("safe_cover_score", "safe_cover_num"), True),
    "hal": (_complement(ratio("non_hallu_score", "non_hallu_num")), False),
    "cog": (ratio("hallu_cover_score", "hallu_cover_num"), False),
    "accuracy": (ratio("correct_score", "correct_num"), True),
    "precision": (precision, True),
    "recall": (recall, True),
    "f1": (f1, True),
}


def _pct(score: float, num: float) -> float:
    return round(score / num * 100, 1)


def _yes_no_table(score: dict[str, float], num: dict[str, float], epsilon: float) -> dict[str, float]:
    p = _pct(score["ans_no"], num["ans_no"])
    r = _pct(score["no"], num["no"])
    return {"Accuracy": _pct(score["correct"], num["correct"]), "Precision": p, "Recall": r,
            "F1": round(2 * (p / 100) * (r / 100) / ((p / 100) + (r / 100) + epsilon) * 100, 1)}


def _section(sums: list[Sums], epsilon: float = 0.0001) -> dict[str, float]:
    """One printed section over the script's counters of `sums` (one counter each, added in the script's order)."""
    score = {k: sum(s[f"{k}_score"] for s in sums) for k in ("correct", "no", "ans_no")}
    # one script counter per section, added left to right (0.0 + the first is the first exactly)
    num = {k: sum(counter(int(s[f"{k}_num"])) for s in sums) for k in ("correct", "no", "ans_no")}
    return _yes_no_table(score, num, epsilon)


def official_table(groups: dict[str, Sums]) -> dict[str, Any] | None:
    """The sections the script prints for the sections evaluated, with its labels and rounding."""
    zero = {k: 0.0 for k in STATS}
    get = lambda name: groups.get(name, zero)  # noqa: E731 - an unevaluated section's counters stay at their start
    table: dict[str, Any] = {}
    if "generative" in groups:
        g = groups["generative"]
        table["generative"] = {
            "CHAIR": _pct(g["chair_score"], counter(int(g["chair_num"]))),
            "Cover": _pct(g["safe_cover_score"], counter(int(g["safe_cover_num"]))),
            "Hal": round(100 - g["non_hallu_score"] / counter(int(g["non_hallu_num"])) * 100, 1),
            "Cog": _pct(g["hallu_cover_score"], counter(int(g["hallu_cover_num"]))),
        }
    has_attribute = any(a in groups for a in ATTRIBUTES)
    if "existence" in groups and has_attribute and "relation" in groups:
        table["discriminative"] = _section([add_sums((get(n) for n in DISCRIMINATIVE), STATS)])
    if "existence" in groups:
        table["existence"] = _section([get("existence")], epsilon=0.001)
    if has_attribute:
        table["attribute"] = _section([get(a) for a in ATTRIBUTES])
        for a in ATTRIBUTES:
            table[a] = _section([get(a)])
    if "relation" in groups:
        table["relation"] = _section([get("relation")])
    return table or None


def amber_score(groups: dict[str, Sums]) -> float | None:
    """The AMBER paper's single number: (100 − CHAIR + F1) / 2, from the printed CHAIR and discriminative F1."""
    table = official_table(groups) or {}
    if "generative" not in table or "discriminative" not in table:
        return None
    return (100 - table["generative"]["CHAIR"] + table["discriminative"]["F1"]) / 2
