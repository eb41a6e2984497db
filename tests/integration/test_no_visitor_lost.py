"""No visitor lost (issue 12): the fallback order, the waitlist and its invitation, the no-room alert."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.connectors.base import MemberLeft
from qunflow.domain.gate import SEED_GATE_JSON
from qunflow.services import catalog
from qunflow.services.automation import work_once
from qunflow.services.join import NoRoom, Waitlisted, on_member_left, submit_gate
from qunflow.services.playbooks import apply_playbooks, shipped_files
from qunflow.services.privacy import unseal
from qunflow.services.waitlist import leave_contact, offer_seats, status_of
from qunflow.store.consents import has_consent
from qunflow.store.tables import events, groups, inbox, members, waitlist
from qunflow.workspace import Workspace, open_workspace

PROFILE = {"name": "Li Lei", "need": "more leads", "interest": "ads", "consent": "on"}
ANSWERS = [{"stage": s["key"], "experience": e["key"]}
           for s, e in itertools.product(SEED_GATE_JSON["questions"][0]["options"],
                                         SEED_GATE_JSON["questions"][1]["options"])]


def readme_set_up(tmp_path: Path) -> Workspace:
    """The README's "Using it for a real community" set-up, through the CLI as a new user types it."""
    runner = CliRunner()
    home = tmp_path / "mycommunity"
    assert runner.invoke(app, ["init", str(home)]).exit_code == 0
    for args in (["channel", "add", "xhs", "--kind", "content"],
                 ["group", "add", "core-1", "--tier", "core", "--capacity", "200"],
                 ["group", "add", "newbie-1", "--tier", "newbie", "--capacity", "200"],
                 ["entry", "add", "xhs-note-7", "--channel", "xhs", "--gate", "seed"]):
        result = runner.invoke(app, [*args, "--workspace", str(home)])
        assert result.exit_code == 0, result.output
    return open_workspace(home)


def token_of(link: str) -> str:
    return link.rsplit("/", 1)[1]


def test_every_seed_gate_answer_reaches_a_group_with_the_readme_set_up(tmp_path: Path) -> None:
    ws = readme_set_up(tmp_path)
    assert len(ANSWERS) == 6
    placed = {}
    for n, answers in enumerate(ANSWERS):
        ticket = submit_gate(ws, "xhs-note-7", f"v{n}", {**PROFILE, **answers})  # never NoRoom: room is there
        placed[(answers["stage"], answers["experience"])] = ticket.group
    assert placed == {("buying", "yes"): "core-1", ("buying", "no"): "core-1",
                      ("learning", "yes"): "newbie-1",  # interest has no group: the next tier along the order
                      ("learning", "no"): "newbie-1",
                      ("browsing", "yes"): "newbie-1",  # broadcast has no group: back to newbie
                      ("browsing", "no"): "newbie-1"}
    with ws.engine.connect() as conn:
        passes = conn.execute(select(events.c.properties).where(events.c.type == "gate_submitted")).scalars().all()
        alerts = conn.execute(select(inbox.c.cause, inbox.c.title).where(inbox.c.kind == "alert")).all()
    assert not any(p["no_room"] for p in passes)
    assert {p["tier"] for p in passes} == {"core", "interest", "newbie", "broadcast"}  # what the gate chose
    assert {p["placed_tier"] for p in passes} == {"core", "newbie"}  # where they went
    # The operator hears at once that interest and broadcast have no group (once per tier and hour).
    assert sorted(c.split(":")[1] for c, _ in alerts) == ["broadcast", "interest"]
    assert all("newbie-1" in title for _, title in alerts)


def test_every_seed_gate_answer_reaches_a_group_or_the_waitlist_when_groups_fill(tmp_path: Path) -> None:
    ws = readme_set_up(tmp_path)
    with ws.engine.begin() as conn:  # both groups one seat short of full
        conn.execute(update(groups).values(member_count=groups.c.capacity - 1))
    outcomes = []
    for n, answers in enumerate(ANSWERS * 2):
        visitor = f"v{n}"
        try:
            ticket = submit_gate(ws, "xhs-note-7", visitor, {**PROFILE, **answers})
            assert ws.sandbox.join(f"u{n}", "x", token_of(ticket.invite_url)) in ("joined", "requested")
            outcomes.append(ticket.group)
        except Waitlisted as exc:
            outcomes.append("waitlist")
            assert exc.link.endswith(f"/w/{exc.link.rsplit('/', 1)[1]}")
    assert outcomes.count("core-1") == 1 and outcomes.count("newbie-1") == 1
    assert outcomes.count("waitlist") == len(ANSWERS) * 2 - 2
    with ws.engine.connect() as conn:
        waiting = conn.execute(select(waitlist)).all()
    assert len(waiting) == len(ANSWERS) * 2 - 2 and {w.status for w in waiting} == {"waiting"}


