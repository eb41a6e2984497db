"""What a Telegram join asks the state database, pinned: SQLite's statements, PostgreSQL's round trips.

The member update Telegram sends after qunflow approved a join request echoes a join handled to the end: one
statement decides that (services/join_echo.py), on PostgreSQL one round trip (no BEGIN, no ROLLBACK), where the
handlers' own reads took nine. Whatever that statement says, the update does what the handlers would: a menu
batch not posted yet (under a welcome applied meanwhile too) and a member who left in between are still acted
on. The request itself reads nothing it wrote or read before in the same update (store/memo.py), and the
shared send limit of its welcome DM is two round trips (engine/limits.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from qunflow.connectors.base import MemberJoined, MemberLeft, Update
from qunflow.services import inbound
from qunflow.services.join import entry_invite
from qunflow.services.playbooks import apply_playbooks
from qunflow.store.eventlog import utcnow as utc_now
from qunflow.store.tables import deliveries, events
from qunflow.workspace import Workspace, open_workspace
from tests.e2e.test_telegram_chain import set_up
from tests.fakes.telegram_server import FakeTelegram
from tests.integration.test_welcome_playbook import CHANGED, write


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@contextmanager
def asked(ws: Workspace, tmp_path: Path) -> Iterator[list[int]]:
    """How many times the state database is asked inside the block (filled in at its end): SQLite's statements
    (its trace), or PostgreSQL's round trips as libpq made them (its protocol trace: a ReadyForQuery answers
    each query, and each sync of the extended protocol)."""
    statements: list[str] = []
    traced: list[Any] = []
    trace_file = tmp_path / "libpq.trace"
    count: list[int] = []

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(statements.append)
        elif dbapi_connection not in traced:
            dbapi_connection.pgconn.trace(out.fileno())
            traced.append(dbapi_connection)

    with trace_file.open("w") as out:
        event.listen(ws.engine, "checkout", checkout)
        try:
            yield count
        finally:
            event.remove(ws.engine, "checkout", checkout)
            for dbapi_connection in traced:
                dbapi_connection.pgconn.untrace()  # flushes libpq's trace
    if ws.engine.dialect.name == "sqlite":
        count.append(len([s for s in statements if s.split()[0].upper() not in ("PRAGMA", "BEGIN", "COMMIT")]))
    else:
        count.append(sum(1 for line in trace_file.read_text().splitlines() if "\tReadyForQuery" in line))


def handle(ws: Workspace, updates: list[Update]) -> list[Update]:
    inbound.dispatch(ws, updates)
    return updates


def request_and_approve(ws: Workspace, telegram: FakeTelegram, link: str, name: str) -> MemberJoined:
    """A person asks to join through the entry point's link; qunflow welcomes and approves. Returns the member
    update Telegram sends about the approval (not handled yet)."""
    connector = ws.connector("telegram")
    person = telegram.person(name)
    assert telegram.open_link(person, link) == "requested"
    [request] = handle(ws, connector.poll(0))
    assert person in telegram.members(request.group_id)  # type: ignore[attr-defined]
    [echo] = connector.poll(0)  # the chat_member update; the service message parses to nothing
    assert isinstance(echo, MemberJoined) and echo.user_id == request.user_id  # type: ignore[attr-defined]
    return echo


@pytest.fixture
def community(any_workspace: Workspace, telegram: FakeTelegram) -> tuple[Workspace, str]:
    set_up(any_workspace.home, telegram, "polling")
    ws = open_workspace(any_workspace.home)  # with the connection the CLI made
    start = utc_now().replace(second=0, microsecond=0)
    ws.clock = lambda: start  # type: ignore[method-assign]  # one menu batch, however long the test takes
    return ws, entry_invite(ws, "tg-ads")[2].url


def joins_and_menus(ws: Workspace) -> tuple[int, int]:
    with ws.engine.connect() as conn:
        joined = len(conn.execute(select(events.c.seq).where(events.c.type == "joined")).all())
        menus = len(conn.execute(select(deliveries.c.id).where(deliveries.c.kind == "welcome_menu")).all())
    return joined, menus


def test_the_member_update_after_an_approval_is_one_statement(community: tuple[Workspace, str],
                                                                telegram: FakeTelegram, tmp_path: Path) -> None:
    ws, link = community
    first = request_and_approve(ws, telegram, link, "Alice")
    handle(ws, [first])  # the batch's first join: its menu is posted now
    assert joins_and_menus(ws) == (1, 1)
    echo = request_and_approve(ws, telegram, link, "Bob")
    with asked(ws, tmp_path) as times:
        handle(ws, [echo])
    assert times == [1]  # it was 9 statements (11 round trips on PostgreSQL)
    assert joins_and_menus(ws) == (2, 1)  # nothing more: the join was recorded at the approval


def test_a_join_request_reads_nothing_it_wrote_or_read_before(community: tuple[Workspace, str],
                                                              telegram: FakeTelegram, tmp_path: Path) -> None:
    """A new member's request: what the handlers made (the member, the seat held in the same INSERT, their ticket,
    no consent yet) and the entry point the link names (with its channel and campaign) are not read again, and
    the approval's in-group read leaves the welcome's event held for the commit (PostgreSQL)."""
    ws, link = community
    handle(ws, [request_and_approve(ws, telegram, link, "Alice")])
    connector = ws.connector("telegram")
    assert telegram.open_link(telegram.person("Bob"), link) == "requested"
    with asked(ws, tmp_path) as times:
        handle(ws, connector.poll(0))
    # SQLite: 32 statements before; PostgreSQL: 41 round trips before, of which the send limiter's 5 (now 2:
    # engine/limits.py; SQLite's limiter is in memory)
    assert times == ([26] if ws.engine.dialect.name == "sqlite" else [30]), times


def test_an_echo_in_a_new_menu_batch_still_posts_the_menu(community: tuple[Workspace, str],
                                                          telegram: FakeTelegram) -> None:
    ws, link = community
    handle(ws, [request_and_approve(ws, telegram, link, "Alice")])
    echo = request_and_approve(ws, telegram, link, "Bob")
    later = ws.clock() + timedelta(minutes=2)
    ws.clock = lambda: later  # type: ignore[method-assign]
    handle(ws, [echo])
    assert joins_and_menus(ws) == (2, 2)
    handle(ws, [echo])  # handled to the end: its mark
    assert joins_and_menus(ws) == (2, 2)


def test_an_echo_after_the_welcome_changed_its_menu_batches_posts_the_new_batchs_menu(
        community: tuple[Workspace, str], telegram: FakeTelegram, tmp_path: Path) -> None:
    """The echo's menu key comes from the welcome this process last read; applied meanwhile, another one is
    in force (its digest says so), so the handlers decide with it."""
    ws, link = community
    handle(ws, [request_and_approve(ws, telegram, link, "Alice")])
    echo = request_and_approve(ws, telegram, link, "Bob")
    apply_playbooks(ws, [write(tmp_path, "welcome.yaml", CHANGED)])  # menu_batch_seconds: 600
    handle(ws, [echo])
    assert joins_and_menus(ws) == (2, 2)


def test_a_member_update_for_someone_who_left_in_between_is_a_join(community: tuple[Workspace, str],
                                                                   telegram: FakeTelegram) -> None:
    ws, link = community
    echo = request_and_approve(ws, telegram, link, "Alice")
    handle(ws, [MemberLeft("telegram", ws.clock(), echo.group_id, echo.user_id, key="left-1")])
    handle(ws, [echo])  # not an echo: their last move was a leave
    assert joins_and_menus(ws) == (2, 1)


def test_a_handler_added_for_member_updates_runs_on_an_echo_too(community: tuple[Workspace, str],
                                                                 telegram: FakeTelegram,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-statement shortcut stands in for the three join handlers only (join_echo.STANDS_IN_FOR): with
    another handler registered, the echo goes through every handler."""
    ws, link = community
    handle(ws, [request_and_approve(ws, telegram, link, "Alice")])
    echo = request_and_approve(ws, telegram, link, "Bob")
    called: list[str] = []
    added = (*inbound.HANDLERS[MemberJoined], lambda _ws, item: called.append(item.user_id))
    monkeypatch.setitem(inbound.HANDLERS, MemberJoined, added)
    handle(ws, [echo])
    assert called == [echo.user_id]
    assert joins_and_menus(ws) == (2, 1)
