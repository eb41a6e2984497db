"""The advisor inbox in pages: service, API, CLI and console agree on order, totals and links."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.errors import InvalidInput
from qunflow.services.inbox import count_inbox, list_inbox
from qunflow.store.tables import inbox
from qunflow.workspace import Workspace
from tests.access import log_in

START = datetime(2026, 3, 2, 9, 0)


def fill(ws: Workspace, n: int) -> list[str]:
    """n follow-ups due a minute apart, inserted in reverse so the order comes from the due times."""
    rows = [{"kind": "follow_up", "cause": f"c{i}", "member_id": f"m{i}", "title": f"call {i:02d}",
             "due_at": START + timedelta(minutes=i), "created_at": START} for i in reversed(range(n))]
    with ws.engine.begin() as conn:
        conn.execute(insert(inbox), rows)
    return [f"call {i:02d}" for i in range(n)]


def test_pages_cover_the_inbox_once_in_order(workspace: Workspace) -> None:
    titles = fill(workspace, 23)
    pages = [list_inbox(workspace, limit=10, offset=start) for start in (0, 10, 20)]
    assert [[r["title"] for r in page] for page in pages] == [titles[:10], titles[10:20], titles[20:]]
    assert list_inbox(workspace, limit=10, offset=30) == []
    assert count_inbox(workspace) == 23 and count_inbox(workspace, kind="alert") == 0
    with pytest.raises(InvalidInput, match="offset must be 0 or more"):
        list_inbox(workspace, offset=-1)


def test_api_pages_with_a_total(workspace: Workspace, live_server, api_token: str) -> None:  # type: ignore[no-untyped-def]
    titles = fill(workspace, 7)
    with httpx.Client(base_url=live_server.url, headers={"authorization": f"Bearer {api_token}"}) as client:
        body = client.get("/api/v1/inbox", params={"limit": 5, "offset": 5}).json()
        assert ([i["title"] for i in body["items"]], body["total"], body["offset"]) == (titles[5:], 7, 5)
        bad = client.get("/api/v1/inbox", params={"offset": -1})
        assert bad.status_code == 422 and "offset" in bad.text


def test_console_pages_keep_the_filters(workspace: Workspace, live_server) -> None:  # type: ignore[no-untyped-def]
    titles = fill(workspace, 55)
    with httpx.Client(base_url=live_server.url) as client:
        log_in(client, workspace)
        first = client.get("/console/inbox", params={"lang": "en", "kind": "follow_up"}).text
        assert re.findall(r'class="title">(call \d+)<', first) == titles[:50]
        assert "1–50 / 55" in first and 'id="inbox-prev"' not in first
        following = re.search(r'id="inbox-range".*?href="([^"]+)" id="inbox-next"', first, re.S)
        assert following is not None
        link = following.group(1).replace("&amp;", "&")
        assert "kind=follow_up" in link and "lang=en" in link and "offset=50" in link
        second = client.get("/console/inbox" + link).text
        assert re.findall(r'class="title">(call \d+)<', second) == titles[50:]
        assert "51–55 / 55" in second and 'id="inbox-prev"' in second and 'id="inbox-next"' not in second
        bad = client.get("/console/inbox", params={"offset": "x"})
        assert bad.status_code == 400 and "offset must be a whole number" in bad.text


def test_cli_says_where_the_next_page_starts(workspace: Workspace) -> None:
    fill(workspace, 12)
    home = ["--workspace", str(workspace.home)]
    result = CliRunner().invoke(app, ["inbox", "list", "--limit", "5", *home])
    assert result.exit_code == 0 and "items 1-5 of 12; next page: --offset 5" in result.output
    last = CliRunner().invoke(app, ["inbox", "list", "--limit", "5", "--offset", "10", *home])
    assert "call 11" in last.output and "call 09" not in last.output and "items 11-12 of 12" in last.output
