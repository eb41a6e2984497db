"""Set-up without Python: list, edit and archive channels, campaigns, entry points and groups from the CLI.
Archive, never delete: events keep their references, an archived entry point's page says it is closed, an
archived group takes nobody new."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.services import catalog
from qunflow.services.join import NoRoom, entry_invite, record_landing, submit_gate
from qunflow.store.tables import events
from qunflow.workspace import Workspace, open_workspace
from tests.integration.test_join_flow import FORM, PHONE, invite_token, setup_community

runner = CliRunner()


def invoke(ws: Path, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [*args, "--workspace", str(ws)])


def one_line_refusal(result, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws)]).exit_code == 0
    for args in (("channel", "add", "xhs", "--kind", "content"), ("channel", "add", "expo", "--kind", "offline"),
                 ("campaign", "add", "spring", "--channel", "xhs"), ("group", "add", "core-1", "--tier", "core"),
                 ("group", "add", "newbie-1", "--tier", "newbie", "--capacity", "50"),
                 ("entry", "add", "note-7", "--channel", "xhs", "--campaign", "spring"),
                 ("entry", "add", "expo-a", "--channel", "expo", "--utm", "utm_medium=booth")):
        result = invoke(ws, *args)
        assert result.exit_code == 0, (args, result.stderr)
    return ws


def test_channel_list_shows_channels_with_their_open_entry_points(home: Path) -> None:
    listed = invoke(home, "channel", "list")
    assert listed.exit_code == 0
    xhs = next(line for line in listed.stdout.splitlines() if " xhs " in f" {line} ")
    assert "content" in xhs and "open" in xhs
    assert "expo" in listed.stdout
    assert "spring" in invoke(home, "campaign", "list").stdout
    ws = open_workspace(home)
    with ws.engine.connect() as conn:
        assert catalog.entry_info(conn, "expo-a").utm == {"utm_source": "expo", "utm_medium": "booth"}
    ws.close()


def test_entry_edit_changes_tier_gate_campaign_channel_and_utm_but_keeps_the_code(home: Path) -> None:
    result = invoke(home, "entry", "edit", "note-7", "--tier", "core", "--gate", "seed", "--no-campaign",
                    "--channel", "expo", "--utm", "utm_medium=poster", "--utm", "utm_source=", "--name", "Note 7")
    assert result.exit_code == 0, result.stderr
    ws = open_workspace(home)
    with ws.engine.connect() as conn:
        entry = catalog.entry_info(conn, "note-7")
    assert (entry.target_tier, entry.gate and entry.gate.key, entry.campaign, entry.channel, entry.name) == (
        "core", "seed", None, "expo", "Note 7")
    assert entry.utm == {"utm_medium": "poster"}  # utm_source removed, utm_medium added
    assert invoke(home, "entry", "edit", "note-7", "--utm", "utm_source=xhs").exit_code == 0
    assert invoke(home, "entry", "edit", "note-7", "--channel", "xhs").exit_code == 0
    assert invoke(home, "entry", "edit", "note-7", "--channel", "expo").exit_code == 0
    with ws.engine.connect() as conn:
        assert catalog.entry_info(conn, "note-7").utm == {"utm_medium": "poster", "utm_source": "expo"}
    assert invoke(home, "entry", "edit", "note-7", "--no-gate", "--campaign", "spring").exit_code == 0
    with ws.engine.connect() as conn:
        entry = catalog.entry_info(conn, "note-7")
    assert entry.gate is None and entry.campaign == "spring"
    ws.close()


def test_group_edit_changes_capacity_tier_and_name(home: Path) -> None:
    assert invoke(home, "group", "edit", "newbie-1", "--capacity", "120", "--tier", "interest",
                  "--name", "Interest A").exit_code == 0
    ws = open_workspace(home)
    group = next(g for g in catalog.list_groups(ws) if g["key"] == "newbie-1")
    ws.close()
    assert (group["capacity"], group["tier"], group["name"], group["room"]) == (120, "interest", "Interest A", 120)


def test_bad_edits_exit_2_with_one_line_and_change_nothing(home: Path) -> None:
    one_line_refusal(invoke(home, "entry", "edit", "note-7", "--tier", "vip"), "tier")
    one_line_refusal(invoke(home, "entry", "edit", "note-7", "--gate", "seed", "--no-gate"), "--no-gate")
    one_line_refusal(invoke(home, "entry", "edit", "note-7", "--utm", "utm_colour=red"), "utm_colour")
    one_line_refusal(invoke(home, "entry", "edit", "note-7", "--utm", "nonsense"), "KEY=VALUE")
    one_line_refusal(invoke(home, "entry", "edit", "nope", "--tier", "core"), "nope")
    one_line_refusal(invoke(home, "entry", "edit", "note-7", "--channel", "missing"), "missing")
    one_line_refusal(invoke(home, "group", "edit", "core-1", "--capacity", "0"), "capacity")
    one_line_refusal(invoke(home, "group", "edit", "core-1", "--capacity", "200000"), "100000")
    one_line_refusal(invoke(home, "channel", "edit", "xhs", "--kind", "tv"), "kind")
    ws = open_workspace(home)
    with ws.engine.connect() as conn:
        entry = catalog.entry_info(conn, "note-7")
    groups = {g["key"]: g["capacity"] for g in catalog.list_groups(ws)}
    ws.close()
    assert (entry.target_tier, entry.campaign, entry.channel, entry.utm) == (
        "newbie", "spring", "xhs", {"utm_source": "xhs"})
    assert groups == {"core-1": 200, "newbie-1": 50}


def test_archive_in_order_entry_point_then_campaign_then_channel(home: Path) -> None:
    one_line_refusal(invoke(home, "channel", "archive", "xhs"), "note-7", "spring")
    one_line_refusal(invoke(home, "campaign", "archive", "spring"), "note-7")
    assert invoke(home, "entry", "archive", "note-7").exit_code == 0
    assert invoke(home, "campaign", "archive", "spring").exit_code == 0
    assert invoke(home, "channel", "archive", "xhs").exit_code == 0
    one_line_refusal(invoke(home, "channel", "archive", "xhs"), "archived")
    one_line_refusal(invoke(home, "entry", "edit", "note-7", "--tier", "core"), "archived")
    one_line_refusal(invoke(home, "entry", "add", "note-8", "--channel", "xhs"), "archived")  # nothing new on it
    one_line_refusal(invoke(home, "campaign", "add", "autumn", "--channel", "xhs"), "archived")
    assert "note-7" not in invoke(home, "entry", "list").stdout
    assert " xhs " not in invoke(home, "channel", "list").stdout
    everything = invoke(home, "entry", "list", "--all").stdout
    assert "note-7" in everything and "closed" in everything
    assert "archived" in invoke(home, "channel", "list", "--all").stdout
    one_line_refusal(invoke(home, "entry", "restore", "note-7"), "channel", "restore that first")
    for kind, key in (("channel", "xhs"), ("campaign", "spring"), ("entry", "note-7")):
        assert invoke(home, kind, "restore", key).exit_code == 0
    assert "note-7" in invoke(home, "entry", "list").stdout
    one_line_refusal(invoke(home, "entry", "restore", "note-7"), "not archived")


def test_archived_group_takes_no_new_members_until_restored(any_workspace: Workspace) -> None:
    workspace = any_workspace
    catalog.add_channel(workspace, "web", "website")
    catalog.add_group(workspace, "newbie-1", "newbie", 100)
    catalog.add_group(workspace, "newbie-2", "newbie", 100)
    catalog.add_entry_point(workspace, "site", "web")
    _entry, first, link = entry_invite(workspace, "site")
    assert first.key == "newbie-1"
    assert catalog.archive_group(workspace, "newbie-1") == 1  # its link is revoked
    assert workspace.sandbox.join("u2", "Han", link.url.rsplit("/", 1)[1]) not in ("joined", "requested")
    assert entry_invite(workspace, "site")[1].key == "newbie-2"
    catalog.archive_group(workspace, "newbie-2")
    with pytest.raises(NoRoom):
        entry_invite(workspace, "site")
    listed = {g["key"]: g["archived"] for g in catalog.list_groups(workspace)}
    assert listed == {"newbie-1": True, "newbie-2": True}
    assert catalog.list_groups(workspace, include_archived=False) == []
    catalog.restore(workspace, "group", "newbie-2")
    _entry, group, fresh = entry_invite(workspace, "site")  # a new link replaces the revoked one
    assert group.key == "newbie-2"
    assert workspace.sandbox.join("u3", "Mei", fresh.url.rsplit("/", 1)[1]) in ("joined", "requested")


def test_archived_entry_point_page_says_closed_and_links_handed_out_still_join(  # type: ignore[no-untyped-def]
        workspace: Workspace, live_server) -> None:
    setup_community(workspace)
    record_landing(workspace, "xhs-note-1", "v1", {})
    ticket = submit_gate(workspace, "xhs-note-1", "v1", FORM)  # handed out before the entry point closed
    catalog.archive_entry_point(workspace, "xhs-note-1")
    with httpx.Client(base_url=live_server.url, headers={"accept-language": "en", **PHONE}) as client:
        page = client.get("/j/xhs-note-1")
        posted = client.post("/j/xhs-note-1", data=FORM)
        zh = client.get("/j/xhs-note-1", headers={"accept-language": "zh-CN"})
        unknown = client.get("/j/never-was")
    assert page.status_code == 410 and "closed" in page.text
    assert posted.status_code in (403, 410)  # refused before or at the gate, never a ticket
    assert zh.status_code == 410 and "已关闭" in zh.text
    assert unknown.status_code == 404
    assert workspace.sandbox.join("u1", "Li Lei", invite_token(ticket.invite_url)) == "joined"
    with workspace.engine.connect() as conn:
        landings = conn.execute(select(events).where(events.c.type == "landing_view")).all()
        joined = conn.execute(select(events).where(events.c.type == "joined")).one()
    assert len(landings) == 1  # the closed page records no visit
    assert (joined.entry_point, joined.channel) == ("xhs-note-1", "xhs")
