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


# Each chart comes in two drawings: one for a desktop column and one for a phone, shown by the media query in
# qunflow.css. An SVG scales its text with its width, so one drawing cannot be readable at both: the phone
# drawing is about as wide as a phone's card, so its 13 px text renders at 12 px or more at 390 px.
WIDE, NARROW = 640, 340


def text_width(text: str, size: float) -> float:
    """An upper estimate of a label's width in px: CJK and other wide characters take 1 em, others 0.62 em."""
    return sum(size if ord(ch) > 0x2E7F else size * 0.62 for ch in text)


def responsive(wide: str, narrow: str) -> str:
    """Both drawings of a chart; the stylesheet shows the one that fits the screen."""
    return (wide.replace("<svg ", '<svg class="chart-wide" ', 1)
            + narrow.replace("<svg ", '<svg class="chart-narrow" ', 1))


def funnel_svg(stages: Sequence[FunnelStage], title: str) -> str:
    """The funnel for the console and the weekly report: a desktop and a phone drawing."""
    return responsive(funnel_drawing(stages, title, WIDE), funnel_drawing(stages, title, NARROW))


def funnel_drawing(stages: Sequence[FunnelStage], title: str, width: int = WIDE) -> str:
    """Horizontal bars, each stage as a share of the first; in-progress members in a lighter tone."""
    base = max(stages[0].value if stages else 0, 1)
    bars = []
    for i, stage in enumerate(stages):
        value = f"{stage.value:,}" + (f" (+{stage.in_progress:,})" if stage.in_progress else "")
        bars.append(_Bar(stage.label, f"{value} {stage.value / base:.0%}" if i else value, stage.value,
                         stage.in_progress, base))
    return _bars(bars, title, width, bar_h=30, gap=14)


@dataclass(frozen=True)
class _Bar:
    label: str
    shown: str  # the value as printed beside (or above) the bar
    value: int
    in_progress: int
    base: int  # the full bar's length stands for this many
    attributes: str = ""  # on the bar's <g>, for tests and links (data-*)


def _bars(bars: Sequence[_Bar], title: str, width: int, *, bar_h: int, gap: int) -> str:
    """Labelled horizontal bars. Labels and values are measured, so neither is cut: where they do not fit
    beside the bar (a narrow drawing), each label and its value stand on a line above their bar."""
    size, top = 13, 34
    label_w = max((text_width(b.label, size) for b in bars), default=0) + 10
    value_w = max((text_width(b.shown, size) for b in bars), default=0) + 10
    stacked = width - label_w - value_w < width * 0.35  # too little room left for the bars beside them
    row_h = bar_h + gap + (size + 6 if stacked else 0)
    height = top + len(bars) * row_h + 8
    parts = [_open(width, height, title), _text(0, 18, title, weight="600", size=15)]
    for i, bar in enumerate(bars):
        y = top + i * row_h
        if bar.attributes:
            parts.append(f"<g {bar.attributes}>")
        if stacked:
            parts.append(_text(0, y + size, bar.label, size=size))
            parts.append(_text(width, y + size, bar.shown, size=size, anchor="end", fill=MUTED))
            y += size + 6
            bar_x, plot_w = 0.0, float(width)
        else:
            parts.append(_text(0, y + bar_h * 0.65, bar.label, size=size))
            bar_x, plot_w = label_w, width - label_w - value_w
        done_w = plot_w * bar.value / bar.base
        wait_w = plot_w * bar.in_progress / bar.base
        parts.append(f'<rect x="{bar_x:.1f}" y="{y}" width="{plot_w:.1f}" height="{bar_h}" fill="{GRID}" rx="4"/>')
        parts.append(f'<rect x="{bar_x:.1f}" y="{y}" width="{done_w:.1f}" height="{bar_h}" fill="{BRAND}" rx="4">'
                     f'<title>{escape(bar.label)}: {bar.value}</title></rect>')
        if bar.in_progress:
            parts.append(f'<rect x="{bar_x + done_w:.1f}" y="{y}" width="{wait_w:.1f}" height="{bar_h}" '
                         f'fill="{PROGRESS}" rx="4"><title>+{bar.in_progress}</title></rect>')
        if not stacked:
            parts.append(_text(bar_x + plot_w + 8, y + bar_h * 0.65, bar.shown, size=size))
        if bar.attributes:
            parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def heatmap_svg(rows: Sequence[tuple[str, Sequence[float | None]]], columns: Sequence[str], title: str) -> str:
    """The retention heatmap for the console and the weekly report: a desktop and a phone drawing."""
    return responsive(heatmap_drawing(rows, columns, title, WIDE), heatmap_drawing(rows, columns, title, NARROW))


