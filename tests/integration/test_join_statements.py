"""What a Telegram join asks the state database, pinned: SQLite's statements, PostgreSQL's round trips.

The member update Telegram sends after qunflow approved a join request echoes a join handled to the end: one
statement decides that (services/join_echo.py), on PostgreSQL one round trip (no BEGIN, no ROLLBACK), where the
handlers' own reads took nine. Whatever that statement says, the update does what the handlers would: a menu
batch not posted yet (under a welcome applied meanwhile too) and a member who left in between are still acted
on. The request itself reads nothing it wrote or read before in the same update (store/memo.py), and the
shared send limit of its welcome DM is one round trip, taken in the transaction that records the DM
(engine/limits.py). A join commits three times on Telegram (before the DM, before the approval, the handled
mark) and twice on WeCom (before the DM, the handled mark)."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, event, select
from sqlalchemy.exc import IntegrityError

from qunflow.connectors.base import JoinRequested, MemberJoined, MemberLeft, Update
from qunflow.errors import PlatformError
from qunflow.services import inbound
from qunflow.services.join import entry_invite
from qunflow.services.playbooks import apply_playbooks
from qunflow.store.eventlog import utcnow as utc_now
from qunflow.store.tables import deliveries, events, identities, inbound_updates
from qunflow.workspace import Workspace, open_workspace
from tests.e2e.test_telegram_chain import set_up
from tests.e2e.test_wecom_chain import cli, contact_way_of
from tests.fakes.telegram_server import FakeTelegram
from tests.fakes.wecom_server import FakeWeCom
from tests.integration.test_experiment_welcome import DOC as EXPERIMENT
from tests.integration.test_welcome_playbook import CHANGED, write


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@contextmanager
def sent(ws: Workspace, tmp_path: Path) -> Iterator[list[str]]:
    """What the state database was sent inside the block (filled in at its end): SQLite's statements (its
    trace), or PostgreSQL's protocol trace as libpq wrote it, one message a line."""
    statements: list[str] = []
    traced: list[Any] = []
    trace_file = tmp_path / "libpq.trace"
    seen: list[str] = []

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(statements.append)
        elif dbapi_connection not in traced:
            dbapi_connection.pgconn.trace(out.fileno())
            traced.append(dbapi_connection)

    with trace_file.open("w") as out:
        event.listen(ws.engine, "checkout", checkout)
        try:
            yield seen
        finally:
            event.remove(ws.engine, "checkout", checkout)
            for dbapi_connection in traced:
                dbapi_connection.pgconn.untrace()  # flushes libpq's trace
    seen.extend(statements if ws.engine.dialect.name == "sqlite" else trace_file.read_text().splitlines())


@contextmanager
def asked(ws: Workspace, tmp_path: Path) -> Iterator[list[int]]:
    """How many times the state database is asked inside the block (filled in at its end): SQLite's statements,
    or PostgreSQL's round trips as libpq made them (a ReadyForQuery answers each query, and each sync of the
    extended protocol)."""
    count: list[int] = []
    with sent(ws, tmp_path) as seen:
        yield count
    if ws.engine.dialect.name == "sqlite":
        count.append(len([s for s in seen if s.split()[0].upper() not in ("PRAGMA", "BEGIN", "COMMIT")]))
    else:
        count.append(sum(1 for line in seen if "\tReadyForQuery" in line))


@contextmanager
def committed(ws: Workspace, tmp_path: Path) -> Iterator[list[int]]:
    """How many COMMITs the state database got inside the block (filled in at its end). On PostgreSQL the
    synced commit an update ends with is a statement of its own in autocommit after its last COMMIT
    (store.postgres.FLUSH), not counted: it commits nothing of the update's."""
    count: list[int] = []
    with sent(ws, tmp_path) as seen:
        yield count
    if ws.engine.dialect.name == "sqlite":
        count.append(sum(1 for s in seen if s.split()[0].upper() == "COMMIT"))
    else:  # what this process sent (F), as a query or in a pipeline: "COMMIT", or "SET LOCAL ...; COMMIT"
        count.append(sum(1 for line in seen if "\tF\t" in line and re.search(r'\t(Query|Parse)\t.*COMMIT"', line)))


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
    # One menu batch, however long the test takes; never on a whole second, as the fake's update dates are (a
    # join an approval records at that very second would have the id of the join its chat_member update reports).
    start = utc_now().replace(second=0, microsecond=500_000)
    ws.clock = lambda: start  # type: ignore[method-assign]
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
    # SQLite: 32 statements before; PostgreSQL: 41 round trips before, of which the send limiter's 5 (then 2,
    # now 1: its upsert in the update's transaction, engine/limits.py; SQLite's limiter is in memory); then 29,
    # while each commit with held writes went in psycopg's pipeline, whose COMMIT and end got a ReadyForQuery
    # each (now one query: store.postgres.one_query); then 26, when the group, the member and what the label names
    # were read after whether the request was handled (now one read: services/join_request_read.py); then 22, while
    # the approval read whether the member it had just made was in the group (services/join.py _joined_already);
    # then 21, while the welcome read the welcome and the experiments in force itself (now in the first read); then
    # 19, while the approval read whether the member had an offered tier move apart from whether they were in;
    # PostgreSQL: 18, before the joined member's UPDATE, the handled mark and the DM's result went with their
    # COMMIT's one query, and the BEGIN of a transaction of such writes only with it too
    assert times == ([18] if ws.engine.dialect.name == "sqlite" else [14]), times


