"""An erasure leaves no byte of the person in the workspace's files, without rebuilding the SQLite files each
time (store/secure_delete.py): every connection zeroes what it frees, a file written so from the start is
marked and only its WAL is emptied; a file an older qunflow wrote is rebuilt once. Also the one read of the
event log that finds every event naming the member."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, event, select

from qunflow.services.erasure import erase_member
from qunflow.services.ingest import ingest_batch
from qunflow.services.privacy import seal, store_profile
from qunflow.store.secure_delete import MARK, is_marked
from qunflow.store.tables import automation_state, events, members
from qunflow.workspace import Workspace
from tests.integration.test_privacy_rights import CHAT, community, join


def files_holding(home: Path, needle: bytes) -> list[str]:
    return [p.name for p in home.rglob("*") if p.is_file() and needle in p.read_bytes()]


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements run on `engine` inside the block."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def profile_of(ws: Workspace, member: str) -> bytes:
    with ws.engine.connect() as conn:
        return bytes(conn.execute(select(members.c.profile).where(members.c.id == member)).scalar_one())


def test_no_old_version_of_a_rewritten_profile_stays_in_any_file_and_nothing_is_rebuilt(workspace: Workspace) -> None:
    ws = workspace
    community(ws)
    member = join(ws, "Zhang Wei", "13800138000", "u1", marketing=True)
    other = join(ws, "Li Na", "13900139000", "u2", marketing=False)
    versions = [profile_of(ws, member)]
    # Each edit a size of its own: SQLite writes the row elsewhere in its page and frees the old cell.
    for name in ("Zhang Wei Jr", "Zhang Wei (VIP member)", "Zhang W."):
        with ws.engine.begin() as conn:
            store_profile(ws, conn, member, {"name": name, "phone": "13800138000"})
        versions.append(profile_of(ws, member))
    with ws.engine.connect() as conn:
        assert is_marked(conn)  # a file this version made
    with statements(ws.engine) as seen:
        erase_member(ws, member, actor="cli")
    assert not [s for s in seen if s.upper().startswith("VACUUM")]
    # The profile is encrypted with the workspace's key, which lies in the workspace: an old version of it
    # left in free space could be read back. None is left, nor the name or phone in clear.
    for needle in [*versions, b"Zhang Wei", b"13800138000"]:
        assert files_holding(ws.home, needle) == [], needle
    assert files_holding(ws.home, profile_of(ws, other)) == ["qunflow.db"]  # the grep finds what is there


def test_a_file_an_older_qunflow_wrote_is_rebuilt_by_the_first_erasure_only(workspace: Workspace) -> None:
    ws = workspace
    community(ws)
    member = join(ws, "Zhang Wei", "13800138000", "u1", marketing=True)
    other = join(ws, "Li Na", "13900139000", "u2", marketing=False)
    with ws.engine.begin() as conn:
        conn.execute(delete(automation_state).where(automation_state.c.name == MARK))
    # An older qunflow, on a SQLite built without secure delete, stored a long profile, then a short one: the
    # long one's overflow pages went to the freelist as they were.
    long = seal(ws, {"name": "Zhang Wei", "phone": "13800138000", "note": "first visit, asked about refunds " * 600})
    pieces = [long[i:i + 32] for i in range(0, len(long) - 32, 1000)]  # a piece within one page, most of them
    older = sqlite3.connect(ws.home / "qunflow.db")
    older.execute("PRAGMA secure_delete=OFF")
    for profile in (long, seal(ws, {"name": "Zhang Wei"})):
        with older:
            older.execute("UPDATE members SET profile = ? WHERE id = ?", (profile, member))
    older.close()
    assert any(files_holding(ws.home, piece) for piece in pieces)
    with statements(ws.engine) as seen:
        erase_member(ws, member, actor="cli")
    assert not any(files_holding(ws.home, piece) for piece in pieces)
    assert [s for s in seen if s.upper().startswith("VACUUM")] == ["VACUUM"]
    with ws.engine.connect() as conn:
        assert is_marked(conn)
    with statements(ws.engine) as seen:
        erase_member(ws, other, actor="cli")
    assert not [s for s in seen if s.upper().startswith("VACUUM")]
    assert files_holding(ws.home, b"13900139000") == []


def test_a_sandbox_file_is_rebuilt_once_when_an_older_qunflow_wrote_it(workspace: Workspace) -> None:
    ws = workspace
    community(ws)
    join(ws, "Zhang Wei", "13800138000", "u1", marketing=False)
    ws.sandbox.say("u1", "hello from Zhang Wei", CHAT)
    sandbox = ws.sandbox.engine
    with sandbox.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA user_version").scalar() == 1  # made by this version
    older = sqlite3.connect(ws.home / "sandbox.db")
    older.execute("PRAGMA secure_delete=OFF")
    with older:
        older.execute("PRAGMA user_version=0")
        # a long name's overflow pages go to the freelist as they were
        older.execute("UPDATE sandbox_users SET display_name = ? WHERE id = 'u1'", ("Zhang Wei the elder " * 600,))
        older.execute("UPDATE sandbox_users SET display_name = 'Zhang Wei' WHERE id = 'u1'")
    older.close()
    with statements(sandbox) as seen:
        ws.sandbox.forget_user("u1", ["Zhang Wei"])
    assert files_holding(ws.home, b"Zhang Wei") == []
    assert [s for s in seen if s.upper().startswith("VACUUM")] == ["VACUUM"]
    with statements(sandbox) as seen:
        ws.sandbox.forget_user("u2", ["Li Na"])
    assert not [s for s in seen if s.upper().startswith("VACUUM")]


def test_every_event_naming_the_member_is_rewritten_in_one_read_of_the_event_log(workspace: Workspace) -> None:
    ws = workspace
    community(ws)
    member = join(ws, "Zhang Wei", "13800138000", "u1", marketing=False)
    at = "2026-03-02T13:00:00+08:00"
    ingest_batch(ws.engine, [
        {"event_id": "own", "type": "order", "ts": at, "member_id": member, "amount": "9",
         "properties": {"buyer_phone": "13800138000", "tier": "newbie", "coupon": f"welcome:{member}"}},
        {"event_id": "referred", "type": "joined", "ts": at, "member_id": "m_friend", "referrer_id": member},
        {"event_id": "reward", "type": "reward_granted", "ts": at, "member_id": "m_friend",
         "properties": {"invitee": member, "sku": "A1"}},
        {"event_id": "unrelated", "type": "message", "ts": at, "member_id": "m_friend", "properties": {"sku": "B2"}}])
    with ws.engine.connect() as conn:
        own = conn.execute(select(events.c.seq).where(events.c.member_id == member)).all()
    with statements(ws.engine) as seen:
        report = erase_member(ws, member, actor="cli")
    assert len([s for s in seen if s.startswith("SELECT") and " FROM events" in s]) == 1
    with ws.engine.connect() as conn:
        rows = {r.event_id: r for r in conn.execute(select(events).where(events.c.event_id.in_(
            ["own", "referred", "reward", "unrelated"])))}
    anon = rows["own"].member_id
    assert anon.startswith("anon_")
    assert rows["own"].properties == {"tier": "newbie", "coupon": f"welcome:{anon}"}
    assert rows["referred"].referrer_id == anon and rows["referred"].member_id == "m_friend"
    assert rows["reward"].properties == {"invitee": anon, "sku": "A1"}
    assert rows["unrelated"].properties == {"sku": "B2"}
    # every own event, the referral, the reward's mention, and the own order's mention in what it keeps
    assert report.counts["events"] == len(own) + 3
