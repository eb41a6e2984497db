"""The automation API over real HTTP: advisor inbox, dead letters, playbooks; tokens, 4xx, OpenAPI."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from qunflow.services.automation import work_once
from qunflow.services.playbooks import apply_playbooks, shipped_files
from qunflow.store.tables import enrollments
from qunflow.workspace import Workspace
from tests.integration.test_automation import join
from tests.integration.test_inbox_views import TOO_LONG, make_community, write


@pytest.fixture
def client(workspace: Workspace, tmp_path: Path, live_server, api_token):  # type: ignore[no-untyped-def]
    make_community(workspace, tmp_path)
    with httpx.Client(base_url=live_server.url, headers={"authorization": f"Bearer {api_token}"}) as c:
        yield c


def test_every_automation_endpoint_needs_a_token(live_server) -> None:  # type: ignore[no-untyped-def]
    for method, path in [("GET", "/api/v1/inbox"), ("POST", "/api/v1/inbox/1/done"), ("POST", "/api/v1/inbox/1/undone"),
                         ("POST", "/api/v1/inbox/1/assign"), ("GET", "/api/v1/automation/dead-letters"),
                         ("POST", "/api/v1/automation/dead-letters/1/retry"), ("GET", "/api/v1/playbooks")]:
        response = httpx.request(method, live_server.url + path, headers={"authorization": "Bearer qf_nope"})
        assert response.status_code == 401, path
        assert "unknown API token" in response.json()["error"]


def test_inbox_lists_filters_and_changes_items(client: httpx.Client) -> None:
    body = client.get("/api/v1/inbox").json()
    items = body["items"]
    assert [i["kind"] for i in items] == ["follow_up"] * 4 + ["alert"] * 2
    assert items[0]["title"] == "回访 / Call back" and items[0]["due_at"] == "2026-03-02T05:00:00Z"
    assert [i["kind"] for i in client.get("/api/v1/inbox", params={"kind": "alert"}).json()["items"]] == ["alert"] * 2
    early = client.get("/api/v1/inbox", params={"due_before": "2026-03-02T13:10:00+08:00"}).json()["items"]
    assert [i["id"] for i in early] == [items[0]["id"]]

    first = items[0]["id"]
    done = client.post(f"/api/v1/inbox/{first}/done")
    assert done.status_code == 200 and done.json()["done_at"] == "2026-03-02T03:30:00Z"
    assert first not in [i["id"] for i in client.get("/api/v1/inbox").json()["items"]]
    assert [i["id"] for i in client.get("/api/v1/inbox", params={"status": "done"}).json()["items"]] == [first]
    assert client.post(f"/api/v1/inbox/{first}/undone").json()["done_at"] is None
    assert len(client.get("/api/v1/inbox", params={"status": "all"}).json()["items"]) == 6

    assigned = client.post(f"/api/v1/inbox/{first}/assign", json={"assignee": "王芳"})
    assert assigned.status_code == 200 and assigned.json()["assignee"] == "王芳"
    mine = client.get("/api/v1/inbox", params={"assignee": "王芳"}).json()["items"]
    assert [i["id"] for i in mine] == [first]
    assert client.post(f"/api/v1/inbox/{first}/assign", json={"assignee": None}).json()["assignee"] is None


@pytest.mark.parametrize("method, path, kwargs, status, message", [
    ("GET", "/api/v1/inbox", {"params": {"status": "later"}}, 422, "status"),
    ("GET", "/api/v1/inbox", {"params": {"kind": "todo"}}, 422, "kind"),
    ("GET", "/api/v1/inbox", {"params": {"due_before": "soon"}}, 422, "due_before"),
    ("POST", "/api/v1/inbox/999/done", {}, 404, "no inbox item 999"),
    ("POST", "/api/v1/inbox/999/undone", {}, 404, "no inbox item 999"),
    ("POST", "/api/v1/inbox/999/assign", {"json": {"assignee": "A"}}, 404, "no inbox item 999"),
    ("POST", "/api/v1/inbox/1/assign", {"json": {"who": "A"}}, 422, "body.assignee: Field required"),
    ("POST", "/api/v1/inbox/1/assign", {"json": {"assignee": 7}}, 422, "body.assignee: Input should be a valid string"),
    ("POST", "/api/v1/inbox/1/assign", {"json": {"assignee": "x" * 65}}, 422, "at most 64 characters"),
    ("POST", "/api/v1/inbox/abc/done", {}, 422, "item_id"),
    ("POST", "/api/v1/automation/dead-letters/5/retry", {}, 404, "no dead letter 5"),
    ("POST", "/api/v1/automation/dead-letters/5/retry", {"params": {"skip": "maybe"}}, 422, "skip"),
])
def test_bad_requests_get_clear_4xx_and_change_nothing(client: httpx.Client, method: str, path: str,
                                                       kwargs: dict, status: int, message: str) -> None:  # type: ignore[type-arg]
    before = client.get("/api/v1/inbox", params={"status": "all"}).json()
    response = client.request(method, path, **kwargs)
    assert response.status_code == status and message in response.json()["error"]
    assert client.get("/api/v1/inbox", params={"status": "all"}).json() == before


def test_dead_letters_are_listed_and_retried_or_skipped(client: httpx.Client, workspace: Workspace,
                                                        tmp_path: Path) -> None:
    apply_playbooks(workspace, [write(tmp_path, "long.yaml", TOO_LONG)])
    member = join(workspace, "v3", "u3")
    work_once(workspace, worker="t")
    [dead] = client.get("/api/v1/automation/dead-letters").json()["dead_letters"]
    assert (dead["playbook_key"], dead["subject"], dead["step"], dead["action"]) == ("too_long", member, 0, "send_dm")
    assert "longer than 4096 characters" in dead["last_error"] and dead["updated_at"].endswith("Z")

    retried = client.post(f"/api/v1/automation/dead-letters/{dead['id']}/retry")
    assert retried.status_code == 200 and (retried.json()["status"], retried.json()["step"]) == ("active", 0)
    assert client.get("/api/v1/automation/dead-letters").json()["dead_letters"] == []
    again = client.post(f"/api/v1/automation/dead-letters/{dead['id']}/retry")
    assert again.status_code == 404 and "no dead letter" in again.json()["error"]
    work_once(workspace, worker="t")
    assert len(client.get("/api/v1/automation/dead-letters").json()["dead_letters"]) == 1

    skipped = client.post(f"/api/v1/automation/dead-letters/{dead['id']}/retry", params={"skip": "true"})
    assert (skipped.json()["status"], skipped.json()["step"]) == ("active", 1)
    work_once(workspace, worker="t")
    work_once(workspace, worker="t")
    with workspace.engine.connect() as conn:
        assert conn.execute(select(enrollments.c.status).where(enrollments.c.id == dead["id"])).scalar() == "done"


def test_playbooks_show_versions_counts_and_previews(client: httpx.Client, workspace: Workspace) -> None:
    apply_playbooks(workspace, shipped_files())
    body = client.get("/api/v1/playbooks", params={"lang": "zh"}).json()
    by_key = {p["key"]: p for p in body["playbooks"]}
    assert set(by_key) >= {"followups", "s2_warmup", "s4_event_announce", "calendar_monday_event"}
    followups = by_key["followups"]
    assert followups["statuses"] == {"done": 2} and followups["version"] == 1
    assert followups["versions"][0]["applied_at"] == "2026-03-02T02:00:00Z"
    assert [s["action"] for s in followups["steps"]] == ["advisor_task", "notify_staff", "wait", "advisor_task"]
    assert followups["templates"] == [{"name": "alert", "preview": "新成员 m_0123456789abcdef 入群"}]
    assert by_key["s2_warmup"]["title_text"] == "新人 7 天暖场"
    english = client.get("/api/v1/playbooks", params={"lang": "en"}).json()["playbooks"]
    followups_en = next(p for p in english if p["key"] == "followups")
    assert followups_en["templates"][0]["preview"] == "New member m_0123456789abcdef joined"
    assert client.get("/api/v1/playbooks", params={"lang": "fr"}).status_code == 422


def test_the_automation_endpoints_are_in_the_openapi_docs(live_server) -> None:  # type: ignore[no-untyped-def]
    paths = httpx.get(f"{live_server.url}/openapi.json").json()["paths"]
    for path in ("/api/v1/inbox", "/api/v1/inbox/{item_id}/done", "/api/v1/inbox/{item_id}/undone",
                 "/api/v1/inbox/{item_id}/assign", "/api/v1/automation/dead-letters",
                 "/api/v1/automation/dead-letters/{letter_id}/retry", "/api/v1/playbooks"):
        assert path in paths, path
    assert not any(p.startswith("/console") for p in paths)