def test_core_full_sends_a_buyer_to_the_next_tier_and_alerts(workspace: Workspace) -> None:
    ws = workspace
    catalog.add_channel(ws, "xhs", "content")
    catalog.add_gate(ws, "seed")
    catalog.add_group(ws, "core-1", "core", 1)
    catalog.add_group(ws, "interest-1", "interest", 5)
    catalog.add_entry_point(ws, "note", "xhs", gate="seed")
    buyer = {**PROFILE, "stage": "buying", "experience": "yes"}
    first = submit_gate(ws, "note", "v1", buyer)
    assert ws.sandbox.join("u1", "Li", token_of(first.invite_url)) == "joined"
    second = submit_gate(ws, "note", "v2", buyer)
    assert (first.group, second.group, second.tier) == ("core-1", "interest-1", "interest")
    with ws.engine.connect() as conn:
        alert = conn.execute(select(inbox).where(inbox.c.kind == "alert")).one()
        tier = conn.execute(select(members.c.tier).where(members.c.id == second.member_id)).scalar()
    assert alert.cause.startswith("no_room:core:") and "interest-1" in alert.title and "note" in alert.title
    assert "Li" not in alert.title  # no profile field in an alert
    assert tier == "interest"


def test_fallback_order_is_the_operators(tmp_path: Path) -> None:
    ws = readme_set_up(tmp_path)
    (ws.home / "qunflow.toml").write_text((ws.home / "qunflow.toml").read_text(encoding="utf-8").replace(
        "[qunflow]", '[qunflow]\ntier_fallback = ["core", "interest"]', 1), encoding="utf-8")
    ws = open_workspace(ws.home)
    assert ws.settings.tier_fallback == ["core", "interest"]
    # broadcast is not in the order: no fallback, so the browser waits instead of entering newbie
    with pytest.raises(Waitlisted):
        submit_gate(ws, "xhs-note-7", "v1", {**PROFILE, "stage": "browsing", "experience": "no"})
    assert isinstance(Waitlisted("x", "m", "t", "l"), NoRoom)  # callers that catch NoRoom still do


def test_waitlisted_person_leaves_a_contact_and_is_invited_when_a_seat_opens(any_workspace: Workspace) -> None:
    ws = any_workspace
    apply_playbooks(ws, [p for p in shipped_files() if p.name == "waitlist_invite.yaml"])
    catalog.add_channel(ws, "xhs", "content")
    catalog.add_gate(ws, "seed")
    catalog.add_group(ws, "newbie-1", "newbie", 1)
    catalog.add_entry_point(ws, "note", "xhs", gate="seed")
    form = {**PROFILE, "stage": "learning", "experience": "no"}
    first = submit_gate(ws, "note", "v1", form)
    assert ws.sandbox.join("u1", "Li", token_of(first.invite_url)) == "joined"
    with pytest.raises(Waitlisted) as caught:
        submit_gate(ws, "note", "v2", {**form, "name": "Han Mei"})
    token = token_of(caught.value.link)
    member_id = caught.value.member_id
    assert status_of(ws, token).status == "waiting"

    with pytest.raises(Exception, match="tick the box"):
        leave_contact(ws, token, "wechat-hanmei", agreed=False)
    leave_contact(ws, token, "wechat-hanmei", agreed=True)
    with ws.engine.connect() as conn:
        member = conn.execute(select(members).where(members.c.id == member_id)).one()
        assert has_consent(conn, member_id, "waitlist") and has_consent(conn, member_id, "profile")
    assert unseal(ws, member.profile)["contact"] == "wechat-hanmei" and b"hanmei" not in member.profile
    assert offer_seats(ws) == 0  # still full

    on_member_left(ws, MemberLeft("sandbox", ws.clock(), "chat-newbie-1", "u1"))  # a seat opens
    state = status_of(ws, token)
    assert (state.status, state.group) == ("invited", "newbie-1") and state.invite_url
    assert offer_seats(ws) == 0  # the seat is offered once
    work_once(ws, worker="t")  # the shipped playbook tells staff
    with ws.engine.connect() as conn:
        tag = conn.execute(select(events).where(events.c.type == "tag_added", events.c.member_id == member_id)).one()
        told = conn.execute(select(inbox.c.title).where(inbox.c.member_id == member_id)).scalars().all()
    assert tag.properties["tag"] == "waitlist_invited" and tag.group_key == "newbie-1"
    assert any(member_id in title and "newbie-1" in title for title in told)

    assert ws.sandbox.join("u2", "Han Mei", token_of(state.invite_url)) == "joined"
    with ws.engine.connect() as conn:
        row = conn.execute(select(waitlist).where(waitlist.c.member_id == member_id)).one()
        member = conn.execute(select(members).where(members.c.id == member_id)).one()
        joined = conn.execute(select(events).where(events.c.type == "joined", events.c.member_id == member_id)).one()
    assert row.status == "joined" and "contact" not in unseal(ws, member.profile)  # the contact is dropped
    assert joined.entry_point == "note" and joined.properties["attribution"] == "invite_label"