def test_a_telegram_join_commits_three_times(community: tuple[Workspace, str], telegram: FakeTelegram,
                                            tmp_path: Path) -> None:
    """The request (recorded with the welcome DM and its share of the send limit, then the DM's result before
    the approval, then the join with the handled mark) and its echo (one read)."""
    ws, link = community
    handle(ws, [request_and_approve(ws, telegram, link, "Alice")])  # the bot's bucket and the menu exist
    with committed(ws, tmp_path) as commits:
        handle(ws, [request_and_approve(ws, telegram, link, "Bob")])
    assert commits == [3]  # PostgreSQL: 4 before, the send limit's own transaction one of them


class InProcess(httpx.BaseTransport):
    """FakeWeCom's callback, handled in the calling thread as /hooks/wecom would handle it."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = inbound.receive(self.ws, "wecom", request.method, dict(request.url.params), dict(request.headers),
                                 request.read())
        return httpx.Response(200, content=answer.reply, headers={"content-type": answer.media_type})


def test_a_wecom_join_commits_twice(any_workspace: Workspace, tmp_path: Path) -> None:
    """A contact added through an entry point's contact way: recorded with the welcome DM and its share of the
    send limit, then the DM's result with the handled mark."""
    home = any_workspace.home
    with FakeWeCom(staff=("zhangsan",)) as wecom:
        chat = wecom.make_group("zhangsan", "新人群")
        for args in (("connect", "wecom", "--corp-id", wecom.corp_id, "--secret", wecom.secret, "--callback-token",
                      wecom.token, "--aes-key", wecom.aes_key, "--api-base", wecom.api_base),
                     ("group", "add", "newbie-1", "--tier", "newbie", "--platform", "wecom", "--external-id", chat),
                     ("channel", "add", "ads", "--kind", "ad"),
                     ("entry", "add", "wc-ads", "--channel", "ads", "--platform", "wecom")):
            assert cli(home, *args)[0] == 0, args
        ws = open_workspace(home)  # with the connection the CLI made
        entry_invite(ws, "wc-ads")
        config_id = contact_way_of(wecom, "wc-ads")
        wecom.callback_url = "http://127.0.0.1:9/hooks/wecom"  # nothing listens: handled in process
        wecom.callback_client = httpx.Client(transport=InProcess(ws))
        wecom.add_contact("wmALICE", "Alice", config_id)  # the bot's bucket exists
        with committed(ws, tmp_path) as commits:
            wecom.add_contact("wmBOB", "Bob", config_id)
        assert len(wecom.welcome_messages()) == 2
        ws.close()
    assert commits == [2]  # PostgreSQL: 3 before, the send limit's own transaction one of them


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


def test_a_join_request_handled_before_is_one_statement(community: tuple[Workspace, str], telegram: FakeTelegram,
                                                        tmp_path: Path) -> None:
    """The request's first read (services/join_request_read.py) says it was handled: its handlers do not run."""
    ws, link = community
    connector = ws.connector("telegram")
    assert telegram.open_link(telegram.person("Alice"), link) == "requested"
    [request] = handle(ws, connector.poll(0))
    with asked(ws, tmp_path) as times:
        handle(ws, [request])  # the platform delivers it again
    assert times == [1]
    assert len(telegram.calls("approveChatJoinRequest")) == 1 and len(telegram.sent()) == 1


