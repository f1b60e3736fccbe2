"""HallusionBench's numbers as the official `evaluation.py` + `utils.py` compute them, from per-set statistics that add
up (every question pair and figure lies within one set: category_subcategory_setid)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from mmhallu_eval import Sums, add_sums

from .verdicts import CORRECT, INCORRECT, UNCLEAR

STATS = ("q_n", "q_correct", "pair_n", "pair_correct", "easy_n", "easy_correct", "hard_n", "hard_correct", "easy_q", "hard_q",
         "fig_n", "fig_correct", "fig_wrong", "fig_inconsistent", "fig_score", "lh", "vi", "mix", "yes_pred", "yes_gt",
         "fp_n", "fp_gt", "unclear", "no_original")


def analysis(m: dict[str, str], verdict: str, same: str | None, original: str | None) -> tuple[int, int]:
    """(LH, VI) of one question, `get_eval_pair_all`'s decision tree; `original` is the figure-0 verdict of its pair."""
    if m["figure_id"] == "0":
        if m["category"] == "VD":
            return (0, 1) if verdict in (INCORRECT, UNCLEAR) else (0, 0)
        return (1, 0) if verdict == INCORRECT else (0, 0)
    if m["category"] == "VD":
        if original == CORRECT and verdict == INCORRECT:
            return (1, 1) if same == "1" else (0, 1)
        if original == CORRECT and verdict == UNCLEAR:
            return (0, 1)
        return (0, 1) if verdict in (INCORRECT, UNCLEAR) else (0, 0)
    if original == INCORRECT:
        if verdict == INCORRECT:
            return (1, 0) if same == "1" else (1, 1)
        return (1, 1) if verdict == UNCLEAR else (0, 0)
    if original == UNCLEAR:
        return (0, 1) if verdict in (INCORRECT, UNCLEAR) else (0, 0)
    if verdict == UNCLEAR:
        return (0, 1)
    if verdict == INCORRECT:
        if m["visual_input"] == "1":
            return (0, 1)
        if m["visual_input"] == "2":
            return (1, 0) if same == "1" else (0, 1)
        raise ValueError(f"{m['category']}_{m['subcategory']}_{m['set_id']}: a visual_input other than 1/2 beside figure 0 (the script's 'Data error')")
    return (0, 0)


def _pairs(records: list[dict[str, Any]], keep) -> tuple[int, int]:
    pairs: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        if keep(r["metadata"]):
            p = pairs[r["metadata"]["question_id"]]
            p[0] += int(r["correct"])
            p[1] += 1
    return len(pairs), sum(c == t for c, t in pairs.values())


def set_stats(records: list[dict[str, Any]]) -> tuple[float, ...]:
    """One set's statistics in STATS order."""
    s: dict[str, float] = dict.fromkeys(STATS, 0)
    originals = {r["metadata"]["question_id"]: r["parsed"] for r in records if r["metadata"]["figure_id"] == "0"}
    figures: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        m, correct = r["metadata"], int(r["correct"])
        s["q_n"] += 1
        s["q_correct"] += correct
        lh, vi = (0, 0) if r.get("no_original") else analysis(m, r["parsed"], r.get("same"), originals.get(m["question_id"]))
        s["no_original"] += bool(r.get("no_original"))
        s["mix" if lh and vi else "lh" if lh else "vi"] += 1 if (lh or vi) else 0
        if not (m["category"] == "VS" and m["figure_id"] == "0"):
            f = figures[m["figure_id"]]
            f[0] += correct
            f[1] += 1
        gt = int(m["gt_answer"])
        s["yes_gt"] += gt
        s["yes_pred"] += int(correct == gt)
        if correct == 0:
            s["fp_n"] += 1
            s["fp_gt"] += gt
        s["unclear"] += r["parsed"] == UNCLEAR
        s["easy_q" if m["visual_input"] != "2" else "hard_q"] += 1
    s["pair_n"], s["pair_correct"] = _pairs(records, lambda m: True)
    s["easy_n"], s["easy_correct"] = _pairs(records, lambda m: m["visual_input"] != "2")
    s["hard_n"], s["hard_correct"] = _pairs(records, lambda m: m["visual_input"] == "2")
    for c, t in figures.values():
        s["fig_n"] += 1
        s["fig_correct" if c == t else "fig_wrong" if c == 0 else "fig_inconsistent"] += 1
        s["fig_score"] += c / t
    return tuple(s[k] for k in STATS)


def analysis_share(name: str):
    """A share of the LH/VI analysis; None when questions lacked their figure-0 answer (the analysis would be partial)."""
    return lambda s: s[name] / (s["lh"] + s["vi"] + s["mix"]) if s["lh"] + s["vi"] + s["mix"] and not s["no_original"] else None


def _pct(num: float, den: float) -> float | None:
    return round(100 * num / den, 4) if den else None


def official_table(groups: dict[str, Sums]) -> dict[str, Any]:
    """The script's tables keyed by its own labels, its rounding included (None where it would divide by zero)."""
    levels = {name: groups[name] for name in ("VD", "VS") if name in groups}
    levels["Overall"] = add_sums(groups.values(), STATS)
    overall = levels["Overall"]
    per_figure = {}
    for name, s in levels.items():
        wrong = None if not s["fig_n"] else _pct(s["fig_inconsistent"], s["fig_n"]) + _pct(s["fig_wrong"], s["fig_n"])  # type: ignore[operator]
        per_figure[name] = {"Correct": _pct(s["fig_correct"], s["fig_n"]), "Wrong": wrong,
                            "Score": round(s["fig_score"] / s["fig_n"], 4) if s["fig_n"] else None}
    cg = 0 if overall["no_original"] else overall["lh"] + overall["vi"] + overall["mix"]  # no analysis without every figure-0 answer
    return {
        "leaderboard": {
            "Acc per question pair (qAcc)": _pct(overall["pair_correct"], overall["pair_n"]),
            "Acc per figure (fAcc)": _pct(overall["fig_correct"], overall["fig_n"]),
            "Acc per easy question (easy aAcc)": _pct(overall["easy_correct"], overall["easy_n"]),
            "Acc per hard question (hard aAcc)": _pct(overall["hard_correct"], overall["hard_n"]),
            "Acc per question (aAcc)": _pct(overall["q_correct"], overall["q_n"]),
        },
        "bias_consistency": {
            "Yes/No Bias (Pct Diff)": overall["yes_pred"] / overall["q_n"] - overall["yes_gt"] / overall["q_n"] if overall["q_n"] else None,
            "Yes/No Bias (FP Ratio)": (overall["fp_n"] - overall["fp_gt"]) / overall["fp_n"] if overall["fp_n"] else None,
            "Consistency Test (correct)": _pct(overall["fig_correct"], overall["fig_n"]),
            "Consistency Test (inconsistent)": _pct(overall["fig_inconsistent"], overall["fig_n"]),
            "Consistency Test (wrong)": _pct(overall["fig_wrong"], overall["fig_n"]),
            "LH": _pct(overall["lh"], cg), "VI": _pct(overall["vi"], cg), "Mixed": _pct(overall["mix"], cg),
        },
        "per question": {name: {"Total": _pct(s["q_correct"], s["q_n"])} for name, s in levels.items()},
        "per question pair": {name: {"Easy": _pct(s["easy_correct"], s["easy_n"]), "Hard": _pct(s["hard_correct"], s["hard_n"]),
                                     "Total": _pct(s["pair_correct"], s["pair_n"])} for name, s in levels.items()},
        "per figure": per_figure,
    }
