"""One set of numbers (issue 12): the console's funnel and cards equal `qunflow metrics --format json` for
the same filters and as-of, the as-of is today in the reporting zone and the page says so, unattributed
joins are a row of their own, and channel and group rows drill down to their own dashboard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.i18n import fmt_percent
from qunflow.services.catalog import add_channel, add_group
from qunflow.services.ingest import ingest_batch
from qunflow.services.spend import import_spend
from qunflow.services.tokens import create_token
from qunflow.workspace import Workspace, init_workspace
from tests.conftest import LiveServer
from tests.e2e.browser import browser_page
from tests.numbers_community import community_events


@pytest.fixture(scope="module")
def community(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, LiveServer]]:
    ws = init_workspace(tmp_path_factory.mktemp("numbers") / "ws")
    add_channel(ws, "ads", "ad")
    add_channel(ws, "content", "content")
    add_group(ws, "g1", "newbie", 200)
    add_group(ws, "g2", "newbie", 200)
    today = datetime.now(ws.settings.zone).date()
    result = ingest_batch(ws.engine, community_events(today, ws.settings.zone))
    assert not result.errors, result.errors[:3]
    # ads: 120 a day, imported through the next two weeks (a plan): spend after today must not count.
    spend = ws.home / "spend.csv"
    spend.write_text("channel,day,amount\n" + "".join(
        f"ads,{today + timedelta(days=d)},120\n" for d in range(-60, 15)))
    import_spend(ws, spend)
    with LiveServer(ws) as server:
        yield ws, server
    ws.close()


def cli_metrics(ws: Workspace, start: str, end: str, as_of: str, *extra: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["metrics", "--from", start, "--to", end, "--as-of", as_of, "--format", "json",
                                      *extra, "--workspace", str(ws.home)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def page_numbers(page: Any) -> dict[str, Any]:
    """What the page shows: its period and as-of, each card's value, each funnel stage's count and text."""
    period = page.locator("#as-of")
    cards = {card.get_attribute("data-key"): card.get_attribute("data-value")
             for card in page.locator("#kpis .kpi").all()}
    stages = {g.get_attribute("data-stage"): {"count": int(g.get_attribute("data-count")),
                                              "in_progress": int(g.get_attribute("data-in-progress")),
                                              "text": g.text_content()}
              for g in page.locator("#funnel g[data-stage]").all()}
    return {"from": period.get_attribute("data-from"), "to": period.get_attribute("data-to"),
            "as_of": period.get_attribute("data-as-of"), "text": period.inner_text(), "cards": cards,
            "stages": stages}


def assert_page_equals_cli(shown: dict[str, Any], report: dict[str, Any], by_channel: dict[str, Any]) -> None:
    total = report["total"]
    for key, raw in shown["cards"].items():  # every card is the CLI's number
        expected = total[key]
        assert (raw or None) is None if expected is None else float(raw) == pytest.approx(expected), key
    stages = shown["stages"]
    assert stages["landing_visitors"]["count"] == total["landing_visitors"]
    assert stages["joined"]["count"] == total["cohort_size"]
    assert (stages["converted"]["count"], stages["converted"]["in_progress"]) == (
        total["converted"], total["in_progress"])
    # The funnel's rates are the metrics' own: M1, M9 and M5, as the CLI computes them.
    for stage, key in (("landing_joined", "join_conversion"), ("day1_task", "task_completion_d1"),
                       ("converted", "conversion_rate")):
        assert total[key] is not None, key  # the scenario gives every rate a value
        assert fmt_percent(total[key], "en") in stages[stage]["text"], (stage, stages[stage]["text"])
    # Unattributed joins: the CLI's row without a channel, shown as a count with no rate.
    unattributed = next((r["cohort_size"] for r in by_channel["rows"] if r["channel"] is None), 0)
    assert stages["unattributed"]["count"] == unattributed
    assert "%" not in stages["unattributed"]["text"] and "%" not in stages["joined"]["text"]


def test_the_console_is_as_of_today_and_its_funnel_and_cards_equal_qunflow_metrics(
        community: tuple[Workspace, LiveServer]) -> None:
    ws, server = community
    today = datetime.now(ws.settings.zone).date().isoformat()
    with browser_page(log_in_to=(server.url, ws), locale="en-US", viewport={"width": 1366, "height": 900}) as page:
        page.goto(f"{server.url}/console?lang=en")
        shown = page_numbers(page)
    assert shown["as_of"] == today and "today" in shown["text"]  # the CLI's default as-of, said on the page
    args = (shown["from"], shown["to"], shown["as_of"])
    report = cli_metrics(ws, *args)
    assert report["as_of"] == cli_metrics(ws, shown["from"], shown["to"], today)["as_of"]
    assert_page_equals_cli(shown, report, cli_metrics(ws, *args, "--by", "channel"))
    assert report["total"]["cohort_size"] > 20 and shown["stages"]["unattributed"]["count"] > 0
    # The API, with its own default as-of, answers the same numbers.
    token = create_token(ws.engine, "numbers", ["metrics:read"])
    api = httpx.get(f"{server.url}/api/v1/metrics", params={"from": shown["from"], "to": shown["to"]},
                    headers={"authorization": f"Bearer {token}"}, timeout=60)
    assert api.status_code == 200 and api.json()["as_of"] == today
    assert api.json()["total"] == report["total"]


def test_a_filtered_and_back_dated_console_equals_the_filtered_cli(community: tuple[Workspace, LiveServer]) -> None:
    ws, server = community
    today = datetime.now(ws.settings.zone).date()
    start, end, as_of = today - timedelta(days=45), today - timedelta(days=10), today - timedelta(days=3)
    query = f"from={start}&to={end}&as_of={as_of}&channel=ads&lang=en"
    with browser_page(log_in_to=(server.url, ws), locale="en-US") as page:
        page.goto(f"{server.url}/console?{query}")
        shown = page_numbers(page)
    assert (shown["from"], shown["to"], shown["as_of"]) == (str(start), str(end), str(as_of))
    report = cli_metrics(ws, str(start), str(end), str(as_of), "--channel", "ads")
    assert_page_equals_cli(shown, report, cli_metrics(ws, str(start), str(end), str(as_of), "--channel", "ads",
                                                      "--by", "channel"))
    # The spend imported for the days after the as-of day is not in the CPA card.
    assert report["total"]["spend"] == 120 * 36 and shown["cards"]["cost_per_acquisition"] not in (None, "")


def test_channel_and_group_rows_drill_down_to_their_own_dashboard(community: tuple[Workspace, LiveServer]) -> None:
    ws, server = community
    with browser_page(log_in_to=(server.url, ws), locale="en-US", viewport={"width": 1366, "height": 900}) as page:
        page.goto(f"{server.url}/console?lang=en")
        whole = page_numbers(page)
        unattributed = page.locator('#channels tr[data-channel=""]')
        assert unattributed.inner_text().startswith("Unattributed") and unattributed.locator("a").count() == 0
        row_joins = page.locator('#channels tr[data-channel="ads"] td').nth(4).inner_text()
        page.click('#channels tr[data-channel="ads"] a')
        page.wait_for_url("**channel=ads**")
        ads = page_numbers(page)
        assert (ads["from"], ads["to"], ads["as_of"]) == (whole["from"], whole["to"], whole["as_of"])
        assert "channel = ads" in ads["text"]  # the page says what it is narrowed to
        assert page.locator("#f-channel").input_value() == "ads"
        assert int(float(ads["cards"]["cohort_size"])) == int(row_joins.replace(",", ""))
        page.goto(f"{server.url}/console?lang=en")
        page.click('#groups tr[data-group="g2"] a')
        page.wait_for_url("**group=g2**")
        g2 = page_numbers(page)
    report = cli_metrics(ws, g2["from"], g2["to"], g2["as_of"], "--group", "g2")
    assert int(float(g2["cards"]["cohort_size"])) == report["total"]["cohort_size"] > 0


def test_every_card_has_a_daily_trend_and_a_change_against_the_previous_period(
        community: tuple[Workspace, LiveServer], tmp_path: Path) -> None:
    ws, server = community
    with browser_page(log_in_to=(server.url, ws), locale="zh-CN", viewport={"width": 390, "height": 844},
                      is_mobile=True) as page:
        today = datetime.now(ws.settings.zone).date()
        page.goto(f"{server.url}/console?from={today - timedelta(days=20)}&to={today}")  # the previous 21 days exist
        keys = [card.get_attribute("data-key") for card in page.locator("#kpis .kpi").all()]
        assert {"active_ratio_7d", "k_factor", "revenue_per_member"} <= set(keys)
        assert page.locator("#kpis .kpi svg.spark").count() == len(keys)
        for key in ("cohort_size", "active_ratio_7d", "task_completion_d1", "cost_per_acquisition"):
            assert page.locator(f'#kpis .kpi[data-key="{key}"] svg.spark :is(polyline, circle)').count() >= 1, key
        # M5 needs 30 days: a 21-day period has no value on any day, and draws no line rather than zeros.
        assert page.locator('#kpis .kpi[data-key="conversion_rate"] svg.spark :is(polyline, circle)').count() == 0
        assert "较上期" in page.locator("#kpis").inner_text()
        assert "今天" in page.locator("#as-of").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
