"""The row a send goes out with is the row the outbox stored: its INSERT returns the new id only, and the rest is
known from the values written (engine/outbox.py _insert_pending), so it must match what the database gives back."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from qunflow.engine import outbox
from qunflow.store.tables import deliveries
from qunflow.workspace import Workspace

T0 = datetime(2026, 3, 1, 8, 0, 0, 123456)


def test_a_pending_sends_row_is_the_stored_row(any_workspace: Workspace) -> None:
    ws = any_workspace
    ws.clock = lambda: T0
    message = outbox.Message(
        key="welcome_dm:m_1", kind="welcome_dm", platform="sandbox", target="u1", text="你好 {name}", private=True,
        member_id="m_1", context="chat-7", expires_at=T0 + timedelta(minutes=5),
        on_sent={"event_id": "ws-m_1", "type": "welcome_sent", "member_id": "m_1", "group": None,
                 "since": T0.isoformat(), "properties": {"welcome_version": 0, "variant": "default", "n": (1, 2.5)}})
    with ws.engine.begin() as conn:
        row = outbox._insert_pending(ws, conn, message)
        stored = conn.execute(select(deliveries).where(deliveries.c.id == row.id)).one()
        assert row._asdict() == dict(stored._mapping)
        assert outbox._insert_pending(ws, conn, message) is None  # a key recorded before: nothing new


def test_a_group_posts_row_is_the_stored_row(any_workspace: Workspace) -> None:
    ws = any_workspace
    ws.clock = lambda: T0
    message = outbox.Message(key="welcome_menu:g1:1", kind="welcome_menu", platform="sandbox", target="chat-1",
                             text="menu", private=False)
    with ws.engine.begin() as conn:
        row = outbox._insert_pending(ws, conn, message)
        stored = conn.execute(select(deliveries).where(deliveries.c.id == row.id)).one()
    assert row._asdict() == dict(stored._mapping)
    assert row.on_sent is None and row.expires_at is None and row.error is None