def test_a_request_approved_and_recorded_but_not_marked_is_not_approved_again(community: tuple[Workspace, str],
                                                                             telegram: FakeTelegram) -> None:
    """Delivered again after a crash that lost its handled mark: the member is known now, so the approval reads
    whether they are in the group (a member the update itself makes is not: services/join.py _joined_already)."""
    ws, link = community
    connector = ws.connector("telegram")
    assert telegram.open_link(telegram.person("Alice"), link) == "requested"
    [request] = handle(ws, connector.poll(0))
    with ws.engine.begin() as conn:
        assert conn.execute(delete(inbound_updates).where(inbound_updates.c.key == request.key)).rowcount == 1
    handle(ws, [request])
    assert len(telegram.calls("approveChatJoinRequest")) == 1 and len(telegram.sent()) == 1
    assert joins_and_menus(ws)[0] == 1


def test_a_welcome_or_experiment_applied_between_two_requests_is_the_next_ones(community: tuple[Workspace, str],
                                                                               telegram: FakeTelegram,
                                                                               tmp_path: Path) -> None:
    """The request's first read brings the welcome and the experiments in force (services/join_request_read.py),
    and this process keeps what it parsed of them: each change applied is the next request's."""
    ws, link = community
    connector = ws.connector("telegram")

    def request(name: str) -> str:
        """The welcome DM the person got."""
        assert telegram.open_link(telegram.person(name), link) == "requested"
        handle(ws, connector.poll(0))
        return str(telegram.sent()[-1]["text"])

    assert "春季欢迎" not in request("Alice")
    apply_playbooks(ws, [write(tmp_path, "welcome.yaml", CHANGED.split("variants:")[0])])
    assert "春季欢迎" in request("Bob")
    apply_playbooks(ws, [write(tmp_path, "xp.yaml", EXPERIMENT + "shipped: short\n")])
    assert "先签到" in request("Carol") and "先签到" in request("Dave")
    apply_playbooks(ws, [write(tmp_path, "xp.yaml", EXPERIMENT + "shipped: control\n")])
    assert "春季欢迎" in request("Erin")


def requested(ws: Workspace, telegram: FakeTelegram, link: str) -> tuple[str, Update]:
    """Alice asks to join through the entry point's link: she and her join request, not handled yet."""
    person = telegram.person("Alice")
    assert telegram.open_link(person, link) == "requested"
    [request] = ws.connector("telegram").poll(0)
    return person, request


class Deliveries:
    """Deliveries of one update, each in a thread of its own (`start`), side by side as a platform that delivers
    again makes them; what a duplicate may meet (the identity the other made, an approval refused) is kept."""

    def __init__(self, ws: Workspace, update: Update, start: threading.Barrier | None = None) -> None:
        self.ws, self.update, self.barrier = ws, update, start
        self.failed: list[BaseException] = []

    def _deliver(self) -> None:
        if self.barrier is not None:
            self.barrier.wait()
        try:
            inbound.dispatch(self.ws, [self.update])
        except (IntegrityError, PlatformError) as exc:
            self.failed.append(exc)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._deliver)
        thread.start()
        return thread


def test_a_join_request_delivered_twice_at_once_joins_and_welcomes_once(community: tuple[Workspace, str],
                                                                       telegram: FakeTelegram) -> None:
    """Two deliveries of one request handled side by side: one makes the member, welcomes and approves; the
    other, by when it reads, fails on the identity the first made (both read "nobody known"), or finds the
    member and the welcome recorded and its approval refused as done already (the platform delivers it again,
    and then it was handled). Either way one member, one welcome, one join."""
    ws, link = community
    person, request = requested(ws, telegram, link)
    duplicates = Deliveries(ws, request, threading.Barrier(2))
    for thread in [duplicates.start() for _ in range(2)]:
        thread.join(30)
    assert len(duplicates.failed) <= 1
    handle(ws, [request])  # delivered again: nothing more
    with ws.engine.connect() as conn:
        assert len(conn.execute(select(identities.c.member_id).where(identities.c.external_user_id
                                                                     == str(person))).all()) == 1
        assert len(conn.execute(select(events.c.seq).where(events.c.type == "joined")).all()) == 1
        assert len(conn.execute(select(deliveries.c.id).where(deliveries.c.kind == "welcome_dm")).all()) == 1
    assert person in telegram.members(request.group_id)  # type: ignore[attr-defined]
    assert len(telegram.calls("approveChatJoinRequest")) <= 2 and len(telegram.sent()) == 1


