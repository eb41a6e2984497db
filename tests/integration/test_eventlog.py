"""The event log on SQLite and PostgreSQL: idempotent on event_id, seq in commit order, safe under threads."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from qunflow.domain.events import Event
from qunflow.store.eventlog import append_events, count_events, max_seq
from qunflow.store.tables import events
from qunflow.workspace import Workspace

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def make(ids: list[str] | range, **fields: object) -> list[Event]:
    return [Event(event_id=str(i), type="message", ts=T0 + timedelta(seconds=n), member_id=f"m{n % 7}",
                  **fields) for n, i in enumerate(ids)]  # type: ignore[arg-type]


def append(ws: Workspace, batch: list[Event]) -> int:
    with ws.engine.begin() as conn:
        return append_events(conn, batch)


def stored_ids_in_seq_order(ws: Workspace) -> list[str]:
    with ws.engine.connect() as conn:
        return list(conn.execute(select(events.c.event_id).order_by(events.c.seq)).scalars())


def test_the_same_batch_appended_twice_is_stored_once(any_workspace: Workspace) -> None:
    batch = make([f"e{i}" for i in range(50)])
    assert append(any_workspace, batch) == 50
    assert append(any_workspace, batch) == 0
    assert append(any_workspace, make([f"e{i}" for i in range(40, 60)])) == 10  # overlap: only the new ten
    with any_workspace.engine.connect() as conn:
        assert (count_events(conn), count_events(conn, "message"), count_events(conn, "order")) == (60, 60, 0)


def test_a_repeated_event_id_within_one_batch_is_stored_once(any_workspace: Workspace) -> None:
    first, again = make(["dup"]), make(["dup"], channel="ads")
    assert append(any_workspace, [*first, *make(["x"]), *again]) == 2
    with any_workspace.engine.connect() as conn:
        channel = conn.execute(select(events.c.channel).where(events.c.event_id == "dup")).scalar_one()
    assert channel is None  # the first one wins; a re-sent id never rewrites the stored event


def test_an_empty_batch_stores_nothing(any_workspace: Workspace) -> None:
    assert append(any_workspace, []) == 0
    with any_workspace.engine.connect() as conn:
        assert count_events(conn) == 0 and max_seq(conn) == 0


def test_every_field_is_stored_as_given(any_workspace: Workspace) -> None:
    full = Event(event_id="o1", type="order", ts=datetime(2026, 3, 1, 0, 30, 15, 123456, tzinfo=UTC),
                 member_id="m1", visitor_id="v1", channel="ads", campaign="spring", entry_point="xhs-7",
                 group="core-1", referrer_id="m0", amount=Decimal("199.9000"), margin=Decimal("-3.1416"),
                 currency="CNY", experiment="welcome-copy", variant="b",
                 properties={"sku": "课程-A", "qty": 2})
    sparse = make(["s1"])[0]  # a batch whose events use different columns
    assert append(any_workspace, [sparse, full]) == 2
    with any_workspace.engine.connect() as conn:
        rows = {r.event_id: r for r in conn.execute(select(events))}
    row = rows["o1"]
    assert (row.type, row.ts, row.member_id, row.visitor_id, row.channel, row.campaign, row.entry_point,
            row.group_key, row.referrer_id, row.currency, row.experiment, row.variant) == (
        "order", datetime(2026, 3, 1, 0, 30, 15, 123456), "m1", "v1", "ads", "spring", "xhs-7",
        "core-1", "m0", "CNY", "welcome-copy", "b")
    assert (row.amount, row.margin, row.properties) == (Decimal("199.9000"), Decimal("-3.1416"),
                                                        {"sku": "课程-A", "qty": 2})
    assert row.received_at is not None
    empty = rows["s1"]
    assert (empty.amount, empty.channel, empty.properties) == (None, None, None)
    assert empty.ts == T0.replace(tzinfo=None)


def test_seq_follows_the_order_events_were_appended(any_workspace: Workspace) -> None:
    ids = [f"e{i}" for i in range(30)]
    random.Random(7).shuffle(ids)
    for start in range(0, 30, 10):
        append(any_workspace, make(ids[start:start + 10]))
    assert stored_ids_in_seq_order(any_workspace) == ids
    with any_workspace.engine.connect() as conn:
        assert max_seq(conn) >= 30


def test_a_rolled_back_batch_leaves_no_trace(any_workspace: Workspace) -> None:
    with pytest.raises(RuntimeError), any_workspace.engine.begin() as conn:
        append_events(conn, make(["r1", "r2"]))
        raise RuntimeError("the caller's unit of work failed after the append")
    assert append(any_workspace, make(["r1", "r2"])) == 2  # the ids are free again


def test_concurrent_writers_store_every_event_exactly_once(any_workspace: Workspace) -> None:
    shared = [f"shared-{i}" for i in range(300)]  # every writer sends these: a retrying client
    new_counts: list[int] = []
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            ids = [*shared, *(f"{name}-{i}" for i in range(300))]
            random.Random(name).shuffle(ids)
            for start in range(0, len(ids), 50):
                new_counts.append(append(any_workspace, make(ids[start:start + 50])))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    ids = stored_ids_in_seq_order(any_workspace)
    assert len(ids) == len(set(ids)) == 300 + 4 * 300
    assert sum(new_counts) == len(ids)  # each event counted as new by exactly one writer


def test_seq_order_equals_commit_order_under_concurrent_writers(any_workspace: Workspace) -> None:
    """A reader never sees a row appear below a seq it has already seen: the shipper's watermark is safe."""

    def writer(name: str) -> None:
        for batch in range(25):
            with any_workspace.engine.begin() as conn:
                append_events(conn, make([f"{name}-{batch}-{i}" for i in range(40)]))
                time.sleep(random.random() / 500)  # hold the transaction open a little

    assert_no_row_lands_below_a_seen_seq(any_workspace, writer)
    assert len(stored_ids_in_seq_order(any_workspace)) == 4 * 25 * 40


def assert_no_row_lands_below_a_seen_seq(ws: Workspace, writer: Callable[[str], None], writers: int = 4) -> None:
    """Run `writers` threads of `writer(name)` while a reader polls like the shipper (the rows above its
    watermark, in a fresh snapshot each time); fails when a row is committed below a seq it has seen."""
    done = threading.Event()
    errors: list[BaseException] = []

    def guarded(name: str) -> None:
        try:
            writer(name)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    late: list[tuple[int, int, int]] = []
    polls = 0

    def reader() -> None:
        nonlocal polls
        watermark, seen = 0, 0
        query = text("SELECT count(*), COALESCE(max(seq), 0), "
                     "SUM(CASE WHEN seq <= :w THEN 1 ELSE 0 END) FROM events")
        with ws.engine.connect() as conn:
            while not done.is_set() or polls == 0:
                total, top, below = conn.execute(query, {"w": watermark}).one()
                conn.rollback()  # a fresh snapshot for the next poll
                polls += 1
                if (below or 0) != seen:
                    late.append((watermark, seen, below))
                watermark, seen = top, total

    threads = [threading.Thread(target=guarded, args=(f"w{n}",)) for n in range(writers)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    done.set()
    watcher.join(30)
    assert not errors and polls > 5, errors
    assert late == [], "rows committed below an already-visible seq (watermark, rows seen, rows now)"
