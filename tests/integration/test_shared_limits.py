"""Send limits are shared by every worker on PostgreSQL: two workers together stay within one platform limit.

Measured: 200 queued DMs, two workers (each its own workspace object, limiter and connection pool, as two
processes would have) draining the outbox at once under a limit of 10 messages a second. The same run with
each worker's limiter in its own memory (what one process per worker had before) goes about twice as fast,
which is what the platform would have answered with 429s.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import create_engine, delete, func, insert, select
from sqlalchemy.exc import DBAPIError

from qunflow.engine import outbox
from qunflow.engine.limits import MemoryLimiter, SharedLimiter
from qunflow.store.db import commit_update, sync_deferred, transaction, update_transaction
from qunflow.store.eventlog import append_events
from qunflow.store.tables import deliveries, events, send_limits
from qunflow.workspace import Workspace, open_workspace
from tests.integration.test_eventlog import make
from tests.integration.test_update_durability import note_commit_levels

RATE = 10.0  # messages a second for the whole bot
SECONDS = 2.5


def _queue(ws: Workspace, chat_members: int) -> None:
    chat = ws.sandbox.create_chat("Limits")
    token = ws.sandbox.create_invite(chat, "limits", join_request=False)
    users = [f"u{i}" for i in range(chat_members)]
    for user in users:
        ws.sandbox.join(user, user, token)  # reachable by DM (nobody is a member in qunflow: no welcome)
    with ws.engine.begin() as conn:
        for n in range(200):
            outbox.record(ws, conn, outbox.Message(key=f"t:{n}", kind="test", platform="sandbox",
                                                   target=users[n % len(users)], text=f"message {n}", private=True))


def _drain(workers: list[Workspace]) -> list[datetime]:
    deadline = time.monotonic() + SECONDS

    def work(ws: Workspace) -> None:
        while time.monotonic() < deadline:
            outbox.deliver(ws)
            time.sleep(0.01)

    threads = [threading.Thread(target=work, args=(ws,)) for ws in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    with workers[0].engine.connect() as conn:
        return sorted(conn.execute(select(deliveries.c.sent_at).where(deliveries.c.status == "sent")).scalars())


def _workers(ws: Workspace, shared: bool) -> list[Workspace]:
    limits = {"sandbox": {"bot": (RATE, 1.0), "user": (100.0, 1.0)}}
    made = []
    for _ in range(2):
        worker = open_workspace(ws.home)
        worker.settings.rate_limits = limits
        worker.limiter = SharedLimiter(worker.engine, limits) if shared else MemoryLimiter(limits)  # type: ignore[misc]
        made.append(worker)
    return made


@pytest.mark.postgres
def test_two_workers_on_postgresql_together_stay_within_one_limit(pg_workspace: Workspace) -> None:
    _queue(pg_workspace, chat_members=40)
    assert isinstance(pg_workspace.limiter, SharedLimiter)  # what a PostgreSQL workspace chooses by itself
    workers = _workers(pg_workspace, shared=True)
    sent = _drain(workers)
    span = (sent[-1] - sent[0]).total_seconds()
    # A full bucket (RATE at once), then RATE a second: the most one bot may send in `span` seconds.
    assert len(sent) <= RATE + RATE * span + 1, (len(sent), span)
    assert len(sent) >= RATE * SECONDS * 0.6  # and the workers did keep sending at about the limit
    for worker in workers:
        worker.close()


@pytest.mark.postgres
def test_without_the_shared_limit_two_workers_send_twice_as_fast(pg_workspace: Workspace) -> None:
    _queue(pg_workspace, chat_members=40)
    workers = _workers(pg_workspace, shared=False)
    sent = _drain(workers)
    span = (sent[-1] - sent[0]).total_seconds()
    assert len(sent) > RATE + RATE * span + 1, (len(sent), span)  # what the shared limit prevents
    for worker in workers:
        worker.close()


def test_a_postgresql_workspace_shares_its_limits_and_sqlite_keeps_them_in_memory(workspace: Workspace) -> None:
    assert isinstance(workspace.limiter, MemoryLimiter)


LIMITS = {"sandbox": {"bot": (2.0, 1.0), "user": (100.0, 1.0)}}
NOW = datetime(2026, 12, 1, 12)


def test_a_bucket_whose_row_was_deleted_is_made_again(any_workspace: Workspace) -> None:
    """A bucket's row is made at its first send; one deleted meanwhile is made again, a full bucket."""
    limiter = SharedLimiter(any_workspace.engine, LIMITS)
    assert limiter.wait("sandbox", "u1", group=False, now=NOW) == 0
    assert limiter.wait("sandbox", "u2", group=False, now=NOW) == 0
    assert limiter.wait("sandbox", "u3", group=False, now=NOW) == pytest.approx(0.5)  # the bot's 2 are spent
    with any_workspace.engine.begin() as conn:
        conn.execute(delete(send_limits))
    assert limiter.wait("sandbox", "u3", group=False, now=NOW) == 0  # a full bucket again
    with any_workspace.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(send_limits)).scalar() == 2


