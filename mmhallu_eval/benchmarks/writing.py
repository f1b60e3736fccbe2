"""The builders' one way of writing their files: all checked before any is written, none replaced with other
content."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..errors import UserError
from ..files import atomic_write_text
from ..outputs import check_outputs


def write_built_files(files: dict[Path, str], inputs: Iterable[Path | str], what: str = "--out") -> list[Path]:
    """Write a builder's files (path -> text) after checking them all: refuse one that is an input, or one that would
    replace an existing file with other content (an official file of the same name, a build with other settings);
    the same content again is left as it is, so building twice with the same settings is a no-op."""
    check_outputs(files, inputs, what=what)
    for path, text in files.items():
        if path.is_file() and path.read_bytes() != text.encode("utf-8"):
            raise UserError(f"{what}: {path} already exists with other content (a file this build did not write, or one "
                            f"written with other settings); give {what} a new path, or move {path.name} away to write it again")
    for path, text in files.items():
        if not path.is_file():
            atomic_write_text(path, text)
    return list(files)
