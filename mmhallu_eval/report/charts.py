"""Inline SVG charts (no JavaScript library, no CDN): bars with 95% CI whiskers."""
from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D")


@dataclass
class Bar:
    label: str
    series: str
    value: float
    low: float | None = None
    high: float | None = None


def _fmt(v: float) -> str:
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"


def bar_chart(bars: list[Bar], title: str = "", width: int = 560, height: int = 220) -> Markup:
    """Grouped vertical bars: one group per label, one colour per series, whiskers for the CI."""
    bars = [b for b in bars if b.value is not None]
    if not bars:
        return Markup("")
    labels = list(dict.fromkeys(b.label for b in bars))
    series = list(dict.fromkeys(b.series for b in bars))
    top = max(max(b.value, b.high if b.high is not None else b.value) for b in bars) or 1.0
    bottom = min(0.0, min(b.value for b in bars))
    pad_l, pad_b, pad_t, legend_h = 48, 36, 22, 18 * ((len(series) + 2) // 3)
    plot_h = height - pad_b - pad_t - legend_h
    group_w = (width - pad_l - 10) / len(labels)
    bar_w = min(40.0, group_w * 0.8 / len(series))

    def y(v: float) -> float:
        return pad_t + legend_h + plot_h * (1 - (v - bottom) / (top - bottom or 1))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" role="img">']
    parts.append(f"<title>{escape(title)}</title>")
    for i, s in enumerate(series):
        lx, ly = pad_l + (i % 3) * 170, 12 + 18 * (i // 3)
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(f'<text x="{lx + 14}" y="{ly}" font-size="11">{escape(s[:28])}</text>')
    parts.append(f'<line x1="{pad_l}" y1="{y(bottom)}" x2="{width - 5}" y2="{y(bottom)}" stroke="#888"/>')
    for frac in (0.0, 0.5, 1.0):
        v = bottom + frac * (top - bottom)
        parts.append(f'<text x="{pad_l - 4}" y="{y(v) + 4}" font-size="10" text-anchor="end">{_fmt(v)}</text>')
    for gi, label in enumerate(labels):
        gx = pad_l + gi * group_w + (group_w - bar_w * len(series)) / 2
        for si, s in enumerate(series):
            b = next((b for b in bars if b.label == label and b.series == s), None)
            if b is None:
                continue
            x = gx + si * bar_w
            y0, y1 = y(max(b.value, 0)), y(min(b.value, 0))
            colour = PALETTE[si % len(PALETTE)]
            parts.append(
                f'<rect x="{x:.1f}" y="{y0:.1f}" width="{bar_w * 0.9:.1f}" height="{max(y1 - y0, 0.5):.1f}" fill="{colour}">'
                f"<title>{escape(s)} {escape(label)}: {_fmt(b.value)}</title></rect>"
            )
            if b.low is not None and b.high is not None:
                cx = x + bar_w * 0.45
                parts.append(f'<line class="whisker" x1="{cx:.1f}" y1="{y(b.low):.1f}" x2="{cx:.1f}" y2="{y(b.high):.1f}" stroke="#222"/>')
                for v in (b.low, b.high):
                    parts.append(f'<line x1="{cx - 4:.1f}" y1="{y(v):.1f}" x2="{cx + 4:.1f}" y2="{y(v):.1f}" stroke="#222"/>')
        parts.append(f'<text x="{pad_l + gi * group_w + group_w / 2:.1f}" y="{height - pad_b + 16}" font-size="11" text-anchor="middle">{escape(label[:22])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
