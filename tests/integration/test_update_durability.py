"""An inbound update's handlers share one transaction, committed before each platform call and at the end
with the handled mark (store.db.update_transaction). The commits before the first platform call wait for no
disk (store.db.sync_deferred); the last one is synced, and it makes theirs durable too.

Checked on the real databases: SQLite's `PRAGMA synchronous` as each commit runs, for a Telegram join request
handled end to end against the local Bot API server; PostgreSQL's commits by whether they return before or after
the log is on disk (pg_commit_level)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, event, text

from qunflow.connectors.base import MemberLeft
from qunflow.domain.events import Event
from qunflow.services import inbound
from qunflow.services.runtime import poll_once
from qunflow.store.db import commit_update, connection, sync_deferred, transaction, update_transaction
from qunflow.store.eventlog import append_events
from qunflow.workspace import Workspace, init_workspace
from tests.conftest import LiveServer
from tests.e2e.test_telegram_chain import set_public_url, set_up
from tests.fakes.telegram_server import FakeTelegram

SQLITE_LEVELS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def sync_level(conn: Connection) -> str:
    if conn.dialect.name == "sqlite":
        raw = conn.connection.driver_connection
        return SQLITE_LEVELS[int(raw.execute("PRAGMA synchronous").fetchone()[0])]  # type: ignore[union-attr]
    return pg_commit_level(conn)


def pg_commit_level(conn: Connection) -> str:
    """PostgreSQL: the level this connection's next commit runs at, as the server sees it at the COMMIT (a
    deferred trigger reads the setting; each commit carries its own level, which no session setting shows)."""
    for statement in note_commit_levels("pg_temp.qf_probe", temporary=True):
        conn.exec_driver_sql(statement)
    conn.commit()  # the probe's own tables, at whatever level
    # in a SELECT: a write sync_deferred does not note (the test checks the ones it notes)
    conn.exec_driver_sql("WITH probe AS (INSERT INTO pg_temp.qf_probe VALUES ('probe') RETURNING 1) "
                         "SELECT count(*) FROM probe")
    conn.commit()
    level = conn.exec_driver_sql("SELECT level FROM pg_temp.qf_commit_levels ORDER BY n DESC LIMIT 1").scalar()
    conn.commit()
    return "FULL" if level == "on" else "NORMAL"


def note_commit_levels(table: str, *, temporary: bool = False) -> list[str]:
    """SQL that makes each commit note its synchronous_commit in qf_commit_levels (key: the inserted row's
    `key`), for each row inserted into `table` (created when temporary): a deferred trigger runs at the
    COMMIT, after the SET LOCAL that travels with it."""
    schema = "pg_temp" if temporary else "public"
    return [
        *([f"CREATE TEMP TABLE IF NOT EXISTS {table.split('.')[-1]} (key text)"] if temporary else []),
        f"CREATE {'TEMP ' if temporary else ''}TABLE IF NOT EXISTS {schema}.qf_commit_levels "
        "(n serial, key text, level text)",
        f"CREATE OR REPLACE FUNCTION {schema}.qf_note_level() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"INSERT INTO {schema}.qf_commit_levels (key, level) "
        "VALUES (NEW.key, current_setting('synchronous_commit')); RETURN NULL; END $$",
        f"DROP TRIGGER IF EXISTS qf_note_level ON {table}",
        f"CREATE CONSTRAINT TRIGGER qf_note_level AFTER INSERT ON {table} DEFERRABLE INITIALLY DEFERRED "
        f"FOR EACH ROW EXECUTE FUNCTION {schema}.qf_note_level()",
    ]


def test_sync_deferred_commits_without_waiting_and_notes_writes(any_workspace: Workspace) -> None:
    ws = any_workspace
    with ws.engine.connect() as conn:
        assert sync_level(conn) == "FULL"  # the default: every commit waits for the disk
    with sync_deferred() as scope:
        with ws.engine.connect() as conn:
            assert sync_level(conn) == "NORMAL"
            conn.execute(text("SELECT count(*) FROM events")).scalar()
        assert not scope.wrote  # a read owes no synced commit
        with ws.engine.begin() as conn:  # a write through the driver's own cursor counts too
            append_events(conn, [Event(event_id="e1", type="landing_view", ts=datetime(2026, 12, 1, tzinfo=UTC),
                                       visitor_id="v1")])
        assert scope.wrote
    with ws.engine.connect() as conn:  # the pooled connection is synced again once the block is left
        assert sync_level(conn) == "FULL"
        assert conn.execute(text("SELECT count(*) FROM events WHERE event_id = 'e1'")).scalar() == 1


def test_an_updates_handlers_share_one_transaction(any_workspace: Workspace) -> None:
    ws = any_workspace
    ours = text("SELECT count(*) FROM events WHERE event_id LIKE 'u-%'")
    commits: list[int] = []
    event.listen(ws.engine, "commit", lambda _conn: commits.append(1))

    def write(n: int) -> None:
        with transaction(ws.engine) as conn:
            append_events(conn, [Event(event_id=f"u-{n}", type="landing_view", ts=datetime(2026, 12, 1, tzinfo=UTC),
                                       visitor_id="v1")])

    with pytest.raises(RuntimeError), update_transaction(ws.engine):
        write(1)
        with connection(ws.engine) as conn:
            assert conn.execute(ours).scalar() == 1  # the update's reads see its writes
        assert commits == []
        raise RuntimeError("a handler failed")
    with ws.engine.connect() as conn:
        assert conn.execute(ours).scalar() == 0  # rolled back: the platform delivers the update again
    with update_transaction(ws.engine) as tx:
        write(2)
        commit_update()  # before a platform call
        assert len(commits) == 1
        write(3)
        with ws.engine.connect() as conn:  # code on a connection of its own: the update's writes first commit
            assert conn.execute(ours).scalar() == 2
        assert len(commits) == 2
        write(4)
        tx.end(lambda _conn: write(5))  # the handled mark's place: with the last writes, one commit
    assert len(commits) == 3
    with ws.engine.connect() as conn:
        assert conn.execute(ours).scalar() == 4


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


class Commits:
    """Each commit on the engine: the update it belonged to and its sync level."""

    def __init__(self, ws: Workspace) -> None:
        self.seen: list[tuple[str, str]] = []
        self.update = "?"
        self.engine = ws.engine
        event.listen(ws.engine, "commit", self._commit)
        original = inbound.dispatch

        def dispatch(ws: Workspace, updates: Any) -> None:
            for item in updates:
                self.update = type(item).__name__
                try:
                    original(ws, [item])
                finally:
                    self.update = "outside"
        self._restore = original
        inbound.dispatch = dispatch

    def _commit(self, conn: Connection) -> None:
        self.seen.append((self.update, sync_level(conn)))

    def close(self) -> None:
        inbound.dispatch = self._restore
        event.remove(self.engine, "commit", self._commit)


def test_a_telegram_join_request_commits_three_times_the_last_synced(tmp_path: Path, telegram: FakeTelegram) -> None:
    ws = init_workspace(tmp_path / "ws")
    server = LiveServer(ws)
    set_public_url(ws.home, server.url)
    ws.settings.public_url = server.url
    with server:
        chat = set_up(ws.home, telegram, "polling")
        page = httpx.get(f"{server.url}/j/tg-ads")
        link = re.search(r'id="invite" href="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        connector = ws.connector("telegram")
        poll_once(ws, connector, 0)  # whatever came before the join
        seen = []
        for name in ("Alice", "Bob"):
            commits = Commits(ws)
            try:
                person = telegram.person(name)
                assert telegram.open_link(person, link) == "requested"
                while poll_once(ws, connector, 0):
                    pass
            finally:
                commits.close()
            assert person in telegram.members(chat)
            seen.append(commits.seen)
    assert len([m for m in telegram.sent() if m["private"]]) == 2
    for commits_of_join in seen:
        request = [level for update, level in commits_of_join if update == "JoinRequested"]
        # The request: the member and the welcome DM's send record, before the DM (waits for no disk); the
        # DM's result, before the approval; the approved join with the handled mark, which makes them all
        # durable. The two after the DM are synced: the update's next commit may be its last.
        assert request == ["NORMAL", "FULL", "FULL"], request
        after = [level for update, level in commits_of_join if update == "MemberJoined"]
        # The platform's member update that follows an approval: the group menu's send (the first join of
        # its batch only), recorded before the post, then its result with the mark.
        assert after in ([], ["NORMAL", "FULL"]), after
    # An update whose handlers write nothing (a stranger leaves) commits nothing, not even a mark (handling
    # a repeat again changes nothing).
    commits = Commits(ws)
    try:
        inbound.dispatch(ws, [MemberLeft("telegram", datetime(2026, 12, 1), chat, "999", key="900001")])
    finally:
        commits.close()
    assert commits.seen == []
    ws.close()
