"""Privacy rights (issue 11, P8) through the real services on SQLite and PostgreSQL: marketing only with
consent, the stop word and the consent ask, no profile field in a group or an alert, export and erasure."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from qunflow.domain.keyword_files import RuleSet, RuleSetSource
from qunflow.engine import outbox
from qunflow.errors import NotFound
from qunflow.services import catalog
from qunflow.services.automation import work_once
from qunflow.services.erasure import erase_member
from qunflow.services.fraud import RawSignals
from qunflow.services.join import submit_gate
from qunflow.services.keyword_rules import apply_rule_sets
from qunflow.services.member_records import export_member, find_member
from qunflow.services.playbooks import apply_playbooks, shipped_files
from qunflow.services.privacy import unseal
from qunflow.store.consents import consents_in_force
from qunflow.store.tables import deliveries, erasures, events, inbox, members, staff_alerts
from qunflow.workspace import Workspace
from tests.conftest import use_clickhouse

NOON = datetime(2026, 3, 2, 4, 0)  # 12:00 in Shanghai: outside the quiet hours
CHAT = "chat-newbie-1"
GATE = {"fields": [{"key": "name", "label": {"en": "Name", "zh": "称呼"}},
                   {"key": "phone", "label": {"en": "Phone", "zh": "手机"}, "required": False}], "questions": []}


def community(ws: Workspace, *files: str) -> list[datetime]:
    clock = [NOON]
    ws.clock = lambda: clock[0]
    catalog.add_channel(ws, "xhs", "content")
    catalog.add_gate(ws, "g", GATE)
    catalog.add_group(ws, "newbie-1", "newbie", 100)
    catalog.add_entry_point(ws, "xhs-1", "xhs", target_tier="newbie", gate="g")
    apply_playbooks(ws, [p for p in shipped_files() if p.name in files])
    return clock


def join(ws: Workspace, name: str, phone: str, user: str, *, marketing: bool) -> str:
    form = {"name": name, "phone": phone, "consent": "on", **({"marketing": "on"} if marketing else {})}
    ticket = submit_gate(ws, "xhs-1", f"v-{user}", form, signals=RawSignals(phone=phone, device="d" * 16 + user))
    assert ws.sandbox.join(user, name, ticket.invite_url.rsplit("/", 1)[1]) == "joined"
    return ticket.member_id


def sends(ws: Workspace, member_id: str, kind: str = "playbook") -> list[Any]:
    with ws.engine.connect() as conn:
        return conn.execute(select(deliveries).where(deliveries.c.member_id == member_id,
                                                     deliveries.c.kind == kind)).all()


def dms(ws: Workspace, user: str) -> list[str]:
    return [m["text"] for m in ws.sandbox.messages(dm_user_id=user)]


def test_marketing_dms_go_only_with_consent_and_carry_an_unsubscribe_link(any_workspace: Workspace) -> None:
    ws = any_workspace
    community(ws, "s2_warmup.yaml")
    yes = join(ws, "Zhang Wei", "13800138000", "u_yes", marketing=True)
    no = join(ws, "Li Na", "13900139000", "u_no", marketing=False)
    work_once(ws)
    [sent] = sends(ws, yes)
    assert sent.status == "sent" and sent.marketing
    coupon_dm = next(text for text in dms(ws, "u_yes") if "送你一张新人券" in text)
    assert "/unsubscribe" in coupon_dm and "退订" in coupon_dm
    [skipped] = sends(ws, no)
    assert skipped.status == "skipped" and "no marketing consent" in skipped.error and skipped.body is None
    assert not any("送你一张新人券" in text for text in dms(ws, "u_no"))  # only the welcome reached them
    assert outbox.dead_sends(ws) == []  # skipped is not a dead letter


def test_the_stop_word_withdraws_consent_records_it_and_confirms_privately(workspace: Workspace) -> None:
    ws = workspace
    community(ws)
    member = join(ws, "Zhang Wei", "13800138000", "u1", marketing=True)
    with ws.engine.begin() as conn:  # queued before the member says stop
        outbox.record(ws, conn, outbox.Message(key="promo-1", kind="playbook", platform="sandbox", target="u1",
                                               text="Sale!", private=True, member_id=member, marketing=True))
    ws.sandbox.say("u1", "退订", CHAT)
    with ws.engine.connect() as conn:
        assert consents_in_force(conn, member) == {"profile": True, "marketing": False}
        [event] = conn.execute(select(events).where(events.c.type == "consent_changed")).all()
    assert event.member_id == member and event.properties == {"purpose": "marketing", "granted": False,
                                                              "source": "keyword"}
    assert any("已为你退订营销消息" in text for text in dms(ws, "u1"))
    assert outbox.deliver(ws, ["promo-1"]).skipped == 1
    assert "Sale!" not in dms(ws, "u1")


def test_a_member_added_by_a_friend_is_asked_in_the_welcome_and_gets_marketing_only_after_agreeing(
        workspace: Workspace) -> None:
    ws = workspace
    clock = community(ws, "s2_warmup.yaml")
    user = ws.sandbox.add_friend(CHAT, "Wang Fang")
    [welcome] = [text for text in dms(ws, user) if "欢迎你" in text]
    assert "/consent" in welcome and "订阅" in welcome
    work_once(ws)
    assert [row.status for row in sends(ws, find_by_user(ws, user))] == ["skipped"]
    ws.sandbox.say(user, "订阅")  # privately to the bot
    assert any("谢谢" in text for text in dms(ws, user))
    clock[0] = NOON + timedelta(days=1, hours=2)  # day 1, 10:00 local: the next warm-up DM
    work_once(ws)
    statuses = [row.status for row in sends(ws, find_by_user(ws, user))]
    assert statuses == ["skipped", "sent"]
    assert "/unsubscribe" in dms(ws, user)[0]


def find_by_user(ws: Workspace, user: str) -> str:
    from qunflow.services.join import member_of_user

    with ws.engine.connect() as conn:
        found = member_of_user(conn, "sandbox", user)
    assert found is not None
    return found


def test_group_replies_and_staff_alerts_carry_no_profile_field(any_workspace: Workspace) -> None:
    ws = any_workspace
    ws.settings.staff_webhook = "http://127.0.0.1:9/hook"  # nothing listens: the alert stays in its outbox
    community(ws, "keyword_rules.yaml")
    member = join(ws, "Zhang Wei", "13800138000", "u1", marketing=False)
    ws.sandbox.say("u1", "我要退款!", CHAT)
    # (the welcome menu greets the platform's display name, which the group sees anyway; not a profile field)
    replies = [m["text"] for m in ws.sandbox.messages(chat_id=CHAT) if m["sender"] == "bot" and "入群" not in m["text"]]
    assert any("顾问会尽快私信你" in text for text in replies)
    assert not any("Zhang Wei" in text for text in replies)
    with ws.engine.connect() as conn:
        [title] = conn.execute(select(inbox.c.title)).scalars()
        [payload] = conn.execute(select(staff_alerts.c.payload)).scalars()
    assert "Zhang Wei" not in title and member in title and f"/console/members/{member}" in title
    assert "Zhang Wei" not in str(payload) and payload["member_id"] == member


def test_a_stored_rule_from_before_the_check_still_cannot_post_a_name_to_the_group(workspace: Workspace) -> None:
    ws = workspace
    community(ws)
    old = RuleSet.model_validate({"kind": "keyword_rules", "key": "old", "rules": [
        {"id": "r", "keywords": ["退款"], "reply": "收到,{{ name }}", "alert": {"zh": "{{ name }} 要退款",
                                                                          "en": "{{ name }} wants a refund"}}]})
    with ws.engine.begin() as conn:  # as an older qunflow applied it, without today's checks
        apply_rule_sets(conn, [RuleSetSource(old, "old", "old.yaml")], ws.clock())
    join(ws, "Zhang Wei", "13800138000", "u1", marketing=False)
    ws.sandbox.say("u1", "退款", CHAT)
    assert not any("Zhang Wei" in m["text"] for m in ws.sandbox.messages(chat_id=CHAT)
                   if m["sender"] == "bot" and "入群" not in m["text"])
    with ws.engine.connect() as conn:
        [title] = conn.execute(select(inbox.c.title)).scalars()
    assert "Zhang Wei" not in title and "private profile data" in title


def test_export_finds_the_member_by_phone_and_holds_everything_decrypted(workspace: Workspace) -> None:
    ws = workspace
    community(ws, "s2_warmup.yaml")
    member = join(ws, "Zhang Wei", "138-0013-8000", "u1", marketing=True)
    work_once(ws)
    assert find_member(ws, phone="+86 13800138000") == member
    document = export_member(ws, member)
    assert document["member"]["profile"] == {"name": "Zhang Wei", "phone": "138-0013-8000"}
    assert document["consents_in_force"] == {"profile": True, "marketing": True}
    assert {s["kind"] for s in document["sends"]} >= {"welcome_dm", "playbook"}
    assert any("Zhang Wei" in (s["text"] or "") for s in document["sends"])
    assert [c["name"] for c in document["coupons"]] == ["welcome"] and document["coupons"][0]["ledger"]
    assert {e["type"] for e in document["events"]} >= {"gate_submitted", "joined", "welcome_sent"}
    assert document["platform_records"]["sandbox"][0]["user"][0]["display_name"] == "Zhang Wei"
    with pytest.raises(NotFound, match="no member has this phone number"):
        find_member(ws, phone="13700000000")


def test_erasure_on_either_database_leaves_only_pseudonymous_records(any_workspace: Workspace) -> None:
    ws = any_workspace
    community(ws, "s2_warmup.yaml", "keyword_rules.yaml")
    member = join(ws, "Zhang Wei", "13800138000", "u1", marketing=True)
    other = join(ws, "Li Na", "13900139000", "u2", marketing=False)
    ws.sandbox.say("u1", "退款", CHAT)
    work_once(ws)
    report = erase_member(ws, member, actor="cli")
    assert report.counts["identities_deleted"] == 1 and report.counts["events"] >= 5
    with pytest.raises(NotFound, match="was erased on"):
        find_member(ws, member)
    with ws.engine.connect() as conn:
        rows = conn.execute(select(members.c.id, members.c.profile)).all()
        bodies = list(conn.execute(select(deliveries.c.body).where(deliveries.c.body.is_not(None))).scalars())
        [record] = conn.execute(select(erasures)).all()
        anon = [r.id for r in rows if r.id.startswith("anon_")]
    assert len(anon) == 1 and member not in [r.id for r in rows]
    profiles = [unseal(ws, r.profile) for r in rows]
    assert {"name": "Li Na", "phone": "13900139000"} in profiles
    texts = [ws.fernet.decrypt(body).decode() for body in bodies]
    assert not any("Zhang Wei" in text or "13800138000" in text for text in texts + [str(p) for p in profiles])
    assert any("Li Na" in text for text in texts)
    assert member not in str(record.summary) and record.actor == "cli"
    assert find_member(ws, other) == other


@pytest.mark.parametrize("engine", ["duckdb", "duckdb-by-member", "chdb", "clickhouse"])
def test_erasure_rewrites_the_analytics_store_and_keeps_the_metrics(request: pytest.FixtureRequest,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    workspace: Workspace, engine: str) -> None:
    """duckdb-by-member: the store keeps its copy of the events ordered by member (analytics/by_member.py, a big
    store's), which must follow the rewrite too."""
    from qunflow.analytics import by_member, facts_rules
    from qunflow.analytics.engines import open_engine
    from qunflow.analytics.shipper import ship
    from qunflow.services.ingest import ingest_batch
    from qunflow.services.metrics import metrics_report

    if engine == "duckdb-by-member":
        monkeypatch.setattr(facts_rules, "BY_MEMBER_MIN_EVENTS", 0)
        engine = "duckdb"
    elif engine != "duckdb":
        pytest.importorskip("chdb")
    ws = workspace
    ws.settings.analytics_engine = engine
    if engine == "clickhouse":
        use_clickhouse(ws, request.getfixturevalue("clickhouse_server").fresh_url())
    community(ws, "s2_warmup.yaml")
    member = join(ws, "Zhang Wei", "13800138000", "u1", marketing=True)
    join(ws, "Li Na", "13900139000", "u2", marketing=False)
    work_once(ws)
    ingest_batch(ws.engine, [{"event_id": "o1", "type": "order", "ts": "2026-03-02T13:00:00+08:00", "member_id": member,
                              "amount": "99", "properties": {"buyer_phone": "13800138000", "tier": "newbie"}},
                             {"event_id": "l1", "type": "landing_view", "ts": "2026-03-02T11:00:00+08:00",
                              "member_id": member, "channel": "ads"}])
    ship(ws)
    period = {"start": NOON.date(), "end": NOON.date(), "as_of": NOON.date() + timedelta(days=40)}
    before = metrics_report(ws, **period)
    report = erase_member(ws, member, actor="cli")
    assert report.counts["analytics_events"] >= 5
    with open_engine(ws) as opened:
        _names, rows = opened.query("SELECT member_id, event_id, properties FROM events ORDER BY seq", {})
    assert not any(member in str(row) or "13800138000" in str(row) for row in rows)
    anon = {row[0] for row in rows if str(row[0]).startswith("anon_")}
    assert len(anon) == 1
    order = next(row for row in rows if row[1] == "o1")
    assert json.loads(order[2]) == {"tier": "newbie"}  # the phone is gone, the tier the metrics read stays
    assert metrics_report(ws, **period) == before
    # The per-member facts followed the rewrite: as if built from the erased log.
    landings: list[Any] = []
    days: list[Any] = []  # the member days
    with open_engine(ws) as opened:
        if engine == "duckdb":
            from qunflow.analytics.facts_duckdb import _rebuild, _rebuild_landings

            kept = opened.conn.execute("SELECT * FROM member_facts ORDER BY member_id").fetchall()  # type: ignore[attr-defined]
            _rebuild(opened.conn, ws.settings, "facts_check", temporary=True)  # type: ignore[attr-defined]
            assert kept == opened.conn.execute(  # type: ignore[attr-defined]
                "SELECT * FROM facts_check ORDER BY member_id").fetchall()
            days[:] = opened.conn.execute("SELECT * FROM member_days ORDER BY member_id").fetchall()  # type: ignore[attr-defined]
            assert days == opened.conn.execute(  # type: ignore[attr-defined]
                "SELECT * FROM facts_check_days ORDER BY member_id").fetchall()
            landings = [opened.conn.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()  # type: ignore[attr-defined]
                        for t in ("landing_links", "landing_facts")]
            conn = opened.conn  # type: ignore[attr-defined]
            top = by_member.upto(conn)
            if facts_rules.BY_MEMBER_MIN_EVENTS == 0:  # the copy holds the rewritten rows, no old id
                assert top is not None
                columns = by_member.COLUMNS
                assert conn.execute(f"SELECT {columns} FROM {by_member.TABLE} ORDER BY seq").fetchall() == \
                    conn.execute(f"SELECT {columns} FROM events WHERE member_id IS NOT NULL AND seq <= {top} "
                                 "ORDER BY seq").fetchall()
            else:
                assert top is None
            _rebuild_landings(opened.conn, ws.settings, "landings_check", "links_check", temporary=True)  # type: ignore[attr-defined]
            assert landings == [opened.conn.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()  # type: ignore[attr-defined]
                                for t in ("links_check", "landings_check")]
        else:  # and no stored version of a facts row or landing row names the member any more
            from qunflow.analytics import facts_clickhouse, facts_clickhouse_sql

            kept = opened.query("SELECT * FROM member_facts ORDER BY member_id", {})[1]
            facts_clickhouse.rebuild(opened, ws.settings, 1, "facts_check")
            assert kept == opened.query(f"SELECT {', '.join(facts_clickhouse_sql.FACT_NAMES)} FROM facts_check "
                                        "ORDER BY member_id", {})[1]
            landings = [opened.query(f"SELECT * FROM {t} ORDER BY ALL", {})[1]
                        for t in ("landing_links", "landing_facts")]
            facts_clickhouse.rebuild_landings(opened, ws.settings, 1, "landings_check", "links_check")
            assert landings == [opened.query(f"SELECT {columns} FROM {t} FINAL WHERE {where} ORDER BY ALL", {})[1]
                                for columns, t, where in (
                                    ("visitor_id, member_id", "links_check", "true"),
                                    (", ".join(facts_clickhouse_sql.LANDING_NAMES), "landings_check", "NOT deleted"))]
            days[:] = opened.query("SELECT * FROM member_days ORDER BY member_id", {})[1]
            assert days == opened.query("SELECT member_id, spans, active_days FROM facts_check_days FINAL "
                                        "WHERE NOT deleted ORDER BY member_id", {})[1]
            for table in ("member_facts_log", "member_days_log", "landing_links_log", "landing_facts_log"):
                assert not any(member in str(row) for row in opened.query(f"SELECT * FROM {table}", {})[1])
    assert len(kept) == 2 and len(landings[1]) == 1  # the member's landing view, under the pseudonym
    assert len(days) == 2 and any(str(row[0]).startswith("anon_") for row in days)  # the member's days too
    assert not any(member in str(row) for row in kept + landings + days)
    if engine == "clickhouse":
        return  # the server keeps its files to itself: it deleted the rows by a synchronous mutation
    ws_file = Path(ws.settings.analytics_file)
    files = [ws_file] if ws_file.is_file() else [p for p in ws_file.rglob("*") if p.is_file()]
    assert files and not any(b"13800138000" in p.read_bytes() for p in files)


def test_an_erasure_the_analytics_store_missed_is_finished_by_running_it_again(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    from qunflow.analytics import store
    from qunflow.analytics.shipper import ship
    from qunflow.errors import Unavailable
    from qunflow.services.erasure import resume_erasure, unfinished

    ws = workspace
    community(ws)
    member = join(ws, "Zhang Wei", "13800138000", "u1", marketing=False)
    ship(ws)
    monkeypatch.setattr(store, "LOCK_WAIT_SECONDS", 0.5)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(60)", ws.settings.analytics_file],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(Unavailable, match="run `qunflow member erase .* again to finish"):
            erase_member(ws, member, actor="cli")
    finally:
        holder.kill()
        holder.wait()
    assert unfinished(ws, member)
    with ws.engine.connect() as conn:
        [summary] = conn.execute(select(erasures.c.summary)).scalars()
    assert "Zhang Wei" not in json.dumps(summary) and member not in json.dumps(summary)  # encrypted
    report = resume_erasure(ws, member)
    assert report.counts["analytics_events"] >= 2 and report.counts["sandbox_messages_deleted"] >= 1
    assert not unfinished(ws, member)
    assert b"Zhang Wei" not in Path(ws.home / "sandbox.db").read_bytes()
