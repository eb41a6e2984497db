"""Tier moves that happen (issue 13), on the sandbox platform with a simulated clock: a member who matches a
tier rule gets their own link into the new tier by DM, joins through it, the move completes and they leave
the old group; every step is an event. Offers expire and are not repeated within 30 days."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from qunflow.errors import InvalidInput
from qunflow.services.automation import work_once
from qunflow.services.ingest import ingest_batch
from qunflow.services.join import entry_invite, member_of_user
from qunflow.services.member_records import member_record
from qunflow.services.playbooks import apply_playbooks
from qunflow.services.tier_moves import evaluate, move_counts
from qunflow.store.tables import events, groups, identities, inbox, members, tier_moves
from qunflow.workspace import Workspace
from tests.integration.test_day1_tasks import walk_in_member
from tests.integration.test_join_flow import setup_community

RULES = """\
kind: tier_rules
key: default
rules:
  - key: buyers
    when:
      - {orders: 3, days: 90}
    to_tier: core
    from_tiers: [newbie]
    leave_old: true
    expire_days: 7
    dm: {zh: "{{ name }} 请进核心群 {{ group }}:{{ link }}", en: "{{ name }}, join {{ group }}: {{ link }}"}
"""


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def apply_rules(ws: Workspace, tmp_path: Path, text: str = RULES, name: str = "tiers.yaml") -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    apply_playbooks(ws, [path])


def order(ws: Workspace, member_id: str, at: datetime, n: int = 1) -> None:
    stamp = at.replace(tzinfo=UTC)
    batch = [{"event_id": f"o-{member_id}-{stamp:%Y%m%d%H%M%S}-{i}", "type": "order", "member_id": member_id,
              "amount": "99", "currency": "CNY", "ts": (stamp + timedelta(seconds=i)).isoformat()} for i in range(n)]
    assert ingest_batch(ws.engine, batch).stored == n


def typed(ws: Workspace, member_id: str, *kinds: str) -> list[dict[str, object]]:
    with ws.engine.connect() as conn:
        rows = conn.execute(select(events).where(events.c.member_id == member_id, events.c.type.in_(kinds))
                            .order_by(events.c.seq)).all()
    return [{"type": r.type, "group": r.group_key, **(r.properties or {})} for r in rows]


def link_in_dm(ws: Workspace, user: str) -> str:
    newest = ws.sandbox.messages(dm_user_id=user)[0]["text"]
    found = re.search(r"/sandbox/invite/(\S+)", newest)
    assert found, newest
    return found.group(1)


def started(ws: Workspace) -> tuple[Clock, str]:
    clock = Clock(datetime(2026, 3, 2, 2, 0))
    ws.clock = clock
    setup_community(ws)
    return clock, walk_in_member(ws)


def test_three_orders_bring_the_core_link_by_dm_and_joining_completes_the_move(any_workspace: Workspace,
                                                                                  tmp_path: Path) -> None:
    ws = any_workspace
    clock, member_id = started(ws)
    apply_rules(ws, tmp_path)
    order(ws, member_id, clock.now, n=2)
    assert evaluate(ws).planned == []  # two orders: not yet
    order(ws, member_id, clock.now + timedelta(minutes=1))
    clock.now += timedelta(hours=1)
    run = evaluate(ws)
    assert [(m.member_id, m.to_tier, m.why) for m in run.planned] == [(member_id, "core", "orders>=3/90d")]
    assert (run.requested, run.offered) == (1, 1)
    assert evaluate(ws).planned == []  # one open move per member: no second offer

    dm = ws.sandbox.messages(dm_user_id="w1")[0]["text"]
    assert "core-1" in dm and "/sandbox/invite/" in dm
    [offered] = typed(ws, member_id, "tier_move_offered")
    assert offered == {"type": "tier_move_offered", "group": "core-1", "rule": "default/buyers",
                       "from_group": "newbie-1", "from_tier": "newbie", "to_group": "core-1", "to_tier": "core",
                       "dm": True}

    clock.now += timedelta(days=2)
    assert ws.sandbox.join("w1", "Walker", link_in_dm(ws, "w1")) == "joined"
    steps = typed(ws, member_id, "joined", "tier_moved", "left")
    assert [(s["type"], s["group"]) for s in steps] == [
        ("joined", "newbie-1"), ("joined", "core-1"), ("tier_moved", "core-1"), ("left", "newbie-1")]
    assert steps[1]["attribution"] == "tier_move"
    assert (steps[2]["from_group"], steps[2]["to_tier"], steps[2]["leave_old"]) == ("newbie-1", "core", True)
    with ws.engine.connect() as conn:
        member = conn.execute(select(members.c.tier, groups.c.key).join(groups, groups.c.id == members.c.group_id)
                              .where(members.c.id == member_id)).one()
        counts = {r.key: r.member_count for r in conn.execute(select(groups.c.key, groups.c.member_count))}
    assert tuple(member) == ("core", "core-1")
    assert (counts["core-1"], counts["newbie-1"]) == (1, 0)
    chats = {c["id"]: c["members"] for c in ws.sandbox.chats()}
    assert (chats["chat-core-1"], chats["chat-newbie-1"]) == (1, 0)  # really out of the old group
    assert move_counts(ws)["completed"] == 1
    assert evaluate(ws).planned == []  # in the core tier now

    record = member_record(ws, member_id, with_profile=False)
    assert [(m["status"], m["from_group"], m["to_group"]) for m in record["tier_moves"]] == [
        ("completed", "newbie-1", "core-1")]
    assert {"tier_move_offered", "tier_moved"} <= {item["type"] for item in record["timeline"]}


def test_an_unanswered_offer_expires_and_the_rule_waits_30_days_to_offer_again(workspace: Workspace,
                                                                               tmp_path: Path) -> None:
    ws = workspace
    clock, member_id = started(ws)
    apply_rules(ws, tmp_path)
    order(ws, member_id, clock.now, n=3)
    assert evaluate(ws).offered == 1
    token = link_in_dm(ws, "w1")

    clock.now += timedelta(days=7, minutes=1)
    work_once(ws)  # the worker's round expires lapsed offers
    [expired] = typed(ws, member_id, "tier_move_expired")
    assert (expired["rule"], expired["to_tier"], expired["days"]) == ("default/buyers", "core", 7)
    assert ws.sandbox.join("w1", "Walker", token) == "refused"  # the link was revoked
    assert move_counts(ws)["expired"] == 1

    clock.now += timedelta(days=20)
    assert evaluate(ws).planned == []  # offered 27 days ago: not again yet
    clock.now += timedelta(days=4)
    order(ws, member_id, clock.now, n=3)  # still a buyer
    run = evaluate(ws)
    assert run.offered == 1 and len(typed(ws, member_id, "tier_move_offered")) == 2
    assert link_in_dm(ws, "w1") != token  # a new link for the new offer


def test_an_invalid_rule_document_is_refused_with_its_line(workspace: Workspace, tmp_path: Path) -> None:
    bad = RULES.replace("      - {orders: 3, days: 90}", "      - {orders: 3}")
    with pytest.raises(InvalidInput, match=r"tiers.yaml:6: rules\[0\].when\[0\]: orders needs days"):
        apply_rules(workspace, tmp_path, bad)
    with pytest.raises(InvalidInput, match=r"tiers.yaml:7: rules\[0\].to_tier"):
        apply_rules(workspace, tmp_path, RULES.replace("to_tier: core", "to_tier: gold"))
    with workspace.engine.connect() as conn:
        assert conn.execute(select(tier_moves)).first() is None


def test_a_move_group_step_uses_the_same_move(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    clock, member_id = started(ws)
    playbook = """kind: playbook
