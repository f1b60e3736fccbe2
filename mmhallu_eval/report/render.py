"""Jinja2 environment (autoescape on: everything a model wrote is shown as text) and page helpers."""
from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from ..files import atomic_write_text

THUMB_PX = 96


def environment() -> Environment:
    env = Environment(loader=PackageLoader("mmhallu_eval.report", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["num"] = fmt_number
    env.filters["ci"] = fmt_ci
    env.filters["pval"] = lambda p: "—" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")
    return env


def fmt_number(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "—"
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"
    return str(v)


def fmt_ci(ci: Any) -> str:
    if not ci or ci[0] is None:
        return ""
    return f"[{fmt_number(ci[0])}, {fmt_number(ci[1])}]"


def thumbnail(path: str, cache: dict[str, str | None]) -> str | None:
    """A small inline JPEG (data URL) of an image file, or None when it cannot be read."""
    if path in cache:
        return cache[path]
    uri = None
    try:
        from PIL import Image

        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=80)
        uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    except (OSError, ValueError):
        uri = None
    cache[path] = uri
    return uri


def write_page(template: str, out: Path, **context: Any) -> Path:
    html = environment().get_template(template).render(**context)
    atomic_write_text(out, html)
    return out