def test_a_second_delivery_approves_only_once_the_first_ones_welcome_call_has_ended(
        community: tuple[Workspace, str], telegram: FakeTelegram) -> None:
    """An approval ends the private chat a Telegram join request opened, so the delivery that finds the welcome
    recorded by another one still calling sendMessage waits for that call to end before it approves: while the
    first delivery's sendMessage hangs, nothing is approved."""
    ws, link = community
    person, request = requested(ws, telegram, link)
    release = telegram.hold("sendMessage")  # the first delivery's call hangs, then is cut off (503)
    duplicates = Deliveries(ws, request)
    first = duplicates.start()
    for _ in range(500):  # until the first delivery is in its sendMessage call
        if telegram.calls("sendMessage"):
            break
        threading.Event().wait(0.01)
    assert telegram.calls("sendMessage")
    second = duplicates.start()
    second.join(0.5)
    assert second.is_alive() and telegram.calls("approveChatJoinRequest") == []  # waiting for the first's call
    release.set()
    first.join(30)
    second.join(30)
    assert not first.is_alive() and not second.is_alive() and len(duplicates.failed) <= 1
    assert person in telegram.members(request.group_id)  # type: ignore[attr-defined]
    [(_, _, called)] = telegram.calls("sendMessage")[:1]
    assert all(at > called for _, _, at in telegram.calls("approveChatJoinRequest"))


def test_a_second_delivery_waits_too_while_the_first_one_waits_to_send_the_welcome_again(
        community: tuple[Workspace, str], telegram: FakeTelegram) -> None:
    """The first delivery's sendMessage is told to retry after 1 s, which it waits for before it tries again (the
    welcome is then "retry" with its next try due): the second delivery waits for that try too, so the welcome
    goes out before any approval."""
    ws, link = community
    ws.clock = utc_now  # type: ignore[method-assign]  # moving: the retry comes due
    person, request = requested(ws, telegram, link)
    telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    duplicates = Deliveries(ws, request)

    def welcome_status() -> str | None:
        with ws.engine.connect() as conn:
            return conn.execute(select(deliveries.c.status).where(deliveries.c.kind == "welcome_dm")).scalar()

    first = duplicates.start()
    for _ in range(500):  # until the first delivery waits to try again
        if welcome_status() == "retry":
            break
        threading.Event().wait(0.01)
    assert welcome_status() == "retry"
    second = duplicates.start()
    first.join(30)
    second.join(30)
    assert not first.is_alive() and not second.is_alive() and len(duplicates.failed) <= 1
    assert len(telegram.sent()) == 1 and welcome_status() == "sent"
    assert person in telegram.members(request.group_id)  # type: ignore[attr-defined]
    sent_at = telegram.calls("sendMessage")[-1][2]
    assert all(at > sent_at for _, _, at in telegram.calls("approveChatJoinRequest"))


def test_a_join_requests_first_read_remembers_what_each_lookup_would_read(community: tuple[Workspace, str],
                                                                          telegram: FakeTelegram) -> None:
    """The rows services/join_request_read.py remembers for the handlers are those services/join.py's own
    lookups read: the same columns under the same names, the same values (a link's entry point, the group, the
    member; no ticket holder for a link that is no gate pass)."""
    from qunflow.services import join, join_request_read
    from qunflow.store.db import update_transaction
    from qunflow.store.memo import remembered, update_memo
    from qunflow.store.plain import read_first, read_scalar

    ws, link = community
    connector = ws.connector("telegram")
    assert telegram.open_link(telegram.person("Alice"), link) == "requested"
    [request] = handle(ws, connector.poll(0))  # Alice is a member now
    assert isinstance(request, JoinRequested) and request.invite_label
    label, missing = request.invite_label, object()
    with update_memo(), update_transaction(ws.engine) as tx:
        assert join_request_read.handled_before(tx, request)
        kept = {name: remembered(key, lambda: missing) for name, key in (
            ("group", join.group_key(request.platform, request.group_id)),
            ("member", join.member_key(request.platform, request.user_id)),
            ("holder", join.holder_key(label)), ("entry", ("entry", label)))}
    with ws.engine.connect() as conn:
        read = {"group": read_first(conn, join._GROUP_BY_CHAT, {"platform": request.platform,
                                                                "external_id": request.group_id}),
                "member": read_scalar(conn, join._MEMBER_OF_USER, {"platform": request.platform,
                                                                   "user_id": request.user_id}),
                "holder": read_first(conn, join._TICKET_HOLDER, {"label": label}),
                "entry": read_first(conn, join._ENTRY_BY_CODE, {"code": label})}
    assert read["group"] is not None and read["member"] and read["entry"] is not None and read["holder"] is None
    for name in ("group", "entry"):
        assert kept[name]._asdict() == read[name]._asdict(), name
    assert (kept["member"], kept["holder"]) == (read["member"], None)
