"""The sandbox behaves like a real platform: join requests, DM reachability, rate limits, signatures."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from qunflow.connectors.sandbox import SandboxConnector, SandboxPlatform, TokenBucket
from qunflow.engine import outbox
from qunflow.errors import PlatformError, RateLimited, Unauthorized
from qunflow.services.join import submit_gate
from qunflow.store.tables import deliveries, events
from qunflow.workspace import Workspace
from tests.integration.test_join_flow import FORM, setup_community

T0 = datetime(2026, 3, 1, 8, 0)


def test_a_join_request_on_a_tracked_link_is_approved_and_welcomed(workspace: Workspace) -> None:
    setup_community(workspace)
    ticket = submit_gate(workspace, "xhs-note-1", "v1", FORM)
    world = workspace.sandbox
    # The same tracked label, on a link that makes a join request (Telegram-style).
    token = world.create_invite(f"chat-{ticket.group}", _label(workspace, ticket.member_id), join_request=True)
    assert world.join("u1", "Li", token) == "requested"
    with workspace.engine.connect() as conn:
        joined = conn.execute(select(events).where(events.c.type == "joined")).one()
    assert joined.member_id == ticket.member_id and joined.properties["attribution"] == "invite_label"
    assert len(world.messages(dm_user_id="u1")) == 1


def _label(ws: Workspace, member_id: str) -> str:
    from qunflow.store.tables import members

    with ws.engine.connect() as conn:
        return str(conn.execute(select(members.c.join_ticket).where(members.c.id == member_id)).scalar_one())


def test_bot_cannot_message_a_stranger(tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = SandboxPlatform(tmp_path / "s.db")
    world.ensure_user("u1", "Stranger")
    with pytest.raises(PlatformError, match="can't initiate"):
        world.bot_send_dm("u1", "hi")


def test_group_posts_are_rate_limited_with_retry_after(tmp_path) -> None:  # type: ignore[no-untyped-def]
    now = [T0]
    world = SandboxPlatform(tmp_path / "s.db", clock=lambda: now[0])
    chat = world.create_chat("g")
    for _ in range(20):
        world.bot_post(chat, "hello")
    with pytest.raises(RateLimited) as caught:
        world.bot_post(chat, "one too many")
    assert 2.5 < caught.value.retry_after <= 3.0  # 20 per minute: the next token in 3 s
    now[0] = T0 + timedelta(seconds=caught.value.retry_after)
    world.bot_post(chat, "after waiting")


def test_token_bucket_refills_continuously() -> None:
    bucket = TokenBucket(rate=2, per=1.0)
    assert bucket.take(T0) == 0 and bucket.take(T0) == 0
    assert bucket.take(T0) == pytest.approx(0.5)
    assert bucket.take(T0 + timedelta(seconds=0.5)) == 0


def test_welcome_menu_is_posted_once_for_a_burst_of_joins(workspace: Workspace) -> None:
    setup_community(workspace)
    world = workspace.sandbox
    for n in range(5):
        ticket = submit_gate(workspace, "xhs-note-1", f"v{n}", {**FORM, "stage": "learning", "experience": "no"})
        world.join(f"u{n}", f"P{n}", ticket.invite_url.rsplit("/", 1)[1])
    with workspace.engine.connect() as conn:
        kinds = [r.kind for r in conn.execute(select(deliveries))]
    assert kinds.count("welcome_dm") == 5
    assert kinds.count("welcome_menu") <= 2  # at most one per minute window; the burst may straddle two


def test_updates_with_a_bad_signature_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    connector = SandboxConnector(SandboxPlatform(tmp_path / "s.db", secret="s3cret"), "http://x")
    with pytest.raises(Unauthorized):
        connector.parse_updates({"x-sandbox-signature": "nope"}, b'{"kind": "message"}')


def test_connector_exposes_platform_capabilities(workspace: Workspace) -> None:
    caps = workspace.connector("sandbox").capabilities
    assert caps.join_requests and caps.invite_label_max == 30 and caps.reports_invite_on_join


def test_refused_welcomes_are_recorded_and_shown_on_the_dashboard(workspace: Workspace) -> None:
    from datetime import date

    from qunflow.services.dashboard import build_dashboard

    setup_community(workspace)
    world = workspace.sandbox
    world.limits.bot_per_second = 1  # a tight quota: a burst of joins gets 429s
    for n in range(3):
        ticket = submit_gate(workspace, "xhs-note-1", f"v{n}", {**FORM, "stage": "learning", "experience": "no"})
        world.join(f"u{n}", f"P{n}", ticket.invite_url.rsplit("/", 1)[1])
    with workspace.engine.connect() as conn:
        failed = conn.execute(select(deliveries).where(deliveries.c.status == "retry")).all()
    assert failed and all("too many requests" in row.error for row in failed)
    assert len(world.messages(dm_user_id=None, limit=100)) < 3  # not every welcome went out
    today = date.today()
    assert build_dashboard(workspace, today, today, today).failed_sends == len(failed)
    # The refused welcomes wait out the platform's retry_after, then go (the worker delivers them). The group's
    # welcome menu shares the bot's quota of 1/s, so it may go before or after the last DM: wait for both.
    def waiting() -> int:
        with workspace.engine.connect() as conn:
            return len(conn.execute(select(deliveries.c.id).where(deliveries.c.status == "retry")).all())

    deadline = time.monotonic() + 10
    while waiting() and time.monotonic() < deadline:
        time.sleep(0.2)
        outbox.deliver(workspace)
    assert len(world.messages(dm_user_id=None, limit=100)) == 3
    assert build_dashboard(workspace, today, today, today).failed_sends == 0
