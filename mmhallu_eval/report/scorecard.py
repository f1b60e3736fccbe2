"""The verdict first: one row per headline metric of each task (and per split a task puts on the scorecard), with
base, tuned, Δ and its CI, p, p adjusted for the scorecard's number of rows (Holm), and a mark — improved,
regressed, or no significant change — by p or, asked for, by the adjusted p. compare.json, the compare page and the
CLI all show these rows, from the same list."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import TaskError
from ..registry import get_task
from .stats import holm

IMPROVED, REGRESSED, UNCHANGED = "improved", "regressed", "no significant change"
#: what a verdict's p is: each row's own test (the default, as papers report one metric), or Holm's adjustment
#: over the scorecard's rows (at most alpha chance of any false "improved"/"regressed" among them)
ADJUSTMENTS = ("none", "holm")
#: what `--adjust` means, for every command that draws a scorecard
ADJUST_HELP = ("none: each scorecard verdict by its row's p; holm: by p adjusted with Holm's method for the number of rows "
               "(at most 5% chance of any false verdict among them).")


def _has_verdict(e: dict[str, Any]) -> bool:
    """A delta and a metric direction: without either, a row is shown but no verdict is drawn from it."""
    return e.get("delta") is not None and e.get("higher_is_better") is not None


def _verdict(e: dict[str, Any], significant: bool) -> str:
    if not _has_verdict(e):
        return "—"
    if not significant:
        return UNCHANGED
    return IMPROVED if e.get("better") == "tuned" else REGRESSED


def _groups_of(task: str) -> tuple[str, ...]:
    try:
        return get_task(task).capabilities.scorecard_groups
    except TaskError:  # a run of a plugin not loaded here still gets its pooled rows
        return ()


def scorecard(data: dict[str, Any], headline: dict[str, list[str]], first: Sequence[tuple[str, str | None]] = (),
              adjust: str = "none") -> list[dict[str, Any]]:
    """Rows for every task of a compare result: its headline metrics pooled, then per scorecard group; the (task,
    group) pairs in `first` lead, in that order (e.g. the split where a model's hallucination was designed to show).
    `adjust`: "holm" marks a row significant by its Holm-adjusted p (`p_holm`, over the rows with a p and a verdict)
    instead of its p."""
    if adjust not in ADJUSTMENTS:
        raise TaskError(f"adjust {adjust!r}: one of {', '.join(ADJUSTMENTS)}")
    entries = []
    for task, t in data["tasks"].items():
        scopes: list[tuple[str | None, dict[str, Any]]] = [(None, t["metrics"])]
        scopes += [(g, t["groups"][g]) for g in _groups_of(task) if g in t.get("groups", {})]
        for group, metrics in scopes:
            for metric in headline.get(task, []):
                e = metrics.get(metric)
                if e is not None:
                    entries.append((task, group, metric, e))
    adjusted = holm([e["p_value"] if _has_verdict(e) else None for *_, e in entries])  # the family: rows with a verdict
    rows = []
    for (task, group, metric, e), p_holm in zip(entries, adjusted):
        significant = e["significant"] if adjust == "none" else p_holm is not None and p_holm < data["alpha"]
        rows.append({"task": task, "group": group, "metric": metric, "base": e["base"], "tuned": e["tuned"],
                     "delta": e["delta"], "ci_low": e["ci_low"], "ci_high": e["ci_high"], "p_value": e["p_value"],
                     "p_holm": p_holm, "higher_is_better": e["higher_is_better"], "verdict": _verdict(e, significant)})
    lead = {key: i for i, key in enumerate(first)}
    return sorted(rows, key=lambda r: lead.get((r["task"], r["group"]), len(lead)))  # stable: the rest keep their order


def _num(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def format_scorecard(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table for the terminal."""
    table = [("task / split", "metric", "base", "tuned", "Δ [95% CI]", "p", "p (Holm)", "verdict")]
    for r in rows:
        scope = r["task"] + (f" / {r['group']}" if r["group"] else "")
        arrow = {True: " ↑", False: " ↓"}.get(r["higher_is_better"], "")
        ci = f" [{_num(r['ci_low'])}, {_num(r['ci_high'])}]" if r["ci_low"] is not None else ""
        delta = "—" if r["delta"] is None else f"{r['delta']:+.4f}{ci}"
        p, p_holm = ("—" if v is None else f"{v:.3g}" for v in (r["p_value"], r.get("p_holm")))
        table.append((scope, r["metric"] + arrow, _num(r["base"]), _num(r["tuned"]), delta, p, p_holm, r["verdict"]))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table)
