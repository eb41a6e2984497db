"""GET /api/v1/metrics over real HTTP: the JSON contract, hand-worked numbers, nulls, auth, bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from qunflow.analytics import store
from qunflow.analytics.shipper import ship
from qunflow.domain.metrics import METRIC_KEYS
from qunflow.workspace import Workspace
from tests.integration.test_analytics_edge_cases import COHORT, SPEND_CSV

PERIOD = {"from": "2026-06-01", "to": "2026-06-30", "as_of": "2026-07-01"}


@pytest.fixture
def client(live_server: Any, api_token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, headers={"authorization": f"Bearer {api_token}"}) as c:
        yield c


@pytest.fixture
def loaded(client: httpx.Client, workspace: Workspace) -> httpx.Client:
    """The hand-worked cohort scenario, sent through the API, with June's spend imported."""
    from qunflow.services.spend import import_spend

    assert client.post("/api/v1/events", json=COHORT).json()["stored"] == len(COHORT)
    path = workspace.home / "spend.csv"
    path.write_text(SPEND_CSV)
    import_spend(workspace, path)
    return client


def test_the_contract_has_exactly_the_documented_keys(loaded: httpx.Client) -> None:
    body = loaded.get("/api/v1/metrics", params={**PERIOD, "by": "channel"}).json()
    assert list(body) == ["from", "to", "as_of", "by", "rows", "total"]
    assert (body["from"], body["to"], body["as_of"], body["by"]) == ("2026-06-01", "2026-06-30", "2026-07-01",
                                                                     "channel")
    assert list(body["total"]) == list(METRIC_KEYS)
    assert [list(row) for row in body["rows"]] == [["channel", *METRIC_KEYS]] * 3
    assert [row["channel"] for row in body["rows"]] == ["ads", "content", "offline"]


def test_the_hand_worked_numbers_arrive_over_http_with_nulls(loaded: httpx.Client) -> None:
    # Worked by hand in tests/integration/test_analytics_edge_cases.py (COHORT).
    body = loaded.get("/api/v1/metrics", params={**PERIOD, "by": "channel"}).json()
    rows = {row["channel"]: row for row in body["rows"]}
    assert (rows["ads"]["cohort_size"], rows["ads"]["conversion_rate"], rows["ads"]["cost_per_join"]) == (
        2, 0.5, 300)
    assert rows["content"]["retention_d30"] is None and rows["content"]["conversion_rate"] is None
    offline = rows["offline"]
    assert (offline["spend"], offline["cost_per_join"], offline["cost_per_acquisition"]) == (250, None, None)
    total = body["total"]
    assert (total["cohort_size"], total["converted"], total["in_progress"], total["spend"]) == (4, 2, 1, 850)
    assert total["median_seconds_to_conversion"] == 1295999.5 and total["ltv_90_revenue"] is None


def test_by_none_gives_totals_only_and_cohort_week_labels_iso_weeks(loaded: httpx.Client) -> None:
    body = loaded.get("/api/v1/metrics", params=PERIOD).json()
    assert body["by"] == "none" and body["rows"] == [] and body["total"]["cohort_size"] == 4
    weeks = loaded.get("/api/v1/metrics", params={**PERIOD, "by": "cohort_week"}).json()
    sized = {row["cohort_week"]: row["cohort_size"] for row in weeks["rows"] if row["cohort_size"]}
    assert sized == {"2026-W23": 2, "2026-W25": 1, "2026-W27": 1}


def test_events_posted_a_moment_ago_are_counted(client: httpx.Client) -> None:
    event = {"event_id": "n1", "type": "joined", "ts": "2026-06-05T10:00:00+08:00", "member_id": "n",
             "channel": "ads"}
    assert client.get("/api/v1/metrics", params=PERIOD).json()["total"]["cohort_size"] == 0
    client.post("/api/v1/events", json=[event])
    assert client.get("/api/v1/metrics", params=PERIOD).json()["total"]["cohort_size"] == 1


def test_defaults_are_today_in_the_reporting_zone_and_the_28_days_before(client: httpx.Client,
                                                                        workspace: Workspace) -> None:
    before = datetime.now(workspace.settings.zone).date()
    body = client.get("/api/v1/metrics").json()
    after = datetime.now(workspace.settings.zone).date()
    assert body["as_of"] in (before.isoformat(), after.isoformat())
    assert body["to"] == body["as_of"]
    assert (datetime.fromisoformat(body["to"]) - datetime.fromisoformat(body["from"])).days == 27


def test_a_token_is_required(live_server: Any) -> None:
    assert httpx.get(f"{live_server.url}/api/v1/metrics").status_code == 401
    wrong = httpx.get(f"{live_server.url}/api/v1/metrics", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401


@pytest.mark.parametrize("params, message", [
    ({"by": "cohort"}, "by must be one of none, channel, campaign"),
    ({"by": "variant"}, "by=variant and the variant filter need an experiment (experiment=NAME)"),
    ({"by": "Channel"}, "by must be one of"),
    ({"to": "2026-6-1"}, "to must be a date like 2026-01-31"),
    ({"as_of": "2026-07-01T00:00:00"}, "as_of must be a date"),
    ({"from": "2026-07-01", "to": "2026-06-01"}, "from (2026-07-01) is after to (2026-06-01)"),
    ({"channel": "x" * 200}, "longer than 128"),
    ({"asof": "2026-07-01"}, "unknown parameter(s): asof"),
])
def test_bad_parameters_are_400_with_a_message_that_says_what_to_fix(
        client: httpx.Client, params: dict[str, str], message: str) -> None:
    response = client.get("/api/v1/metrics", params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]


HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    conn = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    time.sleep(30)
""")


def test_an_analytics_store_held_by_another_process_is_a_503_not_a_crash(
        client: httpx.Client, workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ship(workspace)
    monkeypatch.setattr(store, "LOCK_WAIT_SECONDS", 0.2)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, workspace.settings.analytics_file],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        response = client.get("/api/v1/metrics", params=PERIOD)
        assert response.status_code == 503
        assert "in use by another process" in response.json()["error"]
    finally:
        holder.kill()
        holder.wait(10)
    assert client.get("/api/v1/metrics", params=PERIOD).status_code == 200


def test_per_variant_metrics_over_http(client: httpx.Client) -> None:
    from tests.integration.test_experiments import END, EVENTS, EXP, START

    assert client.post("/api/v1/events", json=EVENTS).json()["stored"] == len(EVENTS)
    body = client.get("/api/v1/metrics", params={"from": str(START), "to": str(END), "as_of": "2026-04-15",
                                                  "by": "variant", "experiment": EXP}).json()
    assert body["experiment"] == EXP
    assert [(row["variant"], row["cohort_size"], row["retention_d1"]) for row in body["rows"]] == [
        ("A", 1, 1.0), ("B", 2, 0.5)]
