"""`mmhallu report`, `compare` and `leaderboard`: pages and tables built from run folders."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..report.scorecard import ADJUST_HELP, ADJUSTMENTS
from .common import fail, group, require_choice, say, user_errors

app = group()


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A run folder written by `mmhallu run`, or a result file written by `mmhallu score`."),
    out: Optional[Path] = typer.Option(None, help="HTML file, or a folder (existing, or a name without an extension) to write report.html in (default RUN_DIR/report.html, or FILE.report.html beside a result file)."),
    include: list[Path] = typer.Option([], "--include-path", help="Folder with user task plugins (runs of plugin tasks)."),
) -> None:
    """One self-contained HTML page: metrics with CIs, groups, errors, manifest, filterable samples."""
    from ..report.pages import run_report

    try:
        _include(include)
        path = run_report(run_dir, out)
    except user_errors() as exc:
        fail(str(exc))
    typer.echo(f"wrote {path}")


@app.command("compare")
def compare_cmd(
    base: Path = typer.Argument(..., help="Run folder (or `mmhallu score` result file) of the base model."),
    tuned: Path = typer.Argument(..., help="Run folder (or `mmhallu score` result file) of the tuned model."),
    out: Optional[Path] = typer.Option(None, help="Folder for compare.html and compare.json (default: TUNED)."),
    intersect: bool = typer.Option(False, help="Compare only the samples both runs evaluated."),
    adjust: str = typer.Option("none", help=ADJUST_HELP),
    include: list[Path] = typer.Option([], "--include-path", help="Folder with user task plugins (runs of plugin tasks)."),
) -> None:
    """Paired before/after statistics per task, metric and group, with the samples that flipped."""
    from ..report.pages import compare_report

    require_choice("--adjust", adjust, ADJUSTMENTS)
    try:
        _include(include)
        html, js = compare_report(base, tuned, out, intersect=intersect, adjust=adjust)
    except user_errors() as exc:
        fail(str(exc))
    from ..report.compare import settings_notes
    from ..report.scorecard import format_scorecard

    compared = json.loads(js.read_text())
    typer.echo(format_scorecard(compared["scorecard"]))
    for task, entry in compared["tasks"].items():
        for line in settings_notes(entry):
            say(f"note: {task}: {line}", typer.colors.YELLOW)
    for side, run in (("base", base), ("tuned", tuned)):
        if compared[f"tasks_only_in_{side}"]:
            say(f"not compared (only in {run}): {', '.join(compared[f'tasks_only_in_{side}'])}", typer.colors.YELLOW)
    typer.echo(f"wrote {html} and {js}")


@app.command("leaderboard")
def leaderboard_cmd(
    runs: list[Path] = typer.Argument(..., help="Run folders (or `mmhallu score` result files)."),
    out: Path = typer.Option(Path("reports/leaderboard.html"), help="HTML file, or a folder (existing, or a name without an extension) to write leaderboard.html in; .csv and .md are written beside it."),
    include: list[Path] = typer.Option([], "--include-path", help="Folder with user task plugins (runs of plugin tasks)."),
) -> None:
    """A sortable HTML leaderboard of runs plus CSV and Markdown tables for papers."""
    from ..report.pages import leaderboard

    try:
        _include(include)
        paths = leaderboard(runs, out, skipped=lambda run, why: say(f"skipped {run}: {why}", typer.colors.YELLOW),
                            noted=lambda line: say(f"note: {line}", typer.colors.YELLOW))
    except user_errors() as exc:
        fail(str(exc))
    typer.echo("wrote " + ", ".join(map(str, paths)))


def _include(folders: list[Path]) -> None:
    from ..registry import include_path

    for folder in folders:
        include_path(folder)
