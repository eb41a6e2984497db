"""Charts drawn server-side as SVG: no JavaScript, no CDN, readable on a phone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

BRAND = "#0f766e"
PROGRESS = "#99d5cf"
GRID = "#e4e7ec"
INK = "#1d2433"
MUTED = "#667085"


@dataclass(frozen=True)
class FunnelStage:
    label: str
    value: int
    in_progress: int = 0  # still inside their window: shown apart, never as dropped


def funnel_svg(stages: Sequence[FunnelStage], title: str, width: int = 640) -> str:
    """Horizontal bars, each stage as a share of the first; in-progress members in a lighter tone."""
    bar_h, gap, label_w, top = 30, 14, 150, 34
    height = top + len(stages) * (bar_h + gap) + 8
    base = max(stages[0].value if stages else 0, 1)
    plot_w = width - label_w - 110
    parts = [_open(width, height, title), _text(0, 18, title, weight="600", size=15)]
    for i, stage in enumerate(stages):
        y = top + i * (bar_h + gap)
        done_w = plot_w * stage.value / base
        wait_w = plot_w * stage.in_progress / base
        share = f"{stage.value / base:.0%}" if i else ""
        parts.append(_text(0, y + bar_h * 0.65, stage.label, size=13))
        parts.append(f'<rect x="{label_w}" y="{y}" width="{plot_w}" height="{bar_h}" fill="{GRID}" rx="4"/>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{done_w:.1f}" height="{bar_h}" fill="{BRAND}" rx="4">'
                     f'<title>{escape(stage.label)}: {stage.value}</title></rect>')
        if stage.in_progress:
            parts.append(f'<rect x="{label_w + done_w:.1f}" y="{y}" width="{wait_w:.1f}" height="{bar_h}" '
                         f'fill="{PROGRESS}" rx="4"><title>in progress: {stage.in_progress}</title></rect>')
        value = f"{stage.value:,}" + (f" (+{stage.in_progress:,})" if stage.in_progress else "")
        parts.append(_text(label_w + plot_w + 8, y + bar_h * 0.65, f"{value} {share}", size=13))
    parts.append("</svg>")
    return "".join(parts)


def heatmap_svg(rows: Sequence[tuple[str, Sequence[float | None]]], columns: Sequence[str], title: str,
                width: int = 640) -> str:
    """A retention heatmap: one row per join cohort, one column per day n; blank where not yet known."""
    label_w, top, cell_h = 110, 52, 28
    cell_w = (width - label_w) / max(len(columns), 1)
    height = top + len(rows) * cell_h + 8
    parts = [_open(width, height, title), _text(0, 18, title, weight="600", size=15)]
    for j, name in enumerate(columns):
        parts.append(_text(label_w + j * cell_w + cell_w / 2, top - 10, name, size=12, anchor="middle", fill=MUTED))
    for i, (label, values) in enumerate(rows):
        y = top + i * cell_h
        parts.append(_text(0, y + cell_h * 0.65, label, size=12))
        for j, value in enumerate(values):
            x = label_w + j * cell_w
            if value is None:
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{cell_w - 2:.1f}" height="{cell_h - 2}" '
                             f'fill="#fff" stroke="{GRID}"><title>{escape(label)} {columns[j]}: not yet</title></rect>')
                continue
            alpha = 0.12 + 0.88 * min(max(value, 0.0), 1.0)
            ink = "#fff" if alpha > 0.55 else INK
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{cell_w - 2:.1f}" height="{cell_h - 2}" fill="{BRAND}" '
                         f'fill-opacity="{alpha:.2f}"><title>{escape(label)} {columns[j]}: {value:.1%}</title></rect>')
            parts.append(_text(x + cell_w / 2, y + cell_h * 0.62, f"{value:.0%}", size=12, anchor="middle",
                               fill=ink))
    parts.append("</svg>")
    return "".join(parts)


def _open(width: int, height: int, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
            f'role="img" aria-label="{escape(title)}" style="max-width:{width}px">')


def _text(x: float, y: float, text: str, *, size: int = 13, weight: str = "400", anchor: str = "start",
          fill: str = INK) -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-weight="{weight}" text-anchor="{anchor}" '
            f'fill="{fill}">{escape(text)}</text>')
