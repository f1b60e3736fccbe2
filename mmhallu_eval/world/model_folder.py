"""A tiny model built into a folder that `mmhallu world tiny-model` owns: a new or empty one, or one it built before.
A build record beside the model names the files that build wrote, so building again removes those and nothing else
(a file of another family left behind would be loaded with the new model), and a folder without one — a real
checkpoint, say — is refused before anything in it is touched."""
from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

from ..errors import TaskError
from ..files import atomic_write_json
from ..outputs import refuse_foreign_folder
from .families import FAMILIES, build_family, missing_packages
from .tiny_models import Arch, build_tiny_model

#: written beside the model: what was built (family or architecture, seed) and the files the build wrote
BUILD_RECORD = "tiny_model.json"


def check_name(arch: str, family: str | None) -> str:
    """The model's name (the family, else the architecture), or a TaskError naming the choices."""
    if family is not None:
        if family not in FAMILIES:
            raise TaskError(f"--family {family}: no such family; choose one of {', '.join(sorted(FAMILIES))}")
        missing = missing_packages(family)
        if missing:
            raise TaskError(f"--family {family}: its processor needs {', '.join(missing)}; pip install {' '.join(missing)}")
        return family
    if arch not in get_args(Arch):
        raise TaskError(f"--arch {arch}: no such tiny architecture; choose one of {', '.join(get_args(Arch))}, or give --family")
    return arch


def _earlier_files(out: Path) -> list[Path]:
    """The files an earlier build recorded, those inside `out` only (the record is a file a user can edit)."""
    try:
        names = json.loads((out / BUILD_RECORD).read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    root = out.resolve()
    found = []
    for name in names if isinstance(names, list) else []:
        path = (out / str(name)).resolve()
        if path != root and path.is_relative_to(root) and path.is_file() and path.name != BUILD_RECORD:
            found.append(path)
    return found


def build_model_folder(out: Path, arch: str = "llava", family: str | None = None, seed: int = 0) -> Path:
    """Build the tiny model (a family's layout when `family` is given) into `out`, replacing an earlier build there."""
    name = check_name(arch, family)
    refuse_foreign_folder(out, [BUILD_RECORD], "a tiny model's", "the folder of an earlier `mmhallu world tiny-model` to build it again")
    for path in _earlier_files(out):
        path.unlink(missing_ok=True)
    if family is not None:
        build_family(family, out, seed=seed)
    else:
        build_tiny_model(arch, out, seed=seed)  # type: ignore[arg-type]
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != BUILD_RECORD)
    atomic_write_json(out / BUILD_RECORD, {"built_by": "mmhallu world tiny-model", "model": name, "family": family is not None,
                                           "seed": seed, "files": files})
    return out
