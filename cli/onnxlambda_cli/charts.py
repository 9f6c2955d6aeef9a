"""Inline SVG bar charts for the HTML reports (drift report, replay report): the share of rows per
bin, one series or two side by side, in one style. No dependencies: each page is one file.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

BASELINE_COLOUR, CURRENT_COLOUR = "#7a8ca3", "#d9822b"


def bar_chart(title: str, bins: list[str], baseline: list[int], current: list[int]) -> str:
    """Grouped bars of the share per bin, baseline next to current, as an inline SVG."""
    series = [(_shares(baseline), BASELINE_COLOUR), (_shares(current), CURRENT_COLOUR)]
    return _bars(title, bins, series, height=260, bar_of_slot=0.38)


def histogram(title: str, labels: list[str], counts: list[int]) -> str:
    """One series of bars (share of rows per bin) as an inline SVG, in the drift report's style."""
    return _bars(title, labels, [(_shares(counts), CURRENT_COLOUR)], height=240, bar_of_slot=0.8)


def _shares(counts: list[int]) -> list[float]:
    total = max(sum(counts), 1)
    return [c / total for c in counts]


def _bars(
    title: str,
    labels: list[str],
    series: Sequence[tuple[list[float], str]],
    *,
    height: int,
    bar_of_slot: float,
) -> str:
    """Each label's bars side by side (one per series, `bar_of_slot` of the label's width each)."""
    width, top, bottom, left = 720, 24, 70, 44
    peak = max([*(share for shares, _ in series for share in shares), 0.01])
    slot = (width - left - 10) / max(len(labels), 1)
    bar = slot * bar_of_slot
    plot_h = height - top - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="{left}" y="16" font-size="13">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#444"/>',
        f'<text x="4" y="{top + 10}" font-size="10">{peak:.0%}</text>',
    ]
    for i, label in enumerate(labels):
        x = left + i * slot + slot * 0.1
        for j, (shares, colour) in enumerate(series):
            share = shares[i]
            h = plot_h * share / peak
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{html.escape(label)}: {share:.1%}</title></rect>'
            )
        lx, ly = x + len(series) * bar / 2, top + plot_h + 12  # under the middle of the bars
        parts.append(
            f'<text x="{lx:.1f}" y="{ly}" font-size="10" text-anchor="end" '
            f'transform="rotate(-35 {lx:.1f} {ly})">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["BASELINE_COLOUR", "CURRENT_COLOUR", "bar_chart", "histogram"]
