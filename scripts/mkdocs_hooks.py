"""MkDocs hooks: pages generated at build time so they cannot drift from their sources — the home page from
README.md, one page per task from tasks/<name>/README.md, and the CLI reference from the Typer app itself."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]


def _links(text: str) -> str:
    """README links point into docs/ and tasks/; on the site those pages sit at the top and under tasks/."""
    text = re.sub(r"\]\(docs/([^)]+)\)", r"](\1)", text)
    return re.sub(r"\]\(tasks/([a-z_]+)/README\.md\)", r"](tasks/\1.md)", text)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _params(command: Any) -> list[str]:
    rows = []
    for p in command.params:
        names = ", ".join(f"`{o}`" for o in [*p.opts, *getattr(p, "secondary_opts", [])]) or f"`{p.name}`"
        kind = "argument" if p.param_type_name == "argument" else "option"
        default = "" if p.required or p.default in (None, (), [], False) else f" (default: `{p.default}`)"
        text = _escape(" ".join((getattr(p, "help", None) or "").split()))
        rows.append(f"| {names} | {kind}{' (required)' if p.required else ''} | {text}{default} |")
    return rows


def _command_pages(command: Any, path: str, out: list[str]) -> None:
    sub = getattr(command, "commands", None)
    out.append(f"{'#' * min(2 + path.count(' '), 4)} `{path}`\n")
    doc = _escape(" ".join((command.help or "").split()))
    if doc:
        out.append(doc + "\n")
    rows = [r for r in _params(command) if "`--help`" not in r]
    if rows:
        out += ["| name | kind | what |", "|---|---|---|", *rows, ""]
    for name in sorted(sub or {}):
        _command_pages(sub[name], f"{path} {name}", out)


def cli_reference() -> str:
    from mmhallu_eval.cli import build_app
    from typer.main import get_command

    out = ["# CLI reference\n", "Generated from the command-line application when the site is built "
           "(`mkdocs build`); `mmhallu COMMAND --help` prints the same.\n"]
    _command_pages(get_command(build_app([])), "mmhallu", out)
    return "\n".join(out) + "\n"


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "index.md", content=_links((ROOT / "README.md").read_text(encoding="utf-8"))))
    for readme in sorted(ROOT.glob("tasks/*/README.md")):
        files.append(File.generated(config, f"tasks/{readme.parent.name}.md", content=readme.read_text(encoding="utf-8")))
    files.append(File.generated(config, "cli.md", content=cli_reference()))
    return files