key: vip_upgrade
title: {zh: VIP 升级, en: VIP upgrade}
trigger: {on: tag_added, tag: vip}
steps:
  - move_group: core-2
"""
    apply_rules(ws, tmp_path, playbook, "vip.yaml")
    stamp = clock.now.replace(tzinfo=UTC).isoformat()
    assert ingest_batch(ws.engine, [{"event_id": "tag-1", "type": "tag_added", "member_id": member_id, "ts": stamp,
                                     "properties": {"tag": "vip"}}]).stored == 1
    work_once(ws)  # the trigger enrolls, the step requests the move
    work_once(ws)  # the next round offers it
    [offered] = typed(ws, member_id, "tier_move_offered")
    assert (offered["to_group"], offered["rule"]) == ("core-2", "playbook:vip_upgrade")
    assert ws.sandbox.join("w1", "Walker", link_in_dm(ws, "w1")) == "joined"
    assert [s["group"] for s in typed(ws, member_id, "tier_moved")] == ["core-2"]
    assert typed(ws, member_id, "left") == []  # the step does not ask to leave the old group
    with ws.engine.connect() as conn:
        assert conn.execute(select(inbox).where(inbox.c.member_id == member_id,
                                                inbox.c.title.contains("core-2"))).first() is None


def test_no_dm_possible_means_staff_get_the_link_and_one_who_left_already_is_not_removed(
        workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    clock, member_id = started(ws)
    apply_rules(ws, tmp_path)
    order(ws, member_id, clock.now, n=3)
    with ws.engine.begin() as conn:  # the person blocked the bot: the outbox marked them unreachable
        conn.execute(identities.update().where(identities.c.member_id == member_id).values(unreachable_at=clock.now))
    assert evaluate(ws).offered == 1
    [offered] = typed(ws, member_id, "tier_move_offered")
    assert offered["dm"] is False
    with ws.engine.connect() as conn:
        [title] = conn.execute(select(inbox.c.title).where(inbox.c.member_id == member_id,
                                                           inbox.c.cause.like("tm-link:%"))).scalars()
    token = re.search(r"/sandbox/invite/(\S+)", title)
    assert token and "core-1" in title  # staff send it by hand
    ws.sandbox.leave("w1", "chat-newbie-1")  # gone from the old group on their own
    assert ws.sandbox.join("w1", "Walker", token.group(1)) == "joined"
    assert [s["type"] for s in typed(ws, member_id, "left", "tier_moved")] == ["left", "tier_moved"]
    with ws.engine.connect() as conn:  # nothing left to ask staff to do
        assert conn.execute(select(inbox).where(inbox.c.cause.like("tm-leave:%"))).first() is None


def test_the_cli_shows_a_dry_run_then_offers_and_counts(workspace: Workspace, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from qunflow.cli.main import app

    ws = workspace
    setup_community(ws)
    member_id = walk_in_member(ws)
    apply_rules(ws, tmp_path)
    order(ws, member_id, datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1), n=3)
    runner = CliRunner()
    home = ["--workspace", str(ws.home)]
    dry = runner.invoke(app, ["tier", "moves", "--dry-run", "--format", "json", *home])
    assert dry.exit_code == 0, dry.stderr
    shown = json.loads(dry.stdout)
    assert [(m["member_id"], m["to_tier"], m["why"]) for m in shown["planned"]] == [(member_id, "core",
                                                                                   "orders>=3/90d")]
    assert shown["requested"] == 0 and sum(shown["moves"].values()) == 0  # a dry run stores nothing
    done = runner.invoke(app, ["tier", "moves", *home])
    assert done.exit_code == 0, done.stderr
    assert "1 moves requested, 1 offered" in done.stdout and "offered 1" in done.stdout
    assert runner.invoke(app, ["tier", "moves", "--format", "xml", *home]).exit_code == 2
    shown_member = runner.invoke(app, ["member", "show", member_id, *home])
    assert shown_member.exit_code == 0 and "tier move  newbie-1 -> core-1  offered" in shown_member.stdout


def test_level_held_long_enough_and_tag_conditions_come_from_the_stored_facts(any_workspace: Workspace,
                                                                              tmp_path: Path) -> None:
    from datetime import date

    from qunflow.store.tables import member_levels, member_tags

    ws = any_workspace
    clock = Clock(datetime(2026, 3, 30, 2, 0))  # 10:00 in Shanghai, 2026-03-30
    ws.clock = clock
    rules = """\
