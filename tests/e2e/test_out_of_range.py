"""Numbers and dates out of range are the caller's mistake: a 4xx that says what is wrong, never a 500
(schemathesis found 495 server errors in two causes: integers the database cannot hold, and days so near
datetime's limits that the period arithmetic overflowed). On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from qunflow.domain.access import TOKEN_SCOPES
from qunflow.services.tokens import create_token
from qunflow.workspace import Workspace
from tests.access import log_in
from tests.conftest import LiveServer

HUGE = "99999999999999999999"  # past 64 bits: SQLite cannot bind it
INT4 = str(2**31)  # past PostgreSQL's INTEGER


@pytest.fixture
def client(any_workspace: Workspace) -> Iterator[httpx.Client]:
    token = create_token(any_workspace.engine, "range", sorted(TOKEN_SCOPES))
    with LiveServer(any_workspace) as server, httpx.Client(base_url=server.url, timeout=30,
                                                           headers={"authorization": f"Bearer {token}"}) as http:
        http.headers["x-csrf-token"] = log_in(http, any_workspace)  # the console routes: logged in, with the token
        yield http


REQUESTS = [
    ("POST", f"/api/v1/inbox/{HUGE}/done", "item_id"),
    ("POST", f"/api/v1/inbox/{INT4}/undone", "item_id"),
    ("POST", f"/api/v1/rewards/{HUGE}/approve", "reward_id"),
    ("POST", f"/api/v1/rewards/{INT4}/reject", "reward_id"),
    ("POST", f"/api/v1/automation/dead-letters/{HUGE}/retry", "no dead letter"),
    ("POST", f"/api/v1/automation/dead-letters/s{HUGE}/retry", "no dead letter"),
    ("POST", "/api/v1/automation/dead-letters/%C2%B2/retry", "no dead letter"),  # '²' is a digit to isdigit()
    ("GET", f"/api/v1/inbox?offset={HUGE}", "offset"),
    ("GET", f"/api/v1/rewards?offset={HUGE}", "offset"),
    ("GET", "/api/v1/inbox?due_before=0001-01-01T00:00:00%2B01:00", "due_before"),
    ("GET", "/api/v1/inbox?due_before=9999-12-31T23:59:00-01:00", "due_before"),
    ("GET", "/api/v1/inbox?due_before=0.5", "due_before"),
    ("GET", "/api/v1/metrics?as_of=9999-12-31", "as_of must be between 1970-01-01 and 2999-12-31"),
    ("GET", "/api/v1/metrics?as_of=0001-01-01", "as_of must be between"),
    ("GET", "/api/v1/metrics?to=9999-12-31", "to must be between"),
    ("GET", "/api/v1/referrals/leaderboard?from=0001-01-01", "from must be between"),
    ("GET", "/api/v1/referrals/leaderboard?to=9999-12-31", "to must be between"),
    ("GET", f"/console/inbox?offset={HUGE}", "offset must be a whole number"),
    ("POST", f"/console/inbox/{HUGE}/done", "item_id"),
]


@pytest.mark.parametrize(("method", "path", "says"), REQUESTS)
def test_out_of_range_numbers_and_dates_are_4xx(client: httpx.Client, method: str, path: str, says: str) -> None:
    response = client.request(method, path, headers={"origin": str(client.base_url)})
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if response.headers.get("content-type", "").startswith("application/json"):
        assert says in response.json()["error"]


def test_a_nul_character_is_never_a_500(client: httpx.Client) -> None:
    """PostgreSQL refuses NUL in text: a 400 there; SQLite simply finds nothing."""
    response = client.get("/api/v1/rewards", params={"member_id": "a\x00b"})
    assert response.status_code in (200, 400), response.text[:300]
    if response.status_code == 400:
        assert "NUL character" in response.json()["error"]
        assert "NUL 字符" in response.json()["error_zh"]
