"""Server-side SVG charts for the data-quality page (no script on the page): stacked bars per day."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

# outcome -> colour (stacked bottom to top), the order of the legend
STACK = (("stored", "#2f9e44"), ("updated", "#1c7ed6"), ("unchanged", "#adb5bd"), ("refused", "#e03131"))
RULE_COLOUR = "#f08c00"


def _axis_max(v: int) -> int:
    """A round number at or above v (1, 2, 5 x 10^n)."""
    if v <= 0:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= v:
                return m * step
        step *= 10


def bars(series: list[dict], keys: tuple[tuple[str, str], ...] = STACK, title: str = "", height: int = 160) -> Markup:
    """Stacked bars, one per day of `series` ([{"day": date, key: count, ...}]); each bar's tooltip lists its
    counts. Days with nothing have no bar."""
    n = max(len(series), 1)
    left, bottom, top = 48, 22, 8
    bar_w = max(4, min(28, 720 // n))
    gap = max(1, bar_w // 5)
    width = left + n * (bar_w + gap) + 8
    peak = _axis_max(max((sum(d.get(k, 0) for k, _ in keys) for d in series), default=0))
    scale = (height - bottom - top) / peak
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" class="chart">',
        f"<title>{escape(title)}</title>" if title else "",
    ]
    for frac in (0, 0.5, 1):
        y = height - bottom - frac * peak * scale
        parts.append(f'<line x1="{left - 4}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{int(frac * peak):,}</text>')
    label_every = max(1, n // 10)
    for i, d in enumerate(series):
        x = left + i * (bar_w + gap)
        y = height - bottom
        tip = f"{d['day']:%Y-%m-%d}: " + ", ".join(f"{k} {d.get(k, 0):,}" for k, _ in keys)
        parts.append(f'<g data-day="{d["day"]:%Y-%m-%d}"><title>{escape(tip)}</title>')
        for key, colour in keys:
            v = d.get(key, 0)
            if v:
                h = v * scale
                y -= h
                parts.append(f'<rect x="{x}" y="{y:.1f}" width="{bar_w}" height="{h:.1f}" fill="{colour}"/>')
        parts.append("</g>")
        if i % label_every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 6}" text-anchor="middle">{d["day"]:%d/%m}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped or a number/date


def legend(keys: tuple[tuple[str, str], ...] = STACK) -> Markup:
    items = "".join(
        f'<span class="key"><span class="swatch" style="background:{c}"></span>{escape(k)}</span>' for k, c in keys
    )
    return Markup(f'<div class="legend">{items}</div>')  # noqa: S704 - fixed names and colours
