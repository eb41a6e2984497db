"""Another process holds the SQLite write lock longer than busy_timeout: a platform's webhook is still
answered 200 and its join recorded (retried with backoff), never a 500."""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time

import httpx
from sqlalchemy import func, select

from qunflow.connectors.sandbox import SIGNATURE_HEADER
from qunflow.services.join import submit_gate
from qunflow.store.tables import events, members
from qunflow.workspace import Workspace
from tests.conftest import LiveServer
from tests.integration.test_join_flow import FORM, setup_community

HELD = 12.0  # seconds; SQLite's busy_timeout is 10


def test_a_webhook_during_a_long_foreign_write_lock_is_answered_200_and_recorded(
        workspace: Workspace, live_server: LiveServer) -> None:
    ws = workspace
    setup_community(ws)
    ticket = submit_gate(ws, "xhs-note-1", "v1", FORM)
    with ws.engine.connect() as conn:
        label = conn.execute(select(members.c.join_ticket).where(members.c.id == ticket.member_id)).scalar_one()
    body = json.dumps({"kind": "member_joined", "update_id": secrets.token_hex(8), "at": ws.clock().isoformat(),
                       "chat_id": "chat-core-1", "user_id": "u1", "display_name": "Li Lei",
                       "invite_name": label}).encode()
    other = sqlite3.connect(str(ws.engine.url.database), timeout=1, isolation_level=None,
                            check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # e.g. a long import in another process
    release = threading.Timer(HELD, other.rollback)
    release.start()
    started = time.monotonic()
    try:
        response = httpx.post(f"{live_server.url}/hooks/sandbox", content=body, timeout=60,
                              headers={SIGNATURE_HEADER: ws.sandbox.sign(body), "content-type": "application/json"})
    finally:
        release.join()
        other.close()
    assert response.status_code == 200, response.text
    assert time.monotonic() - started >= HELD - 1  # it did wait for the lock
    with ws.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events).where(events.c.type == "joined")).scalar() == 1
