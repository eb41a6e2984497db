"""A gate pass (a per-person link) used on a second platform: a member of their own, attributed to the pass's
entry point, and a merge candidate (reason own_link) for an operator, never a silent merge (issue 13)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select

from qunflow.connectors.base import JoinRequested, MemberJoined
from qunflow.services import join, merges
from qunflow.services.join import record_landing, submit_gate
from qunflow.store.tables import events, groups, member_merges, members
from qunflow.workspace import Workspace
from tests.integration.test_join_flow import FORM, invite_token, setup_community


def gated_member(ws: Workspace) -> tuple[str, str]:
    """A visitor who passed the gate and joined on the sandbox: (member id, their gate pass label)."""
    setup_community(ws)
    record_landing(ws, "xhs-note-1", "v1", {})
    ticket = submit_gate(ws, "xhs-note-1", "v1", FORM)
    assert ws.sandbox.join("u1", "Li Lei", invite_token(ticket.invite_url)) == "joined"
    with ws.engine.connect() as conn:
        label = conn.execute(select(members.c.join_ticket).where(members.c.id == ticket.member_id)).scalar_one()
    return ticket.member_id, label


def telegram_group(ws: Workspace) -> None:
    with ws.engine.begin() as conn:
        conn.execute(insert(groups).values(key="tg-core", name="TG core", platform="telegram", external_id="-100",
                                           tier="core", capacity=200, member_count=0,
                                           created_at=datetime(2026, 12, 1)))


def test_a_pass_used_on_a_second_platform_is_a_candidate_not_a_silent_merge(any_workspace: Workspace) -> None:
    ws = any_workspace
    holder, label = gated_member(ws)
    telegram_group(ws)
    at = datetime(2026, 12, 4, 9, 0)
    request = JoinRequested("telegram", at, "-100", "777", "Lei", label)
    join.on_join_request(ws, request)
    assert join.known_request(ws, request)  # the link qunflow handed out: let in like the pass's own person
    join.on_member_joined(ws, MemberJoined("telegram", at, "-100", "777", "Lei", label))
    with ws.engine.connect() as conn:
        joined = conn.execute(select(events).where(events.c.type == "joined", events.c.group_key == "tg-core")).one()
        pairs = conn.execute(select(member_merges)).all()
    assert joined.member_id != holder  # a member of their own until an operator says they are one person
    assert joined.properties["attribution"] == "own_link"
    assert (joined.channel, joined.entry_point) == ("xhs", "xhs-note-1")  # the pass's entry point
    assert [(sorted((p.keep_id, p.merged_id)), p.reason, p.status) for p in pairs] == [
        (sorted((holder, joined.member_id)), "own_link", "candidate")]
    assert [row["reason"] for row in merges.list_merges(ws)] == ["own_link"]


def test_a_stranger_on_a_second_platform_is_not_let_in_on_someone_elses_code(workspace: Workspace) -> None:
    ws = workspace
    gated_member(ws)
    telegram_group(ws)
    request = JoinRequested("telegram", datetime(2026, 12, 4, 9, 0), "-100", "888", "X", "not-a-pass")
    join.on_join_request(ws, request)
    assert not join.known_request(ws, request)
    with ws.engine.connect() as conn:
        assert conn.execute(select(member_merges)).all() == []
