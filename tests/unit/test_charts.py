from xml.etree import ElementTree

from qunflow.web.charts import FunnelStage, funnel_svg, heatmap_svg

SVG = "{http://www.w3.org/2000/svg}"


def test_funnel_bars_are_proportional_and_in_progress_is_drawn_apart() -> None:
    svg = funnel_svg([FunnelStage("joined", 200), FunnelStage("task", 80), FunnelStage("ordered", 8, 30)], "Funnel")
    root = ElementTree.fromstring(svg)
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    widths = [float(r.get("width")) for r in bars]
    assert widths[1] / widths[0] == 0.4 and abs(widths[2] / widths[0] - 0.04) < 1e-3
    assert bars[3].find(f"{SVG}title").text == "in progress: 30"


def test_heatmap_leaves_unknown_cells_blank_and_escapes_labels() -> None:
    svg = heatmap_svg([("<W1>", [0.5, None])], ["D1", "D7"], "Retention")
    root = ElementTree.fromstring(svg)
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert titles == ["<W1> D1: 50.0%", "<W1> D7: not yet"]
