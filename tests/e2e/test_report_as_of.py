"""The weekly report is measured as of the day it is made and says so (issue 12: as of the week's Sunday,
M1, D7 and M5 could never have a value), and it prints on A4 pages with no heading left at a page's foot."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.services.ingest import ingest_batch
from qunflow.services.report import parse_week, weekly_board
from qunflow.web.report import chromium
from qunflow.workspace import Workspace
from tests.e2e.browser import browser_page

runner = CliRunner()


def at(day: date, hour: int, ws: Workspace) -> str:
    return datetime.combine(day, time(hour), ws.settings.zone).astimezone(UTC).isoformat()


def week_events(ws: Workspace, monday: date, tag: str) -> list[dict[str, Any]]:
    """A landing and a join on the week's Monday, activity a week later, an order two days in."""
    return [
        {"event_id": f"{tag}-lv", "type": "landing_view", "ts": at(monday, 9, ws), "visitor_id": f"v-{tag}",
         "channel": "ads"},
        {"event_id": f"{tag}-j", "type": "joined", "ts": at(monday, 10, ws), "member_id": f"m-{tag}",
         "visitor_id": f"v-{tag}", "channel": "ads", "group": "g1"},
        {"event_id": f"{tag}-t", "type": "task_completed", "ts": at(monday, 11, ws), "member_id": f"m-{tag}"},
        {"event_id": f"{tag}-d7", "type": "message", "ts": at(monday + timedelta(days=7), 8, ws),
         "member_id": f"m-{tag}"},
        {"event_id": f"{tag}-o", "type": "order", "ts": at(monday + timedelta(days=2), 12, ws),
         "member_id": f"m-{tag}", "amount": 99},
    ]


def test_the_report_counts_as_of_the_day_it_is_made(workspace: Workspace, tmp_path: Path) -> None:
    today = datetime.now(workspace.settings.zone).date()
    last = parse_week(None, today)  # the last complete week: its Monday is 7 to 13 days ago
    old = parse_week((last.monday - timedelta(weeks=5)).strftime("%G-W%V"), today)  # 35+ days ago
    ingest_batch(workspace.engine, week_events(workspace, last.monday, "last")
                 + week_events(workspace, old.monday, "old"))
    board = weekly_board(workspace, last, today)
    assert board.as_of == today
    # As of today, last Monday's landing (7 x 24 h ago and more) and D7 (a week after the join) are known.
    assert (board.total["join_conversion"], board.total["retention_d7"]) == (1.0, 1.0)
    # Five weeks back, the 30-day window has closed: M5 has a value.
    assert weekly_board(workspace, old, today).total["conversion_rate"] == 1.0
    out = tmp_path / "w.html"
    result = runner.invoke(app, ["report", "weekly", "--out", str(out), "--lang", "en",
                                 "--workspace", str(workspace.home)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert f"Made on {today} and measured as of that day" in html
    assert f'data-as-of="{today}"' in html
    made = re.search(r'<div class="card kpi" data-key="retention_d7" data-value="([^"]*)"', html)
    assert made is not None and made.group(1) == "1.0"  # not "—"


def test_the_report_prints_on_a4_and_keeps_headings_with_what_follows(workspace: Workspace,
                                                                       tmp_path: Path) -> None:
    today = datetime.now(workspace.settings.zone).date()
    ingest_batch(workspace.engine, week_events(workspace, parse_week(None, today).monday, "w"))
    out = tmp_path / "w.html"
    made = runner.invoke(app, ["report", "weekly", "--out", str(out), "--workspace", str(workspace.home)])
    assert made.exit_code == 0, made.output
    with browser_page() as page:
        page.goto(out.as_uri())
        page.emulate_media(media="print")
        styles = page.evaluate("""() => {
            const style = (selector) => getComputedStyle(document.querySelector(selector));
            return {h1: style('h1').breakAfter, h2: style('h2').breakAfter,
                    card: style('.card').breakInside, row: style('#channels tr').breakInside};
        }""")
        assert styles["h1"] in ("avoid", "avoid-page") and styles["h2"] in ("avoid", "avoid-page")
        assert (styles["card"], styles["row"]) == ("avoid", "avoid")
        pdf = page.pdf(prefer_css_page_size=True, print_background=True)
    sizes = {tuple(round(float(v)) for v in box) for box in
             re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)}
    assert sizes == {(595, 842)}  # A4 in points, every page


def test_the_cli_pdf_is_a4(workspace: Workspace, tmp_path: Path) -> None:
    if chromium() is None:
        pytest.skip("a PDF report needs Chromium: apt-get install chromium")
    out = tmp_path / "w.pdf"
    made = runner.invoke(app, ["report", "weekly", "--out", str(out), "--workspace", str(workspace.home)])
    assert made.exit_code == 0, made.output
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", out.read_bytes())
    assert boxes and {(round(float(w)), round(float(h))) for w, h in boxes} == {(595, 842)}
