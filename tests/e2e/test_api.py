"""The JSON API over real HTTP: events in (idempotent, per-index errors), metrics out."""

from __future__ import annotations

import json

import httpx
import pytest

from qunflow.store.eventlog import count_events
from qunflow.workspace import Workspace
from tests.integration.test_metrics_exact import AS_OF, END, SCENARIO, START


def stored(ws: Workspace) -> int:
    with ws.engine.connect() as conn:
        return count_events(conn)


@pytest.fixture
def client(live_server, api_token):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live_server.url, headers={"authorization": f"Bearer {api_token}"}) as c:
        yield c


def test_batch_sent_twice_is_stored_once(client: httpx.Client, workspace: Workspace) -> None:
    first = client.post("/api/v1/events", json=SCENARIO)
    again = client.post("/api/v1/events", json={"events": SCENARIO})
    assert first.status_code == again.status_code == 200
    assert (first.json()["stored"], again.json()["stored"], again.json()["duplicates"]) == (17, 0, 17)
    assert stored(workspace) == 17


def test_invalid_events_are_reported_by_index_and_valid_ones_stored(client: httpx.Client, workspace: Workspace) -> None:
    batch = [SCENARIO[0], {"event_id": "x", "type": "order", "ts": "yesterday", "member_id": "m"},
             {"event_id": "y", "type": "Order!", "ts": "2026-01-01T00:00:00Z", "member_id": "m"},
             {"event_id": "z", "type": "order", "ts": "2026-01-01T00:00:00Z"},
             {"event_id": "w", "type": "order", "ts": "2026-01-01T00:00:00Z", "member_id": "m", "amount": "lots"},
             SCENARIO[1]]
    body = client.post("/api/v1/events", json=batch).json()
    assert body["stored"] == 2 and [e["index"] for e in body["errors"]] == [1, 2, 3, 4]
    reasons = " ".join(e["reason"] for e in body["errors"])
    assert "not RFC 3339" in reasons and "type is required" in reasons and "member_id or visitor_id" in reasons
    assert "amount must be a number" in reasons
    assert stored(workspace) == 2


@pytest.mark.parametrize("body, message", [
    (b"{not json", "not valid JSON"),
    (b'{"event_id": "a"}', "JSON array"),
    (b'"just a string"', "JSON array"),
    (json.dumps([SCENARIO[0]] * 10_001).encode(), "at most 10000"),
])
def test_malformed_body_is_a_4xx_that_stores_nothing(client: httpx.Client, workspace: Workspace,
                                                     body: bytes, message: str) -> None:
    response = client.post("/api/v1/events", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and message in response.json()["error"]
    assert stored(workspace) == 0


def test_a_full_batch_of_10000_is_accepted(client: httpx.Client, workspace: Workspace) -> None:
    batch = [{"event_id": f"b{i}", "type": "message", "ts": "2026-03-01T08:00:00+08:00", "member_id": f"m{i % 97}"}
             for i in range(10_000)]
    assert client.post("/api/v1/events", json=batch).json()["stored"] == 10_000
    assert stored(workspace) == 10_000


def test_missing_or_unknown_token_is_401(live_server, workspace: Workspace) -> None:  # type: ignore[no-untyped-def]
    assert httpx.post(f"{live_server.url}/api/v1/events", json=SCENARIO).status_code == 401
    response = httpx.get(f"{live_server.url}/api/v1/metrics", headers={"authorization": "Bearer qf_nope"})
    assert response.status_code == 401 and "unknown API token" in response.json()["error"]
    assert stored(workspace) == 0


def test_metrics_endpoint_follows_the_contract(client: httpx.Client) -> None:
    client.post("/api/v1/events", json=SCENARIO)
    response = client.get("/api/v1/metrics", params={"from": START, "to": END, "as_of": AS_OF, "by": "channel"})
    assert response.status_code == 200
    body = response.json()
    assert (body["from"], body["to"], body["as_of"], body["by"]) == (str(START), str(END), str(AS_OF), "channel")
    ads = next(r for r in body["rows"] if r["channel"] == "ads")
    assert ads["cohort_size"] == 2 and ads["retention_d1"] == 1.0 and ads["conversion_rate"] == 0.5
    assert body["total"]["cohort_size"] == 4


@pytest.mark.parametrize("params, message", [
    ({"by": "city"}, "by must be one of"), ({"from": "2026-02-30"}, "from must be a date"),
    ({"from": "2026-03-05", "to": "2026-03-01"}, "is after"), ({"as_of": "soon"}, "as_of must be a date"),
    ({"frm": "2026-03-01"}, "unknown parameter"),
])
def test_bad_metric_parameters_are_400(client: httpx.Client, params: dict[str, str], message: str) -> None:
    response = client.get("/api/v1/metrics", params=params)
    assert response.status_code == 400 and message in response.json()["error"]


def test_openapi_describes_the_api(live_server) -> None:  # type: ignore[no-untyped-def]
    paths = httpx.get(f"{live_server.url}/openapi.json").json()["paths"]
    assert {"/api/v1/events", "/api/v1/metrics"} <= set(paths)


def test_metrics_filters_narrow_every_metric(client: httpx.Client) -> None:
    client.post("/api/v1/events", json=SCENARIO)
    params = {"from": START, "to": END, "as_of": AS_OF}
    ads = client.get("/api/v1/metrics", params={**params, "channel": "ads"}).json()["total"]
    assert (ads["cohort_size"], ads["spend"]) == (2, 0)  # no spend imported in this test
    grouped = client.get("/api/v1/metrics", params={**params, "group": "g2"}).json()["total"]
    assert grouped["cohort_size"] == 1 and grouped["spend"] is None  # spend is per channel only
    bad = client.get("/api/v1/metrics", params={**params, "city": "x"})
    assert bad.status_code == 400 and "unknown parameter" in bad.json()["error"]
