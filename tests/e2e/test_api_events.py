"""POST /api/v1/events over HTTP, SQLite and PostgreSQL: idempotent, errors by index, 4xx stores nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qunflow.services.tokens import create_token
from qunflow.store.eventlog import count_events
from qunflow.workspace import Workspace
from tests.conftest import LiveServer


def event(n: int, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"ev-{n}", "type": "message", "ts": "2026-03-01T08:00:00+08:00",
            "member_id": f"m{n % 13}", **fields}


def stored(ws: Workspace) -> int:
    with ws.engine.connect() as conn:
        return count_events(conn)


@pytest.fixture
def server(any_workspace: Workspace) -> Iterator[LiveServer]:
    with LiveServer(any_workspace) as live:
        yield live


@pytest.fixture
def client(server: LiveServer, any_workspace: Workspace) -> Iterator[httpx.Client]:
    token = create_token(any_workspace.engine, "shop", ["events:write"])
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}, timeout=60) as http:
        yield http


def test_batch_sent_twice_is_stored_once(client: httpx.Client, any_workspace: Workspace) -> None:
    batch = [event(n) for n in range(25)]
    first = client.post("/api/v1/events", json=batch)
    again = client.post("/api/v1/events", json={"events": batch})  # the wrapped form is the same batch
    assert first.status_code == again.status_code == 200
    assert first.json() == {"received": 25, "stored": 25, "duplicates": 0, "rejected": 0, "errors": []}
    assert again.json() == {"received": 25, "stored": 0, "duplicates": 25, "rejected": 0, "errors": []}
    assert stored(any_workspace) == 25


def test_valid_events_are_stored_and_invalid_ones_reported_by_index(client: httpx.Client,
                                                                      any_workspace: Workspace) -> None:
    batch = [event(0), event(1, ts="yesterday"), event(2, type="Order!"), "not an event",
             {k: v for k, v in event(4).items() if k != "member_id"}, event(5, amount="lots"),
             event(6, member_id="m\u0000"), event(7, properties=[1]), event(8, colour="red"), event(9)]
    response = client.post("/api/v1/events", json=batch)
    assert response.status_code == 200
    body = response.json()
    assert (body["received"], body["stored"], body["rejected"]) == (10, 2, 8)
    reasons = {e["index"]: e["reason"] for e in body["errors"]}
    assert list(reasons) == [1, 2, 3, 4, 5, 6, 7, 8]
    expected = {1: "not RFC 3339", 2: "type is required", 3: "must be a JSON object",
                4: "member_id or visitor_id is required", 5: "amount must be a number", 6: "NUL",
                7: "properties must be a JSON object", 8: "unknown field(s): colour"}
    for index, reason in expected.items():
        assert reason in reasons[index]
    assert stored(any_workspace) == 2


def test_a_resent_batch_with_fixes_stores_only_the_fixed_events(client: httpx.Client,
                                                                 any_workspace: Workspace) -> None:
    client.post("/api/v1/events", json=[event(0), event(1, ts="soon")])
    body = client.post("/api/v1/events", json=[event(0), event(1)]).json()
    assert (body["stored"], body["duplicates"]) == (1, 1)
    assert stored(any_workspace) == 2


@pytest.mark.parametrize("content, content_type, message", [
    (b"{not json", "application/json", "not valid JSON"),
    (b"", "application/json", "not valid JSON"),
    (b"\xff\xfe\x00garbage", "application/json", "not valid JSON"),
    (b"[" * 100_000, "application/json", "not valid JSON"),
    (b'[{"event_id": ' + b"9" * 5000 + b"}]", "application/json", "not valid JSON"),
    (b"event_id=a&type=message", "application/x-www-form-urlencoded", "not valid JSON"),
    (b'{"event_id": "a"}', "application/json", "JSON array"),
    (b'{"events": "ev-1"}', "application/json", "JSON array"),
    (b'"just a string"', "application/json", "JSON array"),
    (b"42", "application/json", "JSON array"),
    (json.dumps([event(n) for n in range(10_001)]).encode(), "application/json", "at most 10000"),
])
def test_malformed_body_is_a_4xx_that_stores_nothing(client: httpx.Client, any_workspace: Workspace,
                                                     content: bytes, content_type: str, message: str) -> None:
    client.post("/api/v1/events", json=[event(-1)])
    response = client.post("/api/v1/events", content=content, headers={"content-type": content_type})
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert stored(any_workspace) == 1


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer qf_not_a_token", "Basic dXNlcjpwYXNz"])
def test_missing_or_bad_token_is_401_and_stores_nothing(server: LiveServer, any_workspace: Workspace,
                                                        authorization: str | None) -> None:
    create_token(any_workspace.engine, "real", ["events:write"])
    headers = {} if authorization is None else {"authorization": authorization}
    response = httpx.post(f"{server.url}/api/v1/events", json=[event(0)], headers=headers)
    assert response.status_code == 401
    assert "token" in response.json()["error"]
    assert stored(any_workspace) == 0


def test_a_batch_of_10000_events_is_accepted(client: httpx.Client, any_workspace: Workspace) -> None:
    batch = [event(n, amount="19.9") if n % 10 == 0 else event(n) for n in range(10_000)]
    response = client.post("/api/v1/events", json=batch)
    assert response.status_code == 200 and response.json()["stored"] == 10_000
    assert stored(any_workspace) == 10_000  # acknowledged means committed: visible at once


def test_an_empty_batch_is_accepted_and_stores_nothing(client: httpx.Client,
                                                       any_workspace: Workspace) -> None:
    assert client.post("/api/v1/events", json=[]).json()["received"] == 0
    assert stored(any_workspace) == 0


def test_events_endpoint_takes_only_post(client: httpx.Client) -> None:
    assert client.get("/api/v1/events").status_code == 405
