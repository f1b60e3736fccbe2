"""No command writes over one of its own inputs: every command resolves its inputs and outputs first and refuses an
output that is an input, lies inside an input folder (other than the files the command itself owns there), or is a
file of a run folder the command does not own."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .errors import TaskError, UserError

#: the files a run folder is made of (run.py writes them; report/compare add their pages)
RUN_TOP_FILES = {"manifest.json", "cache.sqlite", "cache.sqlite-wal", "cache.sqlite-shm", "judge_cache.sqlite", "judge_cache.sqlite-wal",
                 "judge_cache.sqlite-shm", "report.html", "compare.html", "compare.json", ".lock"}


def _resolved(path: Path | str) -> Path:
    return Path(path).expanduser().resolve()


def check_outputs(outputs: Iterable[Path | str], inputs: Iterable[Path | str | None], own_names: Iterable[str] = (), what: str = "--out") -> None:
    """Refuse before writing: an output that is a folder or lies under a file, one equal to an input file, or one
    inside an input folder unless its name is one the command owns there (e.g. report.html in a run folder)."""
    own = set(own_names)
    ins = [_resolved(p) for p in inputs if p]
    for out in outputs:
        o = _resolved(out)
        if o.is_dir():
            raise UserError(f"{what} {out} is a folder, where this command writes a file; name the file")
        blocked = next((p for p in o.parents if p.exists() and not p.is_dir()), None)
        if blocked is not None:
            raise UserError(f"{what} {out}: {blocked} is a file, where a folder is expected; give {what} a folder path")
        for i in ins:
            if o == i:
                raise UserError(f"{what} {out} is one of this command's inputs ({i}); write the output elsewhere")
            if i.is_dir() and o.is_relative_to(i) and not (o.parent == i and o.name in own):
                raise UserError(f"{what} {out} is inside the input folder {i}; write the output elsewhere")


def file_in(out: Path | str, default_name: str) -> Path:
    """`out`, or `out/default_name` when `out` is a folder: an existing one, or a path without a file extension (as
    lmms-eval reads its --output_path; `--out reports/` reaches the command without its slash). An --out that names a
    folder gets the command's usual file inside it instead of a failed rename over the folder."""
    out = Path(out)
    return out / default_name if out.is_dir() or not out.suffix else out


def folder_relation(out: Path | str, other: Path | str) -> str | None:
    """How the folder `out` sits against the folder `other` (both resolved): "is", "is inside", "holds", or None."""
    o, t = _resolved(out), _resolved(other)
    return "is" if o == t else "is inside" if o.is_relative_to(t) else "holds" if t.is_relative_to(o) else None


def foreign_entries(folder: Path, markers: Iterable[str]) -> list[str]:
    """The entries of a non-empty folder that has none of `markers` (the files an earlier output of the same kind
    leaves), sorted; [] for a missing or empty folder or one that has a marker."""
    if not folder.is_dir():
        return []
    entries = sorted(c.name for c in folder.iterdir())
    return [] if any(m in entries for m in markers) else entries


def refuse_foreign_folder(out: Path, markers: Iterable[str], kind: str, instead: str, note: str = "") -> None:
    """A command that writes many files into --out takes a new or empty folder, or one an earlier output of the same
    kind left (it has one of `markers`): anything else would get the command's files among, and over, its own."""
    if out.is_file():
        raise TaskError(f"--out {out} is a file; give --out a folder")
    entries = foreign_entries(out, markers)
    if entries:
        raise TaskError(f"--out {out} holds files that are not {kind} ({', '.join(entries[:3])}{', …' if len(entries) > 3 else ''}{note}); "
                        f"give --out a new folder, or {instead}")


#: a task folder's own files (samples.jsonl is written first, result.json after it)
TASK_FILES = ("result.json", "samples.jsonl")
#: the end of an atomic write's temp file name (`files.atomic_write_bytes`, `files.JsonlWriter`)
TEMP_SUFFIX = ".tmp"


def temp_prefix(name: str) -> str:
    """How the temp file of an atomic write of the file `name` begins (hidden, beside it)."""
    return f".{name}."


def is_temp_of(entry: str, name: str) -> bool:
    """Whether `entry` is the temp file of an atomic write of the file `name` beside it: a write killed before its
    rename (a run killed while its task generates) leaves one."""
    prefix = temp_prefix(name)
    return entry.startswith(prefix) and entry.endswith(TEMP_SUFFIX) and len(entry) > len(prefix) + len(TEMP_SUFFIX)


def _only_temp_files(folder: Path) -> bool:
    """A task folder of a run killed before its files were in place: nothing but their temp files."""
    names = [c.name for c in folder.iterdir()]
    return bool(names) and all(any(is_temp_of(n, f) for f in TASK_FILES) for n in names)


def is_run_layout(folder: Path) -> tuple[bool, list[str]]:
    """Whether `folder` holds nothing but a run's files: (True, []) or (False, the first foreign entries)."""
    foreign = []
    for child in sorted(folder.iterdir()):
        if child.is_file() and child.name in RUN_TOP_FILES:
            continue
        if child.is_dir() and not child.is_symlink() and (any((child / f).exists() for f in TASK_FILES) or _only_temp_files(child)):
            continue
        foreign.append(child.name)
        if len(foreign) >= 3:
            break
    return not foreign, foreign
