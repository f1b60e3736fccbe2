"""Base vs tuned on the samples both runs answered: per metric and group the two values, the delta with a
paired-bootstrap 95% CI, and a p-value (McNemar for per-sample accuracy, paired bootstrap otherwise)."""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..errors import TaskError
from ..measure import ALL, by_id, evaluate, unit_table
from ..registry import get_task
from ..scoring import file_names
from .protocol import PROTOCOL, comparable_settings, differing
from .rundata import RunData, TaskRun
from .stats import bootstrap_p, mcnemar, paired_bootstrap

ALPHA = 0.05


def _check_same_protocol(task: str, base: TaskRun, tuned: TaskRun) -> None:
    differ = differing({"base": base.result, "tuned": tuned.result}, PROTOCOL)
    if differ:
        key, values = next(iter(differ.items()))
        raise TaskError(
            f"{task}: the runs used different {key.replace('_', ' ')}s ({values['base']!r} vs "
            f"{values['tuned']!r}); rescore one of them so both use the same before comparing"
        )


def settings_differ(base: TaskRun, tuned: TaskRun) -> dict[str, dict[str, Any]]:
    """The settings two runs of a task made their answers with where they differ (greedy against sampled decoding,
    another token cap, a server that refused the temperature): a delta then mixes the tuning with the settings."""
    return differing({"base": base.result, "tuned": tuned.result}, comparable_settings([base.result, tuned.result]))


def settings_notes(entry: dict[str, Any]) -> list[str]:
    """One line per setting a compared task's runs differ in (its `settings_differ`), worded once for the command's
    notes and the page."""
    return [f"the runs' answers were made with different {key} (base {json.dumps(v['base'])}, tuned "
            f"{json.dumps(v['tuned'])}); the deltas include that difference"
            for key, v in entry.get("settings_differ", {}).items()]


def _differs(x: dict, y: dict) -> str | None:
    """How two records of one id are different questions: another target, or images with other file names (the
    folders may differ between machines). A side that names none (captions scored from another tool's file carry no
    image) says nothing."""
    tx, ty = x.get("target"), y.get("target")
    if tx is not None and ty is not None and tx != ty:
        return f"target {_short(tx)} vs {_short(ty)}"
    ix, iy = file_names(x.get("images") or []), file_names(y.get("images") or [])
    if ix and iy and ix != iy:
        return f"images {_short(ix)} vs {_short(iy)}"
    return None


def _check_same_questions(task: str, base: TaskRun, tuned: TaskRun, b: dict[str, dict], t: dict[str, dict]) -> None:
    """Samples are paired by id; an id that names another question in the other run (another copy of the benchmark,
    corrected labels, other images) would make every paired test compare unrelated answers."""
    for i, x in b.items():
        y = t.get(i)
        what = None if y is None else _differs(x, y)
        if what:
            raise TaskError(f"{task}: sample {i!r} is another question in each run ({what}; {base.samples_path} and {tuned.samples_path}): "
                            "the runs evaluated different data; compare runs made on the same benchmark files")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _common(task: str, base: TaskRun, tuned: TaskRun, intersect: bool) -> tuple[list[dict], list[dict], list[dict], dict[str, int]]:
    """(base records, tuned records, the common samples that failed in either run, counts): the records of the
    samples both runs answered, in base's order."""
    b = {r["id"]: r for r in base.samples}
    t = {r["id"]: r for r in tuned.samples}
    only_b, only_t = sorted(set(b) - set(t)), sorted(set(t) - set(b))
    if (only_b or only_t) and not intersect:
        raise TaskError(
            f"{task}: the runs evaluated different samples ({len(only_b)} only in base, e.g. {only_b[:3]}; "
            f"{len(only_t)} only in tuned, e.g. {only_t[:3]}); pass --intersect to compare the common samples"
        )
    _check_same_questions(task, base, tuned, b, t)
    ids = [i for i in b if i in t and b[i].get("error") is None and t[i].get("error") is None]
    failed = [b[i] for i in b if i in t and (b[i].get("error") is not None or t[i].get("error") is not None)]
    counts = {
        "n_common": len(ids), "n_base_only": len(only_b), "n_tuned_only": len(only_t),
        "n_excluded_errors": len(failed),
    }
    return [b[i] for i in ids], [t[i] for i in ids], failed, counts


def _entry(base: float | None, tuned: float | None, deltas: np.ndarray | None, direction: bool | None, test: str, p: float | None) -> dict[str, Any]:
    delta = None if base is None or tuned is None else tuned - base
    lo = hi = None
    if deltas is not None and len(deltas):
        lo, hi = float(np.quantile(deltas, 0.025)), float(np.quantile(deltas, 0.975))
    better = None
    if direction is not None and delta:
        better = "tuned" if (delta > 0) == direction else "base"
    return {
        "base": base, "tuned": tuned, "delta": delta, "ci_low": lo, "ci_high": hi, "p_value": p, "test": test,
        "higher_is_better": direction, "better": better, "significant": bool(p is not None and p < ALPHA),
    }


def _mcnemar_entry(base_recs: list[dict], tuned_recs: list[dict]) -> tuple[float, str]:
    b = sum(1 for x, y in zip(base_recs, tuned_recs) if x["correct"] and not y["correct"])
    c = sum(1 for x, y in zip(base_recs, tuned_recs) if not x["correct"] and y["correct"])
    return mcnemar(b, c)


