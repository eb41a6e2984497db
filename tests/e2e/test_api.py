"""The JSON API over real HTTP: metrics out of posted events, filters, OpenAPI.

POST /api/v1/events itself (idempotency, errors by index, 4xx, tokens, batch size) is specified on SQLite and
PostgreSQL in test_api_events.py.
"""

from __future__ import annotations

import httpx
import pytest

from tests.integration.test_metrics_exact import AS_OF, END, SCENARIO, START


@pytest.fixture
def client(live_server, api_token):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live_server.url, headers={"authorization": f"Bearer {api_token}"}) as c:
        yield c


def test_an_unknown_token_on_metrics_is_401_saying_how_to_get_one(live_server) -> None:  # type: ignore[no-untyped-def]
    response = httpx.get(f"{live_server.url}/api/v1/metrics", headers={"authorization": "Bearer qf_nope"})
    assert response.status_code == 401 and "unknown API token" in response.json()["error"]
    assert "qunflow token create" in response.json()["error"]


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