def heatmap_drawing(rows: Sequence[tuple[str, Sequence[float | None]]], columns: Sequence[str], title: str,
                    width: int = WIDE) -> str:
    """A retention heatmap: one row per join cohort, one column per day n; blank where not yet known."""
    label_w = max([text_width(label, 12) for label, _ in rows] + [60.0]) + 10
    top, cell_h = 52, 28
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
                             f'fill="#fff" stroke="{GRID}"><title>{escape(label)} {columns[j]}: —</title></rect>')
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


# --- the measured funnel, whose rates are the cards' own, and daily sparklines -------------------------------


@dataclass(frozen=True)
class RateStage:
    """One step of the measured funnel: a count, those still in their window, and the metric's rate."""

    key: str  # a stable name for tests and links: landing_visitors, landing_joined, joined, unattributed ...
    label: str
    value: int
    in_progress: int = 0
    rate: str = ""  # the card's formatted value (e.g. "M9 84.7%"); empty: a count only, never a share
    base: int = 0  # what the bar is drawn against (the first stage of its block)


def rate_funnel_svg(stages: Sequence[RateStage], title: str) -> str:
    """The measured funnel for the console: a desktop and a phone drawing (see funnel_svg)."""
    return responsive(rate_funnel_drawing(stages, title, WIDE), rate_funnel_drawing(stages, title, NARROW))


def rate_funnel_drawing(stages: Sequence[RateStage], title: str, width: int = WIDE) -> str:
    """Bars drawn against the first stage of their block; the printed rate is the metric's own (same
    definition and denominator as its card), never a stage divided by the one above it."""
    return _bars([_Bar(stage.label, (f"{stage.value:,}" + (f" (+{stage.in_progress:,})" if stage.in_progress else "")
                                     + (f" {stage.rate}" if stage.rate else "")),
                       stage.value, stage.in_progress, max(stage.base, stage.value + stage.in_progress, 1),
                       f'data-stage="{escape(stage.key)}" data-count="{stage.value}" '
                       f'data-in-progress="{stage.in_progress}"') for stage in stages],
                 title, width, bar_h=26, gap=12)


def sparkline_svg(values: Sequence[float | None], title: str, width: int = 120, height: int = 28) -> str:
    """A small daily line; days without a value (an empty denominator) leave a gap, not a zero."""
    known = [v for v in values if v is not None]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{escape(title)}" class="spark" style="max-width:100%">']
    if known and len(values) > 1:
        low, high = min(known), max(known)
        span = (high - low) or 1.0
        step = width / (len(values) - 1)
        segment: list[str] = []
        segments: list[list[str]] = []
        for i, v in enumerate(values):
            if v is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            y = height - 3 - (height - 6) * ((v - low) / span if high != low else 0.5)
            segment.append(f"{i * step:.1f},{y:.1f}")
        if segment:
            segments.append(segment)
        for points in segments:
            if len(points) == 1:
                cx, cy = points[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="1.5" fill="{BRAND}"/>')
            else:
                parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{BRAND}" '
                             'stroke-width="1.5"/>')
    parts.append(f"<title>{escape(title)}</title></svg>")
    return "".join(parts)