def test_adding_a_group_invites_the_waitlist(tmp_path: Path) -> None:
    ws = readme_set_up(tmp_path)
    with ws.engine.begin() as conn:
        conn.execute(update(groups).values(member_count=groups.c.capacity))
    with pytest.raises(Waitlisted) as caught:
        submit_gate(ws, "xhs-note-7", "v1", {**PROFILE, "stage": "buying", "experience": "yes"})
    result = CliRunner().invoke(app, ["group", "add", "core-2", "--tier", "core", "--capacity", "50",
                                      "--workspace", str(ws.home)])
    assert result.exit_code == 0 and "1 people on the waitlist invited" in result.output
    assert status_of(ws, token_of(caught.value.link)).group == "core-2"


def test_a_gate_stored_before_documents_gets_version_1_when_a_document_is_applied(workspace: Workspace) -> None:
    from qunflow.services.gates import apply_gates, gate_view, seed_file

    catalog.add_gate(workspace, "seed")  # as issue 11's workspaces stored it: JSON, no version
    before = gate_view(workspace, "seed")
    assert before.version is None and before.versions == [] and "kind: gate" in before.text
    [change] = apply_gates(workspace, [seed_file()])
    assert (change.status, change.version) == ("new", 1)
    after = gate_view(workspace, "seed")
    assert after.version == 1 and after.gate == before.gate


def test_erasing_a_waitlisted_member_removes_them_from_the_waitlist(workspace: Workspace) -> None:
    from qunflow.services.erasure import erase_member

    ws = workspace
    catalog.add_channel(ws, "xhs", "content")
    catalog.add_gate(ws, "seed")
    catalog.add_entry_point(ws, "note", "xhs", gate="seed")  # no group at all
    with pytest.raises(Waitlisted) as caught:
        submit_gate(ws, "note", "v1", {**PROFILE, "stage": "buying", "experience": "yes"})
    leave_contact(ws, token_of(caught.value.link), "13800000000", agreed=True)
    erase_member(ws, caught.value.member_id, "test")
    with ws.engine.connect() as conn:
        assert conn.execute(select(waitlist)).first() is None
    assert offer_seats(ws) == 0


def test_the_no_room_alert_reaches_the_staff_webhook_at_once(tmp_path: Path) -> None:
    from tests.webhook import Webhook

    ws = readme_set_up(tmp_path)
    with Webhook() as hook:
        ws.settings = ws.settings.model_copy(update={"staff_webhook": hook.url})
        submit_gate(ws, "xhs-note-7", "v1", {**PROFILE, "stage": "browsing", "experience": "no"})
        deadline = time.monotonic() + 5
        while not hook.received and time.monotonic() < deadline:
            time.sleep(0.05)
    [post] = hook.received
    assert (post["kind"], post["tier"], post["placed_tier"], post["entry_point"]) == (
        "no_room", "broadcast", "newbie", "xhs-note-7")
    assert "Li Lei" not in post["text"]


def test_a_gateless_entry_point_falls_back_too_and_alerts(workspace: Workspace) -> None:
    from qunflow.services.join import entry_invite

    ws = workspace
    catalog.add_channel(ws, "ads", "ad")
    catalog.add_group(ws, "newbie-1", "newbie", 5)
    catalog.add_entry_point(ws, "ads-1", "ads", target_tier="interest")  # no gate, no interest group
    _entry, group, link = entry_invite(ws, "ads-1")
    assert group.key == "newbie-1" and link.url
    with ws.engine.connect() as conn:
        [cause] = conn.execute(select(inbox.c.cause).where(inbox.c.kind == "alert")).scalars().all()
    assert cause.startswith("no_room:interest:")
    entry_invite(ws, "ads-1")  # once per tier and hour
    with ws.engine.connect() as conn:
        assert len(conn.execute(select(inbox.c.id)).all()) == 1


def test_serve_offers_a_seat_freed_without_a_command(tmp_path: Path) -> None:
    """A seat that opens by itself (here: the capacity raised in the database; in life, a join hold that
    lapsed) reaches the waitlist through serve's background loop, with no CLI command run."""
    from qunflow.services.runtime import background_loops

    ws = readme_set_up(tmp_path)
    with ws.engine.begin() as conn:
        conn.execute(update(groups).values(member_count=groups.c.capacity))
    with pytest.raises(Waitlisted) as caught:
        submit_gate(ws, "xhs-note-7", "v1", {**PROFILE, "stage": "buying", "experience": "yes"})
    step = next(loop.step for loop in background_loops(ws) if loop.name == "waitlist")
    step()  # type: ignore[operator]
    assert status_of(ws, token_of(caught.value.link)).status == "waiting"  # still no room
    with ws.engine.begin() as conn:
        conn.execute(update(groups).where(groups.c.key == "newbie-1").values(capacity=groups.c.capacity + 1))
    step()  # type: ignore[operator]
    assert status_of(ws, token_of(caught.value.link)).group == "newbie-1"