kind: tier_rules
key: default
rules:
  - key: fans
    when:
      - {level: core, days: 14}
      - {tag: vip}
    to_tier: core
  - key: quiet
    when:
      - {level: dormant, days: 30}
    to_tier: broadcast
    from_tiers: [newbie]
"""
    apply_rules(ws, tmp_path, rules)
    with ws.engine.begin() as conn:
        for member_id, tier in (("m_core_long", "newbie"), ("m_core_new", "newbie"), ("m_vip", "interest"),
                                ("m_sleepy", "newbie"), ("m_sleepy_interest", "interest"), ("m_unjoined", "newbie")):
            conn.execute(members.insert().values(id=member_id, tier=tier, locale="zh", created_at=clock.now,
                                                 joined_at=None if member_id == "m_unjoined" else clock.now))
        as_of = date(2026, 3, 30)
        conn.execute(member_levels.insert(), [
            {"member_id": m, "level": level, "score": 0, "since": since, "as_of": as_of}
            for m, level, since in (("m_core_long", "core", date(2026, 3, 16)),
                                    ("m_core_new", "core", date(2026, 3, 17)),
                                    ("m_sleepy", "dormant", date(2026, 2, 28)),
                                    ("m_sleepy_interest", "dormant", date(2026, 2, 1)),
                                    ("m_unjoined", "core", date(2026, 3, 1)))])
        conn.execute(member_tags.insert().values(member_id="m_vip", tag="vip", added_at=clock.now))
    planned = evaluate(ws, dry_run=True).planned
    assert sorted((m.member_id, m.to_tier, m.why) for m in planned) == [
        ("m_core_long", "core", "level=core/14d"),  # core since 14 days ago: held long enough (13 is not)
        ("m_sleepy", "broadcast", "level=dormant/30d"),  # dormant since 30 days ago; the interest one is not newbie
        ("m_vip", "core", "tag=vip")]


def test_a_move_link_that_asks_to_join_is_approved_for_its_member_only(workspace: Workspace,
                                                                       tmp_path: Path) -> None:
    """Where a personal link is a join request (Telegram), the request on the move's label is approved."""
    ws = workspace
    clock, member_id = started(ws)
    apply_rules(ws, tmp_path)
    order(ws, member_id, clock.now, n=3)
    assert evaluate(ws).offered == 1
    with ws.engine.connect() as conn:
        label = conn.execute(select(tier_moves.c.label)).scalar_one()
    asking = ws.sandbox.create_invite("chat-core-1", label, join_request=True)
    stranger = ws.sandbox.create_invite("chat-core-1", label, join_request=True)
    assert ws.sandbox.join("w1", "Walker", asking) == "requested"  # approved at once: it is their move
    assert [s["group"] for s in typed(ws, member_id, "tier_moved")] == ["core-1"]
    assert ws.sandbox.join("s9", "Stranger", stranger) == "requested"  # the label is not theirs: left pending
    assert {c["id"]: c["members"] for c in ws.sandbox.chats()}["chat-core-1"] == 1


def test_a_tier_without_room_fails_its_moves_with_one_alert(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    clock, first = started(ws)
    _entry, _group, link = entry_invite(ws, "walk-in")
    assert ws.sandbox.join("w2", "Second", link.url.rsplit("/", 1)[1]) in ("joined", "requested")
    with ws.engine.connect() as conn:
        second = member_of_user(conn, "sandbox", "w2")
    assert second is not None
    with ws.engine.begin() as conn:  # both core groups are full
        conn.execute(groups.update().where(groups.c.tier == "core").values(member_count=groups.c.capacity))
    apply_rules(ws, tmp_path)
    for member_id in (first, second):
        order(ws, member_id, clock.now, n=3)
    run = evaluate(ws)
    assert (run.requested, run.offered) == (2, 0)
    assert move_counts(ws)["failed"] == 2
    with ws.engine.connect() as conn:
        alerts = conn.execute(select(inbox.c.title).where(inbox.c.cause.like("tm-fail:%"))).scalars().all()
    assert len(alerts) == 1 and "core" in alerts[0]
    assert typed(ws, first, "tier_move_offered") == []
