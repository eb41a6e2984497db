"""The chain from landing to welcome on the sandbox platform, through the real services."""

from __future__ import annotations

from sqlalchemy import select, update

from qunflow.domain.gate import GateErrors
from qunflow.services import catalog
from qunflow.services.join import NoRoom, record_landing, submit_gate
from qunflow.store.tables import consents, events, groups, members
from qunflow.workspace import Workspace

FORM = {"name": "Li Lei", "need": "more leads", "interest": "ads", "stage": "buying",
        "experience": "yes", "consent": "on"}
# A person's phone, as the gate's guard sees it: an HTTP library's own user agent looks automated (issue 11).
PHONE = {"user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) MicroMessenger/8.0.49"}


def setup_community(ws: Workspace, core_capacity: int = 2) -> None:
    catalog.add_channel(ws, "xhs", "content", "Xiaohongshu notes")
    catalog.add_gate(ws, "seed")
    catalog.add_group(ws, "core-1", "core", core_capacity)
    catalog.add_group(ws, "core-2", "core", core_capacity)
    catalog.add_group(ws, "newbie-1", "newbie", 100)
    catalog.add_entry_point(ws, "xhs-note-1", "xhs", target_tier="newbie", gate="seed")


def invite_token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def event_types(ws: Workspace, member_id: str) -> list[str]:
    with ws.engine.connect() as conn:
        return list(conn.execute(select(events.c.type).where(events.c.member_id == member_id)
                                 .order_by(events.c.seq)).scalars())


def test_gated_join_is_attributed_welcomed_and_assigned_day1_tasks(any_workspace: Workspace) -> None:
    ws = any_workspace
    setup_community(ws)
    record_landing(ws, "xhs-note-1", "v1", {"utm_campaign": "spring"})
    ticket = submit_gate(ws, "xhs-note-1", "v1", FORM)
    assert ticket.tier == "core" and ticket.group == "core-1"
    world = ws.sandbox
    assert world.join("u1", "Li Lei", invite_token(ticket.invite_url)) == "joined"

    with ws.engine.connect() as conn:
        joined = conn.execute(select(events).where(events.c.type == "joined")).one()
        member = conn.execute(select(members).where(members.c.id == ticket.member_id)).one()
        consent = conn.execute(select(consents).where(consents.c.member_id == ticket.member_id,
                                                      consents.c.purpose == "profile")).one()
    assert (joined.member_id, joined.visitor_id, joined.channel, joined.entry_point, joined.group_key) == (
        ticket.member_id, "v1", "xhs", "xhs-note-1", "core-1")
    assert joined.properties["attribution"] == "invite_label"
    assert b"Li Lei" not in member.profile  # encrypted at rest
    assert consent.purpose == "profile" and consent.granted and consent.source == "gate"
    types = event_types(ws, ticket.member_id)
    assert types.count("task_assigned") == 2 and "welcome_sent" in types  # no profile task: the gate had it
    assert "task_completed" not in types
    dm = world.messages(dm_user_id="u1")
    assert len(dm) == 1 and "Li Lei" in dm[0]["text"] and "/task/claim_coupon" in dm[0]["text"]
    assert any("签到" in m["text"] for m in world.messages(chat_id="chat-core-1"))


def test_welcome_dm_follows_join_within_a_second(workspace: Workspace) -> None:
    setup_community(workspace)
    ticket = submit_gate(workspace, "xhs-note-1", "v1", FORM)
    workspace.sandbox.join("u1", "Li", invite_token(ticket.invite_url))
    with workspace.engine.connect() as conn:
        sent = conn.execute(select(events).where(events.c.type == "welcome_sent")).one()
    assert sent.properties["latency_ms"] < 1000


def test_live_code_moves_to_next_group_when_full_and_reports_no_room(workspace: Workspace) -> None:
    setup_community(workspace, core_capacity=1)
    first = submit_gate(workspace, "xhs-note-1", "v1", FORM)
    assert workspace.sandbox.join("u1", "Li", invite_token(first.invite_url)) == "joined"
    second = submit_gate(workspace, "xhs-note-1", "v2", FORM)
    assert workspace.sandbox.join("u2", "Han", invite_token(second.invite_url)) == "joined"
    assert (first.group, second.group) == ("core-1", "core-2")
    third = submit_gate(workspace, "xhs-note-1", "v3", FORM)  # core is full: the fallback order (issue 12)
    assert (third.group, third.tier) == ("newbie-1", "newbie")
    with workspace.engine.begin() as conn:
        conn.execute(update(groups).where(groups.c.key == "newbie-1").values(member_count=100))
    try:
        submit_gate(workspace, "xhs-note-1", "v4", FORM)
    except NoRoom as exc:  # Waitlisted: no group with room along the whole order
        assert "core" in str(exc)
    else:
        raise AssertionError("a fourth core member must find no room")
    room = {r["key"]: r["room"] for r in catalog.list_groups(workspace)}
    assert room["core-1"] == room["core-2"] == room["newbie-1"] == 0
    with workspace.engine.connect() as conn:  # the turned-away pass is on record, waiting without a group
        turned_away = conn.execute(select(events).where(events.c.type == "gate_submitted",
                                                        events.c.visitor_id == "v4")).one()
        assert turned_away.properties["no_room"] is True
        member = conn.execute(select(members).where(members.c.visitor_id == "v4")).one()
        assert member.group_id is None and member.join_ticket is None


def test_gate_without_consent_is_refused_and_stores_no_member(workspace: Workspace) -> None:
    setup_community(workspace)
    try:
        submit_gate(workspace, "xhs-note-1", "v1", {**FORM, "consent": "", "name": ""})
    except GateErrors as exc:
        assert set(exc.errors) == {"consent", "name"}
    else:
        raise AssertionError("expected GateErrors")
    with workspace.engine.connect() as conn:
        assert conn.execute(select(members)).first() is None


def test_checkin_message_completes_task_and_counts_as_activity(workspace: Workspace) -> None:
    setup_community(workspace)
    ticket = submit_gate(workspace, "xhs-note-1", "v1", FORM)
    world = workspace.sandbox
    world.join("u1", "Li", invite_token(ticket.invite_url))
    world.say("u1", "签到!", chat_id="chat-core-1")
    types = event_types(workspace, ticket.member_id)
    assert {"message", "checkin"} <= set(types) and types.count("task_completed") == 1


def test_unattributed_join_is_recorded_as_such(workspace: Workspace) -> None:
    setup_community(workspace)
    world = workspace.sandbox
    token = world.create_invite("chat-newbie-1", "walk-in", join_request=False)
    world.join("u9", "Walk In", token)
    with workspace.engine.connect() as conn:
        joined = conn.execute(select(events).where(events.c.type == "joined")).one()
        count = conn.execute(select(groups.c.member_count).where(groups.c.key == "newbie-1")).scalar()
    assert joined.properties["attribution"] == "unattributed" and joined.channel is None
    assert count == 1
