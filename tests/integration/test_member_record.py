"""The member record and search (issue 13) through the API, the CLI and the service: a member who passed the
gate, then ordered by phone and by the shop's id, is found by each, and their record shows the profile,
consents, the timeline with message counts (no text) and open inbox items."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import insert
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.domain.access import TOKEN_SCOPES
from qunflow.services.ingest import ingest_batch
from qunflow.services.member_records import member_record, search_members
from qunflow.services.tokens import create_token
from qunflow.store.tables import inbox
from qunflow.workspace import Workspace
from tests.conftest import LiveServer
from tests.integration.test_privacy_rights import community, join

runner = CliRunner()


def populated(ws: Workspace) -> str:
    community(ws)
    member = join(ws, "王小明", "13800138000", "u-1", marketing=False)
    now = ws.clock().isoformat() + "Z"
    result = ingest_batch(ws.engine, [
        {"event_id": "link", "type": "signup", "ts": now, "member_id": member, "external_id": "shop-77"},
        {"event_id": "o1", "type": "order", "ts": now, "phone": "138 0013 8000", "amount": "88"},
        {"event_id": "msg1", "type": "message", "ts": now, "member_id": member, "properties": {"text": "秘密内容"}},
        {"event_id": "msg2", "type": "message", "ts": now, "member_id": member, "properties": {"text": "秘密内容"}},
    ], ws=ws)
    assert result.stored == 4 and not result.errors, result.as_json()
    with ws.engine.begin() as conn:
        conn.execute(insert(inbox).values(kind="follow_up", cause="t:1", member_id=member, title="Call back",
                                          due_at=ws.clock(), created_at=ws.clock()))
    return member


def test_the_record_shows_profile_timeline_counts_and_inbox_and_search_finds_by_each_key(workspace: Workspace) -> None:
    ws = workspace
    member = populated(ws)
    record = member_record(ws, member, with_profile=True)
    assert record["profile"]["name"] == "王小明" and record["group"] == "newbie-1" and record["tier"] == "newbie"
    assert [k["key"] for k in record["keys"]] == ["shop-77"]
    types = [item["type"] for item in record["timeline"]]
    assert "order" in types and "signup" in types and types.count("message") == 1
    assert next(i for i in record["timeline"] if i["type"] == "message")["count"] == 2
    assert next(i for i in record["timeline"] if i["type"] == "order")["amount"] == "88.0000"
    assert "秘密内容" not in json.dumps(record, ensure_ascii=False)
    assert [i["title"] for i in record["inbox"]] == ["Call back"]
    assert member_record(ws, member, with_profile=False)["profile"] is None
    for query, how in (("王小", "name"), ("+86 138-0013-8000", "phone"), ("shop-77", "external_id"),
                       (member, "member_id")):
        assert [(m["member_id"], m["matched_by"]) for m in search_members(ws, query)] == [(member, how)], query
    assert search_members(ws, "nobody-like-this") == []
    assert search_members(ws, "王小", frozenset({"another-group"})) == []

    with LiveServer(ws) as server, httpx.Client(base_url=server.url, timeout=30, headers={
            "authorization": f"Bearer {create_token(ws.engine, 't', sorted(TOKEN_SCOPES))}"}) as api:
        got = api.get(f"/api/v1/members/{member}")
        assert got.status_code == 200 and got.json()["profile"]["name"] == "王小明"
        assert api.get("/api/v1/members", params={"q": "shop-77"}).json()["members"][0]["member_id"] == member
        assert api.get("/api/v1/members/m_nobody").status_code == 404
        assert api.get("/api/v1/members", params={"q": " "}).status_code == 400

    shown = runner.invoke(app, ["member", "show", member, "--workspace", str(ws.home)])
    assert shown.exit_code == 0 and "王小明" in shown.output and "message x2" in shown.output, shown.output
    as_json = runner.invoke(app, ["member", "show", member, "--format", "json", "--workspace", str(ws.home)])
    assert json.loads(as_json.output)["member_id"] == member
    bad = runner.invoke(app, ["member", "show", member, "--format", "xml", "--workspace", str(ws.home)])
    assert bad.exit_code == 2
