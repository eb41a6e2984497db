import re
from xml.etree import ElementTree

from qunflow.web.charts import (
    NARROW,
    WIDE,
    FunnelStage,
    funnel_drawing,
    funnel_svg,
    heatmap_drawing,
    heatmap_svg,
    text_width,
)

SVG = "{http://www.w3.org/2000/svg}"


def test_funnel_bars_are_proportional_and_in_progress_is_drawn_apart() -> None:
    svg = funnel_drawing([FunnelStage("joined", 200), FunnelStage("task", 80), FunnelStage("ordered", 8, 30)], "Funnel")
    root = ElementTree.fromstring(svg)
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    widths = [float(r.get("width")) for r in bars]
    assert abs(widths[1] / widths[0] - 0.4) < 1e-3 and abs(widths[2] / widths[0] - 0.04) < 1e-3
    assert bars[3].find(f"{SVG}title").text == "+30"


def test_heatmap_leaves_unknown_cells_blank_and_escapes_labels() -> None:
    svg = heatmap_drawing([("<W1>", [0.5, None])], ["D1", "D7"], "Retention")
    root = ElementTree.fromstring(svg)
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert titles == ["<W1> D1: 50.0%", "<W1> D7: —"]


def test_each_chart_comes_as_a_desktop_and_a_phone_drawing() -> None:
    stages = [FunnelStage("落地页访客", 1385), FunnelStage("新入群", 639)]
    for chart in (funnel_svg(stages, "漏斗"), heatmap_svg([("2026-W48", [0.5, None])], ["D1", "D7"], "留存")):
        root = ElementTree.fromstring(f"<div>{chart}</div>")
        drawings = {svg.get("class"): svg.get("viewBox").split()[2] for svg in root}
        assert drawings == {"chart-wide": str(WIDE), "chart-narrow": str(NARROW)}


def test_funnel_labels_and_values_stay_inside_the_drawing_at_both_widths() -> None:
    stages = [FunnelStage("Landing visitors", 123_456), FunnelStage("M9 Day-1 tasks", 65_432, 12_345),
              FunnelStage("M5 conversion", 9_876, 54_321)]
    for width in (WIDE, NARROW):
        root = ElementTree.fromstring(funnel_drawing(stages, "Funnel", width))
        for text in root.iter(f"{SVG}text"):
            x, size, words = float(text.get("x")), float(text.get("font-size")), text.text or ""
            left = {"start": x, "end": x - text_width(words, size)}[text.get("text-anchor")]
            assert left >= 0 and left + text_width(words, size) <= width + 0.5, (width, words)
    narrow = funnel_drawing(stages, "Funnel", NARROW)
    assert re.search(r'text-anchor="end"[^>]*>65,432 \(\+12,345\) 53%<', narrow)  # its value above its bar
