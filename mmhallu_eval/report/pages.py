"""The three reports: one run (`report.html`), base vs tuned (`compare.html` + `compare.json`), leaderboard."""
from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote
from collections.abc import Sequence
from typing import Any, Callable

from ..files import atomic_write_json, atomic_write_text
from ..outputs import check_outputs, file_in
from ..registry import get_task, task_names
from ..task import TaskError
from .charts import Bar, bar_chart
from .compare import compare_runs, settings_notes
from .protocol import PROTOCOL, comparable_settings, differing
from .render import fmt_number, thumbnail, write_page
from .scorecard import scorecard
from .rundata import RunData, load_run

MAX_THUMBNAILS = 1500


def _headline(task: str, result: dict[str, Any]) -> list[str]:
    try:
        names = list(get_task(task).headline)
    except TaskError:
        names = []
    names = [n for n in names if n in result["metrics"]]
    return names or [k for k, v in result["metrics"].items() if isinstance(v, float)][:3]


def _displayer(task: str) -> Any:
    """The task's own one-line display of a parsed value (a declared capability), if it has one."""
    try:
        return get_task(task).capabilities.display
    except TaskError:
        return None


def _display(value: Any, show: Any = None) -> str:
    if show is not None and value is not None:
        try:
            return str(show(value))
        except (KeyError, TypeError, AttributeError, ValueError):
            pass
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)[:300]
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)


def image_locator(run: RunData) -> Callable[[str], tuple[Path | None, str]]:
    """Where a sample's image is, if the report may show it: only files under the data folders the run recorded,
    with relative names resolved against the folder the run was started in (symbolic links followed), else why not."""
    cwd = Path(run.manifest.get("cwd") or run.root)
    roots = [Path(r).resolve() for t in run.manifest.get("tasks", {}).values() for r in t.get("data_roots", [])]

    def locate(name: str) -> tuple[Path | None, str]:
        if not roots:
            return None, "not shown: the run recorded no data folders"
        path = Path(name) if Path(name).is_absolute() else cwd / name
        try:
            real = path.resolve()
        except (OSError, RuntimeError):
            return None, "not shown: the path cannot be resolved"
        if not any(real.is_relative_to(r) for r in roots):
            return None, "not shown: outside the run's data folders"
        if not real.is_file():
            return None, "missing"
        return real, ""

    return locate


def _sample_rows(task: str, samples: list[dict[str, Any]], thumbs: dict[str, str | None], locate: Callable[[str], tuple[Path | None, str]]) -> list[dict[str, Any]]:
    show = _displayer(task)
    rows = []
    for i, s in enumerate(samples):
        image = str(s["images"][0]) if isinstance(s.get("images"), list) and s["images"] else None
        thumb, note = None, ""
        if image and i < MAX_THUMBNAILS:
            path, note = locate(image)
            thumb = thumbnail(path, thumbs) if path is not None else None
            if path is not None and thumb is None:
                note = "not shown: the file could not be decoded as a (reasonably sized) image"
        rows.append({
            "id": s["id"], "group": s.get("group") or "", "prompt": s.get("prompt", ""), "response": s.get("response", ""),
            "parsed": _display(s.get("parsed"), show), "target": _display(s.get("target")), "correct": s.get("correct"),
            "error": s.get("error"), "image": image, "thumb": thumb, "thumb_note": note,
        })
    return rows


