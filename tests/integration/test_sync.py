"""Outbound sync to a CRM (docs/sync.md): a real receiver on loopback checks every signature; retries,
Retry-After, dead letters and `sync retry`; nothing personal in a payload; nothing lost across a kill."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from qunflow.domain.sync import SyncTarget, verify
from qunflow.errors import NotFound
from qunflow.services.automation import work_once
from qunflow.services.consent import set_marketing
from qunflow.services.ingest import ingest_batch
from qunflow.services.join import submit_gate
from qunflow.services.sync import LEASE, list_deliveries, queue, retry, sync_round
from qunflow.store.tables import sync_deliveries
from qunflow.workspace import Workspace, open_workspace
from tests.integration.test_join_flow import FORM, invite_token, setup_community
from tests.webhook import Webhook

SECRET = "whsec-test-0123456789"
ENV = "QUNFLOW_TEST_CRM_SECRET"


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV, SECRET)
    return SECRET


def subscribe(ws: Workspace, url: str, events: list[str] | None = None, attempts: int = 8) -> None:
    target = SyncTarget(url=url, secret_env=ENV, attempts=attempts, workspace="acme",
                        events=events or ["member_joined", "order_attributed", "level_changed", "tier_moved",
                                          "consent_changed"])
    ws.settings = ws.settings.model_copy(update={"sync": {"crm": target}})


def check_signatures(hook: Webhook) -> None:
    """What a receiver does with every request: the signature over timestamp.body, with the shared secret."""
    assert hook.raw, "nothing was posted"
    for raw, headers in zip(hook.raw, hook.headers, strict=True):
        assert headers["x-qunflow-signature"].startswith("v1=")
        assert verify(SECRET, headers["x-qunflow-timestamp"], raw, headers["x-qunflow-signature"], time.time())
        assert headers["x-qunflow-event-id"] == json.loads(raw)["id"]
        assert not verify("another secret", headers["x-qunflow-timestamp"], raw, headers["x-qunflow-signature"],
                          time.time())


def join(ws: Workspace, visitor: str, user: str) -> str:
    ticket = submit_gate(ws, "xhs-note-1", visitor, {**FORM, "marketing": "on"})
    assert ws.sandbox.join(user, f"Wang {user}", invite_token(ticket.invite_url)) == "joined"
    return ticket.member_id


def event(kind: str, event_id: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": kind, "ts": "2026-03-02T09:00:00+08:00", **fields}


def test_each_subscribed_event_is_posted_signed_with_ids_only(workspace: Workspace, secret: str) -> None:
    setup_community(workspace)
    with Webhook() as hook:
        subscribe(workspace, hook.url)
        member = join(workspace, "v-1", "u-1")
        set_marketing(workspace, member, False, "console")
        ingest_batch(workspace.engine, [event("order", "shop-o-0", member_id=member, external_id="cust-77",
                                              amount="1", currency="CNY")], ws=workspace)  # links cust-77
        result = ingest_batch(workspace.engine, [
            event("order", "shop-o-1", external_id="cust-77", amount="199.00", currency="CNY",
                  properties={"order_id": "A-1", "address": "1 Secret Road", "phone": "13800138000"}),
            event("order", "shop-o-2", phone="13900000000", amount="5", currency="CNY"),  # unattributed: not sent
            event("level_changed", "lv-1", member_id=member, properties={"from": "new", "to": "active", "score": 4}),
            event("tier_moved", "tm-1", member_id=member,
                  properties={"from_tier": "newbie", "to_tier": "core", "to_group": "core-1",
                              "note": "Wang u-1 VIP"}),
            event("message", "msg-1", member_id=member, properties={"text": "hello"})], ws=workspace)
        assert result.stored == 5 and not result.errors
        work_once(workspace)
        check_signatures(hook)
        by_id = {body["id"]: body for body in hook.delivered}
        types = sorted(body["type"] for body in hook.delivered)
        assert types.count("joined") == 1 and "consent_changed" in types and "message" not in types
        assert "shop-o-2" not in by_id and {"shop-o-0", "shop-o-1", "lv-1", "tm-1"} <= set(by_id)
        order = by_id["shop-o-1"]
        assert order["member"] == {"id": member, "external_id": "cust-77"}
        assert order["properties"] == {"amount": "199.0000", "currency": "CNY", "order_id": "A-1"}
        assert order["workspace"] == "acme" and order["ts"] == "2026-03-02T01:00:00.000000Z"
        assert by_id["tm-1"]["properties"] == {"from_tier": "newbie", "to_tier": "core", "to_group": "core-1"}
        assert by_id["lv-1"]["properties"] == {"from": "new", "to": "active", "score": 4}
        joined = next(body for body in hook.delivered if body["type"] == "joined")
        assert set(joined["properties"]) <= {"channel", "campaign", "entry_point", "group", "referrer_id", "tier",
                                             "platform", "attribution"}
        assert joined["properties"]["channel"] == "xhs" and joined["properties"]["group"] == "core-1"
        everything = b"".join(hook.raw).decode()
        for personal in ("Li Lei", "Wang", "13800138000", "Secret Road", "hello", "VIP"):
            assert personal not in everything, personal
        posts = len(hook.raw)
        work_once(workspace)  # nothing new: nothing posted again
        assert len(hook.raw) == posts


def test_a_failing_receiver_gets_retries_with_backoff(any_workspace: Workspace, secret: str) -> None:
    ws = any_workspace
    clock = Clock(datetime(2026, 3, 2, 1, 0))
    ws.clock = clock
    with Webhook([500]) as hook:
        subscribe(ws, hook.url, ["level_changed"])
        ingest_batch(ws.engine, [event("level_changed", "lv-1", member_id="m_1",
                                              properties={"from": None, "to": "new"})])
        first = sync_round(ws)
        assert (first.queued, first.sent, first.failed) == (1, 0, 1) and hook.statuses == [500]
        [row] = list_deliveries(ws, "pending")
        assert (row["attempts"], row["last_status"], row["next_at"]) == (1, 500, clock.now + timedelta(seconds=30))
        clock.now += timedelta(seconds=29)
        assert sync_round(ws).sent == 0 and len(hook.raw) == 1
        clock.now += timedelta(seconds=2)
        assert sync_round(ws).sent == 1 and hook.statuses == [500, 200]
        check_signatures(hook)
        assert hook.headers[0]["x-qunflow-event-id"] == hook.headers[1]["x-qunflow-event-id"] == "lv-1"
        assert list_deliveries(ws, "sent")[0]["attempts"] == 2


def test_429_and_503_are_retried_after_their_retry_after(workspace: Workspace, secret: str) -> None:
    clock = Clock(datetime(2026, 3, 2, 1, 0))
    workspace.clock = clock
    with Webhook([(429, {"Retry-After": "120"}), (503, {"Retry-After": "5"})]) as hook:
        subscribe(workspace, hook.url, ["level_changed"])
        ingest_batch(workspace.engine, [event("level_changed", "lv-1", member_id="m_1", properties={"to": "new"})])
        sync_round(workspace)
        assert list_deliveries(workspace, "pending")[0]["next_at"] == clock.now + timedelta(seconds=120)
        clock.now += timedelta(seconds=60)  # the plain backoff (30 s) would have tried by now
        sync_round(workspace)
        assert hook.statuses == [429]
        clock.now += timedelta(seconds=61)
        sync_round(workspace)
        assert hook.statuses == [429, 503]
        clock.now += timedelta(seconds=6)
        sync_round(workspace)
        assert hook.statuses == [429, 503, 200]
        check_signatures(hook)


def test_dead_letter_after_the_last_attempt_then_sync_retry_delivers(any_workspace: Workspace, secret: str) -> None:
    ws = any_workspace
    clock = Clock(datetime(2026, 3, 2, 1, 0))
    ws.clock = clock
    with Webhook([500, 502, 500]) as hook:
        subscribe(ws, hook.url, ["level_changed"], attempts=3)
        ingest_batch(ws.engine, [event("level_changed", "lv-1", member_id="m_1", properties={"to": "new"})])
        for _ in range(3):
            sync_round(ws)
            clock.now += timedelta(hours=1)
        dead = list_deliveries(ws, "dead")
        assert [row["event_id"] for row in dead] == ["lv-1"] and dead[0]["attempts"] == 3
        assert "answered 500" in dead[0]["last_error"] and "127.0.0.1" in dead[0]["last_error"]
        ingest_batch(ws.engine, [event("level_changed", "lv-2", member_id="m_2", properties={"to": "new"})])
        sync_round(ws)
        assert [body["id"] for body in hook.delivered] == ["lv-2"]
        assert len(hook.raw) == 4  # a dead letter is not tried again by itself
        with pytest.raises(NotFound):
            retry(ws, [dead[0]["id"], 999])
        assert list_deliveries(ws, "dead")  # all or nothing
        assert retry(ws, [dead[0]["id"]]) == 1
        work_once(ws)
        assert [body["id"] for body in hook.delivered] == ["lv-2", "lv-1"]
        check_signatures(hook)
        assert not list_deliveries(ws, "dead")


def test_without_its_secret_nothing_is_posted_unsigned(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with Webhook() as hook:
        subscribe(workspace, hook.url, ["level_changed"], attempts=1)
        ingest_batch(workspace.engine, [event("level_changed", "lv-1", member_id="m_1", properties={"to": "new"})])
        done = sync_round(workspace)
        assert done.dead == 1 and not hook.raw
        assert ENV in list_deliveries(workspace, "dead")[0]["last_error"]


def test_a_kill_between_queue_and_delivery_loses_nothing(any_workspace: Workspace, secret: str) -> None:
    """Events recorded before a worker ran, deliveries queued but not posted, and a post cut off mid-call
    all reach the receiver once the next worker runs: at least once, with the event id to drop a repeat."""
    ws = any_workspace
    clock = Clock(datetime(2026, 3, 2, 1, 0))
    ws.clock = clock
    with Webhook() as hook:
        subscribe(ws, hook.url, ["level_changed"])
        ingest_batch(ws.engine, [event("level_changed", f"lv-{i}", member_id=f"m_{i}",
                                              properties={"to": "new"}) for i in range(3)])
        assert queue(ws) == 3  # the worker queued them, committed, and died before posting
        with ws.engine.begin() as conn:  # ... or died holding lv-0 mid-post, as a claim leaves it
            conn.execute(update(sync_deliveries).where(sync_deliveries.c.event_id == "lv-0")
                         .values(status="posting", next_at=clock.now + LEASE))
        ws.close()

        restarted = open_workspace(ws.home)
        restarted.settings = restarted.settings.model_copy(update={"sync": ws.settings.sync})
        restarted.clock = clock
        ingest_batch(restarted.engine, [event("level_changed", "lv-3", member_id="m_3", properties={"to": "new"})])
        work_once(restarted)
        assert sorted(body["id"] for body in hook.delivered) == ["lv-1", "lv-2", "lv-3"]
        clock.now += LEASE + timedelta(seconds=1)
        work_once(restarted)
        assert sorted(body["id"] for body in hook.delivered) == ["lv-0", "lv-1", "lv-2", "lv-3"]
        check_signatures(hook)
        with restarted.engine.connect() as conn:
            assert set(conn.execute(select(sync_deliveries.c.status)).scalars()) == {"sent"}
        restarted.close()


def test_a_subscription_without_backfill_starts_at_the_end_of_the_log(workspace: Workspace, secret: str) -> None:
    ingest_batch(workspace.engine, [event("level_changed", "old", member_id="m_1", properties={"to": "new"})])
    with Webhook() as hook:
        target = SyncTarget(url=hook.url, secret_env=ENV, events=["level_changed"], backfill=False)
        workspace.settings = workspace.settings.model_copy(update={"sync": {"crm": target}})
        sync_round(workspace)
        ingest_batch(workspace.engine, [event("level_changed", "new", member_id="m_1", properties={"to": "active"})])
        sync_round(workspace)
        assert [body["id"] for body in hook.delivered] == ["new"]


def test_sent_deliveries_are_pruned_after_a_week_and_dead_letters_are_kept(workspace: Workspace,
                                                                            secret: str) -> None:
    clock = Clock(datetime(2026, 3, 2, 1, 0))
    workspace.clock = clock
    with Webhook([500]) as hook:
        subscribe(workspace, hook.url, ["level_changed"], attempts=1)
        ingest_batch(workspace.engine, [event("level_changed", "lv-dead", member_id="m_1", properties={"to": "new"})])
        work_once(workspace)
        ingest_batch(workspace.engine, [event("level_changed", "lv-sent", member_id="m_1", properties={"to": "a"})])
        work_once(workspace)
        assert [len(list_deliveries(workspace, s)) for s in ("sent", "dead")] == [1, 1]
        clock.now += timedelta(days=8)
        work_once(workspace)
        assert [len(list_deliveries(workspace, s)) for s in ("sent", "dead")] == [0, 1]


def test_two_workers_on_postgres_post_each_event_once(pg_workspace: Workspace, secret: str) -> None:
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    from qunflow.services.sync import deliver

    with Webhook(delay=0.005) as hook:
        subscribe(pg_workspace, hook.url, ["level_changed"])
        ingest_batch(pg_workspace.engine, [event("level_changed", f"lv-{i}", member_id=f"m_{i}",
                                                 properties={"to": "new"}) for i in range(120)])
        assert queue(pg_workspace) == 120
        with ThreadPoolExecutor(2) as pool:
            rounds = list(pool.map(lambda _: deliver(pg_workspace, limit=20, budget=30.0).sent, range(12)))
        assert sum(rounds) == 120
        assert Counter(body["id"] for body in hook.delivered) == Counter(f"lv-{i}" for i in range(120))
