"""Jinja2 environment (autoescape on: everything a model wrote is shown as text) and page helpers."""
from __future__ import annotations

import base64
import functools
import hashlib
import io
import math
import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from ..files import atomic_write_text

THUMB_PX = 96


@functools.cache
def environment() -> Environment:
    """One environment per process, so each template is compiled once however many pages are written (a leaderboard
    over many runs, the demo's pages, a test's hundreds)."""
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
    if not isinstance(ci, (list, tuple)) or len(ci) != 2 or ci[0] is None:
        return ""
    return f"[{fmt_number(ci[0])}, {fmt_number(ci[1])}]"


#: images larger than this are not decoded for a thumbnail (a decompression bomb stays a placeholder)
MAX_PIXELS = 50_000_000


def thumbnail(path: Path, cache: dict[str, str | None]) -> str | None:
    """A small inline JPEG (data URL) of an image file, or None when it cannot (or must not) be decoded."""
    key = str(path)
    if key in cache:
        return cache[key]
    uri = None
    try:
        from PIL import Image

        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ValueError("too many pixels")
            im.draft("RGB", (THUMB_PX * 2, THUMB_PX * 2))
            im = im.convert("RGB")
            im.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=80)
        uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    except Exception:  # noqa: BLE001 - any undecodable or hostile file becomes a labelled placeholder
        uri = None
    cache[key] = uri
    return uri


_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)


def content_security_policy(html: str) -> str:
    """No network, nothing but the page's own inline script and style blocks (by hash) and data: images."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode()
        hashes[kind].append(f"'sha256-{digest}'")
    allowed = {kind: " ".join(found) or "'none'" for kind, found in hashes.items()}
    return f"default-src 'none'; img-src data:; style-src {allowed['style']}; script-src {allowed['script']}; base-uri 'none'; form-action 'none'"


def write_page(template: str, out: Path, **context: Any) -> Path:
    html = environment().get_template(template).render(**context)
    policy = content_security_policy(html)
    html = html.replace('<meta charset="utf-8">', f'<meta charset="utf-8">\n<meta http-equiv="Content-Security-Policy" content="{policy}">', 1)
    atomic_write_text(out, html)
    return out