#: what a task's unit and statistics functions raise on a record that lacks a field they read
_UNREADABLE = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def _unreadable(task: str, run: TaskRun, exc: Exception) -> TaskError:
    """The task's statistics read fields of its own (POPE's parsed answer, MME's image, CHAIR's mentions) that a
    record edited by hand, or written by another version of the task, may lack."""
    return TaskError(f"{run.samples_path}: a record lacks what {task}'s statistics read ({type(exc).__name__}: {exc}); "
                     "restore the file or score the answers again")


def _units(task: str, measure: Any, run: TaskRun, records: list[dict]) -> Any:
    """The units of a run's common records."""
    try:
        return unit_table(measure, records, validate=False)
    except _UNREADABLE as exc:
        raise _unreadable(task, run, exc) from None


def compare_task(task: str, base: TaskRun, tuned: TaskRun, intersect: bool) -> dict[str, Any]:
    _check_same_protocol(task, base, tuned)
    base_recs, tuned_recs, failed, counts = _common(task, base, tuned, intersect)
    measure = get_task(task).measure
    out: dict[str, Any] = {**counts, "metrics": {}, "groups": {}, "flipped": {"fixed": [], "broken": []}}
    differ = settings_differ(base, tuned)
    if differ:
        out["settings_differ"] = differ
    for x, y in zip(base_recs, tuned_recs):
        if x["correct"] is not None and bool(x["correct"]) != bool(y["correct"]):
            out["flipped"]["fixed" if y["correct"] else "broken"].append(x["id"])
    if failed and measure.unit is not by_id:
        # a unit that lost a question to a failure in either run is left out of both (metrics, intervals and tests),
        # as each run's result.json leaves it out
        try:
            lost = {measure.unit(r) for r in failed}
            kept = [i for i, r in enumerate(base_recs) if measure.unit(r) not in lost]
        except _UNREADABLE as exc:
            raise _unreadable(task, base, exc) from None
        base_recs, tuned_recs = [base_recs[i] for i in kept], [tuned_recs[i] for i in kept]
        out["n_left_out_with_unit"] = counts["n_common"] - len(kept)
    if not base_recs:
        out["note"] = "no common samples"
        return out
    table_b, table_t = _units(task, measure, base, base_recs), _units(task, measure, tuned, tuned_recs)
    rows_t = dict(zip(table_t.keys, table_t.rows))
    size_t = dict(zip(table_t.keys, table_t.sizes))
    keys = [i for i, k in enumerate(table_b.keys) if k in rows_t and size_t[k] == table_b.sizes[i]]
    group_of = [table_b.groups[i] for i in keys]
    groups = table_b.group_names() if keys else []
    arr_b = {g: np.array([table_b.rows[i] for i, gi in zip(keys, group_of) if gi == g]) for g in groups}
    arr_t = {g: np.array([rows_t[table_b.keys[i]] for i, gi in zip(keys, group_of) if gi == g]) for g in groups}
    named = lambda arrays, sel: {g: dict(zip(measure.stats, arrays[g].sum(axis=0))) for g in sel}
    deltas = paired_bootstrap(arr_b, arr_t, measure)
    by_group_b = {g: [r for r in base_recs if (r.get("group") or ALL) == g] for g in groups}
    by_group_t = {g: [r for r in tuned_recs if (r.get("group") or ALL) == g] for g in groups}
    for key in [None] + ([] if groups == [ALL] else groups):
        sel = groups if key is None else [key]
        mb = evaluate(measure, named(arr_b, sel), pooled=key is None)
        mt = evaluate(measure, named(arr_t, sel), pooled=key is None)
        wanted = set(base.result["metrics"] if key is None else base.result["groups"].get(key, {}))
        target = out["metrics"] if key is None else out["groups"].setdefault(key, {})
        for name, direction in measure.directions(pooled=key is None).items():
            if name not in mb or name not in wanted:
                continue
            d = deltas.get(name, {}).get(key)
            if name == measure.accuracy_metric:
                recs_b = base_recs if key is None else by_group_b[key]
                recs_t = tuned_recs if key is None else by_group_t[key]
                p, test = _mcnemar_entry(recs_b, recs_t)
            else:
                p, test = (bootstrap_p(d), "paired-bootstrap") if d is not None else (None, "paired-bootstrap")
            target[name] = _entry(mb[name], mt.get(name), d, direction, test, p)
    return out


def compare_runs(base: RunData, tuned: RunData, intersect: bool = False) -> dict[str, Any]:
    common = [t for t in base.tasks if t in tuned.tasks]
    if not common:
        raise TaskError(f"{base.source} and {tuned.source} have no task in common")
    return {
        "schema_version": 1,
        "base": {"run": str(base.source), "label": base.label, "model": base.manifest.get("model")},
        "tuned": {"run": str(tuned.source), "label": tuned.label, "model": tuned.manifest.get("model")},
        "intersect": intersect,
        "alpha": ALPHA,
        "tasks": {t: compare_task(t, base.tasks[t], tuned.tasks[t], intersect) for t in common},
        "tasks_only_in_base": [t for t in base.tasks if t not in tuned.tasks],
        "tasks_only_in_tuned": [t for t in tuned.tasks if t not in base.tasks],
    }