@pytest.mark.postgres
def test_a_bucket_another_process_makes_meanwhile_is_read_under_its_lock(pg_workspace: Workspace) -> None:
    """Two processes send a first DM to the same user: the second one's row insert waits for the first's
    commit, then reads the bucket the first left (full), instead of taking a fresh one."""
    ws = pg_workspace
    limiter = SharedLimiter(ws.engine, {"sandbox": {"bot": (100.0, 1.0), "user": (1.0, 10.0)}})
    assert limiter.wait("sandbox", "u0", group=False, now=NOW) == 0  # the bot's row exists
    other = create_engine(ws.engine.url)
    waits: list[float] = []
    with other.begin() as conn:
        conn.execute(insert(send_limits).values(key="sandbox:user:u9", tat=NOW + timedelta(seconds=10)))
        sender = threading.Thread(target=lambda: waits.append(limiter.wait("sandbox", "u9", group=False, now=NOW)))
        sender.start()
        time.sleep(0.3)
        assert sender.is_alive(), "its insert waits for the other process's row"
    sender.join(10)
    other.dispose()
    assert waits == [pytest.approx(10.0)]


@pytest.mark.postgres
def test_a_bucket_taken_commits_at_the_level_of_its_caller(pg_workspace: Workspace) -> None:
    """Its COMMIT, sent as a statement in psycopg's pipeline, waits for the disk as any commit would: not inside
    an inbound update (sync_deferred), where the update's last commit makes it durable, but everywhere else."""
    ws = pg_workspace
    with ws.engine.begin() as conn:
        for statement in note_commit_levels("send_limits"):
            conn.exec_driver_sql(statement)
    limiter = SharedLimiter(ws.engine, LIMITS)
    assert limiter.wait("sandbox", "u1", group=False, now=NOW) == 0  # the bot's and u1's rows are made
    with sync_deferred() as scope:
        assert limiter.wait("sandbox", "u2", group=False, now=NOW) == 0
    assert scope.wrote  # a synced commit is owed for it
    with ws.engine.connect() as conn:
        levels = dict(conn.exec_driver_sql("SELECT key, level FROM qf_commit_levels").all())
    assert levels == {"sandbox": "on", "sandbox:user:u1": "on", "sandbox:user:u2": "off"}
    assert limiter.wait("sandbox", "u3", group=False, now=NOW) == pytest.approx(0.5)  # the bot's 2 are spent
    with ws.engine.connect() as conn:  # a bucket that says wait leaves its rows unlocked
        conn.exec_driver_sql("SELECT key FROM send_limits FOR UPDATE NOWAIT").all()


