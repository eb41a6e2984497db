"""The CRM sync's dead letters over real HTTP: the API (list, retry, 404) and the console's dead-letters page
(zh and en, its retry form), with a loopback receiver that fails until it is fixed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from qunflow.domain.sync import SyncTarget
from qunflow.services.ingest import ingest_batch
from qunflow.services.sync import sync_round
from qunflow.workspace import Workspace
from tests.access import log_in
from tests.webhook import Webhook

ENV = "QUNFLOW_HTTP_CRM_SECRET"


@pytest.fixture
def dead_sync(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, Webhook]]:
    """One sync delivery that failed its only attempt, to a receiver that answers 200 from then on."""
    monkeypatch.setenv(ENV, "whsec-http")
    with Webhook([500]) as hook:
        target = SyncTarget(url=hook.url, events=["level_changed"], secret_env=ENV, attempts=1)
        workspace.settings = workspace.settings.model_copy(update={"sync": {"crm": target}})
        ingest_batch(workspace.engine, [{"event_id": "lv-9", "type": "level_changed", "member_id": "m_9",
                                         "ts": "2026-03-02T09:00:00+08:00", "properties": {"to": "core"}}])
        assert sync_round(workspace).dead == 1
        yield workspace, hook


def test_the_api_lists_sync_dead_letters_and_retries_them(dead_sync, live_server, api_token) -> None:  # type: ignore[no-untyped-def]
    workspace, hook = dead_sync
    with httpx.Client(base_url=live_server.url, headers={"authorization": f"Bearer {api_token}"}) as client:
        body = client.get("/api/v1/sync/deliveries").json()
        [dead] = body["deliveries"]
        assert (dead["target"], dead["event_id"], dead["status"], dead["last_status"]) == ("crm", "lv-9", "dead", 500)
        assert body["counts"]["crm"]["dead"] == 1 and dead["created_at"].endswith("Z")
        assert client.get("/api/v1/sync/deliveries", params={"status": "lost"}).status_code == 422
        assert client.post("/api/v1/sync/deliveries/999/retry").status_code == 404
        retried = client.post(f"/api/v1/sync/deliveries/{dead['id']}/retry")
        assert retried.status_code == 200 and retried.json() == {"id": dead["id"], "retried": True}
        assert client.post(f"/api/v1/sync/deliveries/{dead['id']}/retry").status_code == 404
        sync_round(workspace)
        assert hook.statuses == [500, 200]
        [sent] = client.get("/api/v1/sync/deliveries", params={"status": "sent"}).json()["deliveries"]
        assert sent["id"] == dead["id"] and sent["attempts"] == 1
    assert httpx.get(live_server.url + "/api/v1/sync/deliveries").status_code == 401


def test_the_console_shows_sync_dead_letters_and_retries_them(dead_sync, live_server) -> None:  # type: ignore[no-untyped-def]
    workspace, hook = dead_sync
    with httpx.Client(base_url=live_server.url, headers={"origin": live_server.url}) as client:
        csrf = log_in(client, workspace)
        zh = client.get("/console/automation/dead", params={"lang": "zh"}).text
        assert "CRM 同步" in zh and "lv-9" in zh and "answered 500" in zh
        page = client.get("/console/automation/dead", params={"lang": "en"}).text
        assert "CRM sync" in page and 'id="sync-dead-' in page
        delivery = page.split('id="sync-dead-', 1)[1].split('"', 1)[0]
        answer = client.post(f"/console/automation/sync/{delivery}/retry", data={"csrf": csrf, "lang": "en"},
                             follow_redirects=False)
        assert answer.status_code == 303 and "notice=retried" in answer.headers["location"]
        assert "No sync dead letters." in client.get("/console/automation/dead", params={"lang": "en"}).text
        sync_round(workspace)
        assert hook.statuses == [500, 200]