def run_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    run = load_run(run_dir)
    out = file_in(out, "report.html") if out else run.page
    check_outputs([out], [run.source], own_names={"report.html"})
    thumbs: dict[str, str | None] = {}
    locate = image_locator(run)
    tasks = []
    for name, task in run.tasks.items():
        r = task.result
        headline = _headline(name, r)
        bars = [Bar(m, run.label, r["metrics"][m], *(r.get("ci", {}).get(m) or (None, None))) for m in headline]
        group_metrics = sorted({k for g in r["groups"].values() for k, v in g.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        tasks.append({
            "name": name, "result": r, "headline": headline, "chart": bar_chart(bars, f"{name} headline metrics"),
            "group_metrics": group_metrics, "samples": _sample_rows(name, task.samples, thumbs, locate),
            "other_metrics": {k: v for k, v in r["metrics"].items() if k not in headline and not isinstance(v, (dict, list))},
        })
    return write_page("run.html.j2", out, run=run, tasks=tasks, manifest_json=json.dumps(run.manifest, indent=2, ensure_ascii=False), fmt=fmt_number)


#: flipped samples per collapsed block on the compare page
FLIP_PAGE = 50


def _flip_rows(task: str, base: RunData, tuned: RunData, ids: list[str], limit: int = 200) -> list[dict[str, Any]]:
    show = _displayer(task)
    b = {s["id"]: s for s in base.tasks[task].samples}
    t = {s["id"]: s for s in tuned.tasks[task].samples}
    return [
        {"id": i, "prompt": b[i].get("prompt", ""), "target": _display(b[i].get("target")), "base": b[i].get("response", ""),
         "base_parsed": _display(b[i].get("parsed"), show), "tuned": t[i].get("response", ""), "tuned_parsed": _display(t[i].get("parsed"), show)}
        for i in ids[:limit]
    ]


def compare_report(base_dir: str | Path, tuned_dir: str | Path, out_dir: str | Path | None = None, intersect: bool = False,
                   first: Sequence[tuple[str, str | None]] = (), adjust: str = "none") -> tuple[Path, Path]:
    """compare.html (scorecard first, then per task the details and the flipped samples, collapsed and paged) and
    compare.json; `first`: (task, group) rows that lead the scorecard; `adjust`: what its verdicts' p is
    (`scorecard.ADJUSTMENTS`)."""
    base, tuned = load_run(base_dir), load_run(tuned_dir)
    out_dir = Path(out_dir) if out_dir else tuned.root
    json_path = out_dir / "compare.json"
    check_outputs([out_dir / "compare.html", json_path], [base.source, tuned.source], own_names={"compare.html", "compare.json"})
    data = compare_runs(base, tuned, intersect=intersect)
    flips = {t: {k: _flip_rows(t, base, tuned, v["flipped"][k]) for k in ("fixed", "broken")} for t, v in data["tasks"].items()}
    serialisable = json.loads(json.dumps(data))
    for t in serialisable["tasks"].values():
        t["flipped"] = {k: {"n": len(v), "ids": v} for k, v in t["flipped"].items()}
    headline = {t: _headline(t, base.tasks[t].result) for t in data["tasks"]}
    serialisable["adjust"] = adjust
    serialisable["scorecard"] = scorecard(serialisable, headline, first, adjust)
    atomic_write_json(json_path, serialisable)
    charts = {}
    for t, v in data["tasks"].items():
        bars = []
        for m in _headline(t, base.tasks[t].result):
            e = v["metrics"].get(m)
            if e:
                ci_b = base.tasks[t].result.get("ci", {}).get(m) if not v["n_base_only"] and not v["n_tuned_only"] else None
                ci_t = tuned.tasks[t].result.get("ci", {}).get(m) if not v["n_base_only"] and not v["n_tuned_only"] else None
                bars.append(Bar(m, "base", e["base"], *(ci_b or (None, None))))
                bars.append(Bar(m, "tuned", e["tuned"], *(ci_t or (None, None))))
        charts[t] = bar_chart(bars, f"{t}: base vs tuned")
    pages = {t: {k: [v[i:i + FLIP_PAGE] for i in range(0, len(v), FLIP_PAGE)] for k, v in f.items()} for t, f in flips.items()}
    html_path = write_page("compare.html.j2", out_dir / "compare.html", data=serialisable, flips=flips, pages=pages, page_size=FLIP_PAGE,
                           charts=charts, headline=headline, settings_notes=settings_notes)
    return html_path, json_path


def _markdown_cell(value: Any) -> str:
    """Text copied into a Markdown table: HTML and table syntax escaped, so a run or model name stays text."""
    text = str(value).replace("\\", "\\\\").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    for ch in "*_`[]#":
        text = text.replace(ch, "\\" + ch)
    return " ".join(text.split())


def _csv_cell(value: Any) -> Any:
    """A spreadsheet would run a cell starting with = + - @ as a formula: such text gets a leading apostrophe."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _link(target: Path, page: Path) -> str:
    """A relative, URL-quoted link from `page` to `target` (a run folder named `javascript:…` stays a path)."""
    return "./" + quote(os.path.relpath(target, page.parent).replace(os.sep, "/"), safe="/")


def _distinct_labels(runs: list[RunData]) -> dict[Path, str]:
    """Each run's label, by its source; runs whose labels coincide (`a/base` and `b/base` of one model) get their path
    added, so no two rows of a table or bars of a chart read the same."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.label] = counts.get(run.label, 0) + 1
    return {run.source: run.label if counts[run.label] == 1 else f"{run.label} [{run.source}]" for run in runs}


def protocol_notes(runs: list[RunData], labels: dict[Path, str]) -> list[str]:
    """One line per task and field in which the board's runs differ: numbers scored by another parser or task version,
    answers made with other decoding settings, or measured on another number of samples, stand in one column."""
    notes = []
    for name in dict.fromkeys(n for run in runs for n in run.tasks):
        results = {labels[run.source]: run.tasks[name].result for run in runs if name in run.tasks}
        for key, values in differing(results, PROTOCOL + comparable_settings(list(results.values()))).items():
            shown = "; ".join(f"{label}: {json.dumps(v, sort_keys=True)}" for label, v in values.items())
            notes.append(f"{name}: the runs differ in {key} ({shown}); its column sets numbers side by side that were "
                         f"{'scored' if key in PROTOCOL else 'made'} differently")
        for values in differing(results, ("n",)).values():  # a run with --limit, or on another split, beside a full one
            shown = "; ".join(f"{label}: {v}" for label, v in values.items())
            notes.append(f"{name}: the runs evaluated different numbers of samples ({shown}); its column sets numbers side by side "
                         "that were measured on different sample sets")
    return notes


def leaderboard(run_dirs: list[str | Path], out: str | Path, skipped: Callable[[str, str], None] | None = None,
                noted: Callable[[str], None] | None = None) -> tuple[Path, Path, Path]:
    """The leaderboard of the run folders that can be read, each once however often it is named; the others are
    listed on the page, skipped, and each handed to `skipped(run, why)`. Each task whose runs were scored or made
    differently gets a note on the page, each handed to `noted(line)`."""
    import pandas as pd

    out = file_in(out, "leaderboard.html")
    runs, broken = [], []
    seen: dict[Path, str | Path] = {}
    for d in run_dirs:
        if Path(d).resolve() in seen:  # one run named twice (`runs/* runs/base`) is one row
            continue
        seen[Path(d).resolve()] = d
        try:
            run = load_run(d)
            for task in run.tasks.values():  # its page lists them: a run whose records cannot be read is skipped too
                for _ in task.read_samples():
                    pass
            runs.append(run)
        except (TaskError, OSError, ValueError, KeyError) as exc:
            broken.append({"run": str(d), "why": str(exc)})
            if skipped is not None:
                skipped(str(d), str(exc))
    if not runs:
        raise TaskError("no readable run folder: " + "; ".join(f"{b['run']}: {b['why']}" for b in broken))
    csv_path, md_path = out.with_suffix(".csv"), out.with_suffix(".md")
    check_outputs([out, csv_path, md_path], [r.source for r in runs])
    labels = _distinct_labels(runs)
    columns: list[tuple[str, str]] = []
    for run in runs:
        for name, task in run.tasks.items():
            for m in _headline(name, task.result):
                if (name, m) not in columns:
                    columns.append((name, m))
    rows, table = [], []
    for run in runs:
        report = run_report(run.source)  # the page the link opens is one this command wrote
        cells, record = [], {"run": labels[run.source]}
        for name, m in columns:
            r = run.tasks.get(name)
            value = r.result["metrics"].get(m) if r else None
            ci = (r.result.get("ci", {}).get(m) if r else None) or None
            cells.append({"value": value, "ci": ci})
            record[f"{name}/{m}"] = value
            record[f"{name}/{m} ci"] = f"[{fmt_number(ci[0])}, {fmt_number(ci[1])}]" if ci else ""
        rows.append({"label": labels[run.source], "link": _link(report, out), "cells": cells})
        table.append(record)
    known = set(task_names())
    directions = {}
    for name, m in columns:
        measure = get_task(name).measure if name in known else None
        directions[(name, m)] = measure.directions(pooled=True).get(m) if measure else None
    notes = protocol_notes(runs, labels)
    for note in notes if noted is not None else ():
        noted(note)
    charts = []
    for name in dict.fromkeys(n for n, _ in columns):
        bars = []
        for run in runs:
            task = run.tasks.get(name)
            for m in (m for n, m in columns if n == name):
                if task and task.result["metrics"].get(m) is not None:
                    ci = task.result.get("ci", {}).get(m) or (None, None)
                    bars.append(Bar(m, labels[run.source], task.result["metrics"][m], *ci))
        charts.append((name, bar_chart(bars, f"{name} by run")))
    frame = pd.DataFrame(table)
    atomic_write_text(csv_path, frame.map(_csv_cell).rename(columns=_csv_cell).to_csv(index=False))
    md = frame.copy()
    md["run"] = md["run"].map(_markdown_cell)
    md.columns = [_markdown_cell(c) for c in md.columns]
    footnotes = "".join(f"\n- {_markdown_cell(note)}" for note in notes)  # under the table, where a paper's reader looks
    atomic_write_text(md_path, md.to_markdown(index=False, floatfmt=".4f") + "\n" + (f"\nNotes:\n{footnotes}\n" if notes else ""))
    write_page("leaderboard.html.j2", out, columns=columns, rows=rows, directions=directions, charts=charts, broken=broken, notes=notes)
    return out, csv_path, md_path