@pytest.mark.postgres
def test_inside_an_inbound_update_the_share_commits_with_the_send_that_took_it(pg_workspace: Workspace) -> None:
    """The welcome's path: the buckets are locked in the update's transaction, the one that records the send,
    and written and given back by its next commit (made before the platform call), not by one of their own."""
    ws = pg_workspace
    limiter = SharedLimiter(ws.engine, LIMITS)
    assert limiter.wait("sandbox", "u1", group=False, now=NOW) == 0  # the bot's row exists
    other = create_engine(ws.engine.url)
    with update_transaction(ws.engine):
        assert limiter.wait("sandbox", "u2", group=False, now=NOW) == 0
        with other.connect() as conn, pytest.raises(DBAPIError, match="could not obtain lock"):
            conn.exec_driver_sql("SELECT key FROM send_limits WHERE key = 'sandbox' FOR UPDATE NOWAIT").all()
        commit_update()
        with other.connect() as conn:  # given back, with both sends taken from the bot's 2
            conn.exec_driver_sql("SELECT key FROM send_limits FOR UPDATE NOWAIT").all()
        assert limiter.wait("sandbox", "u3", group=False, now=NOW) == pytest.approx(0.5)
        commit_update()  # a bucket that says wait is given back at the next commit too
        with other.connect() as conn:
            conn.exec_driver_sql("SELECT key FROM send_limits FOR UPDATE NOWAIT").all()
    other.dispose()


@pytest.mark.postgres
def test_two_workers_sending_inside_inbound_updates_together_stay_within_one_limit(pg_workspace: Workspace) -> None:
    """As the welcome sends: each send recorded, its share taken and both committed in the update's transaction."""
    _queue(pg_workspace, chat_members=40)  # the users are reachable; what it queues is not sent here
    workers = _workers(pg_workspace, shared=True)
    deadline = time.monotonic() + SECONDS

    def work(ws: Workspace, worker: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            with update_transaction(ws.engine):
                outbox.send(ws, outbox.Message(key=f"w{worker}:{n}", kind="test", platform="sandbox",
                                               target=f"u{n % 40}", text="hello", private=True))
                commit_update()  # the update's end: the send's result
            n += 1

    threads = [threading.Thread(target=work, args=(ws, i)) for i, ws in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    with pg_workspace.engine.connect() as conn:
        sent = sorted(conn.execute(select(deliveries.c.sent_at).where(deliveries.c.status == "sent")).scalars())
    span = (sent[-1] - sent[0]).total_seconds()
    # sent_at is stamped after the call, the share taken before it: one more for their jitter
    assert len(sent) <= RATE + RATE * span + 2, (len(sent), span)
    assert len(sent) >= RATE * SECONDS * 0.6
    for worker in workers:
        worker.close()


@pytest.mark.postgres
@pytest.mark.parametrize("early", ["a read of the log", "a savepoint"])
def test_an_update_holding_the_event_lock_takes_the_limit_in_a_transaction_of_its_own(
        pg_workspace: Workspace, early: str) -> None:
    """Its held events were written before its commit, so it holds the event log's lock: the buckets are then
    taken and given back at once (one lock order, bucket rows before the event log's), not held with it."""
    ws = pg_workspace
    limiter = SharedLimiter(ws.engine, LIMITS)
    assert limiter.wait("sandbox", "u1", group=False, now=NOW) == 0  # the rows exist (a new one is not seen)
    other = create_engine(ws.engine.url)
    with update_transaction(ws.engine):
        with transaction(ws.engine) as conn:
            append_events(conn, make(["e1"]))  # held until the commit
            if early == "a read of the log":
                conn.execute(select(func.count()).select_from(events)).scalar()
            else:
                conn.begin_nested().commit()
        assert limiter.wait("sandbox", "u1", group=False, now=NOW) == 0
        with other.connect() as conn:  # not locked: committed by a transaction of its own
            conn.exec_driver_sql("SELECT key FROM send_limits FOR UPDATE NOWAIT").all()
        commit_update()
    other.dispose()
