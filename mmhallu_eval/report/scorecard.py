"""The verdict first: one row per headline metric of each task (and per split a task puts on the scorecard), with
base, tuned, Δ and its CI, p, and a mark — improved, regressed, or no significant change. compare.json, the compare
page and the CLI all show these rows, from the same list."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import TaskError
from ..registry import get_task

IMPROVED, REGRESSED, UNCHANGED = "improved", "regressed", "no significant change"


def _verdict(e: dict[str, Any]) -> str:
    if e.get("delta") is None or e.get("higher_is_better") is None:
        return "—"
    if not e.get("significant"):
        return UNCHANGED
    return IMPROVED if e.get("better") == "tuned" else REGRESSED


def _groups_of(task: str) -> tuple[str, ...]:
    try:
        return get_task(task).capabilities.scorecard_groups
    except TaskError:  # a run of a plugin not loaded here still gets its pooled rows
        return ()


def scorecard(data: dict[str, Any], headline: dict[str, list[str]], first: Sequence[tuple[str, str | None]] = ()) -> list[dict[str, Any]]:
    """Rows for every task of a compare result: its headline metrics pooled, then per scorecard group; the (task,
    group) pairs in `first` lead, in that order (e.g. the split where a model's hallucination was designed to show)."""
    rows = []
    for task, t in data["tasks"].items():
        scopes: list[tuple[str | None, dict[str, Any]]] = [(None, t["metrics"])]
        scopes += [(g, t["groups"][g]) for g in _groups_of(task) if g in t.get("groups", {})]
        for group, metrics in scopes:
            for metric in headline.get(task, []):
                e = metrics.get(metric)
                if e is None:
                    continue
                rows.append({"task": task, "group": group, "metric": metric, "base": e["base"], "tuned": e["tuned"],
                             "delta": e["delta"], "ci_low": e["ci_low"], "ci_high": e["ci_high"], "p_value": e["p_value"],
                             "higher_is_better": e["higher_is_better"], "verdict": _verdict(e)})
    lead = {key: i for i, key in enumerate(first)}
    return sorted(rows, key=lambda r: lead.get((r["task"], r["group"]), len(lead)))  # stable: the rest keep their order


def _num(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def format_scorecard(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table for the terminal."""
    table = [("task / split", "metric", "base", "tuned", "Δ [95% CI]", "p", "verdict")]
    for r in rows:
        scope = r["task"] + (f" / {r['group']}" if r["group"] else "")
        arrow = {True: " ↑", False: " ↓"}.get(r["higher_is_better"], "")
        ci = f" [{_num(r['ci_low'])}, {_num(r['ci_high'])}]" if r["ci_low"] is not None else ""
        delta = "—" if r["delta"] is None else f"{r['delta']:+.4f}{ci}"
        p = "—" if r["p_value"] is None else f"{r['p_value']:.3g}"
        table.append((scope, r["metric"] + arrow, _num(r["base"]), _num(r["tuned"]), delta, p, r["verdict"]))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table)
