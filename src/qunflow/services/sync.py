"""Outbound sync (issue 13, docs/sync.md): the events a CRM subscribed to, posted as signed webhooks.

Nothing is added to the join path: each subscription keeps a cursor on the event log's insertion order
(`seq`; on PostgreSQL event writers take a lock so seq order is commit order) and the automation worker
turns the events past it into `sync_deliveries` rows, advancing the cursor in the same transaction. An
acknowledged event is therefore queued exactly once, and a queued delivery is posted until the receiver
takes it (at least once; the event id is the receiver's key for dropping a repeat) or it becomes a dead
letter after the subscription's attempts: `qunflow sync retry` puts it back in line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, delete, func, select, update

from qunflow.domain import sync as rules
from qunflow.engine.notifier import post
from qunflow.errors import InvalidInput, NotFound
from qunflow.store.db import retry_busy
from qunflow.store.plain import insert_ignore
from qunflow.store.tables import automation_state, events, member_keys, sync_deliveries
from qunflow.workspace import Workspace

log = logging.getLogger("qunflow.sync")
LEASE = timedelta(seconds=60)  # a post interrupted mid-call (a killed worker) is tried again after this
TIMEOUT = 5.0  # seconds for one post
ROUND_BUDGET = 2.0  # seconds of posting per worker round; the rest waits for the next round
QUEUE_BATCH = 5000
RECORD_BATCH = 50  # outcomes written per transaction
KEEP_SENT = timedelta(days=7)  # sent rows are pruned after this; the event log keeps the facts
RETRYABLE_WAIT = (429, 503)  # answers whose Retry-After sets the next try
STATUSES = ("pending", "posting", "sent", "dead")


@dataclass
class Round:
    """One round of the sync: rows queued, posted, failed (to be tried again) and dead-lettered."""

    queued: int = 0
    sent: int = 0
    failed: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


def cursor_name(target: str) -> str:
    return f"sync_cursor:{target}"


def _cursor(conn: Connection, target: str) -> int | None:
    value = conn.execute(select(automation_state.c.value)
                         .where(automation_state.c.name == cursor_name(target))).scalar()
    return None if value is None else int(value)


def _set_cursor(conn: Connection, target: str, seq: int) -> None:
    insert_ignore(conn, automation_state, [{"name": cursor_name(target), "value": str(seq)}])
    conn.execute(update(automation_state).where(automation_state.c.name == cursor_name(target))
                 .values(value=str(seq)))


def workspace_name(ws: Workspace, target: rules.SyncTarget) -> str:
    return target.workspace or urlsplit(ws.settings.public_url).netloc or "qunflow"


def queue(ws: Workspace, *, limit: int = QUEUE_BATCH) -> int:
    """Queue a delivery per subscription for each subscribed event recorded since its cursor.

    A new subscription starts at the beginning of the log (backfill), or with `backfill = false` at its end
    when the worker first sees it. Returns how many deliveries were queued."""
    now = ws.clock()
    queued = 0
    for name, target in ws.settings.sync.items():
        with ws.engine.begin() as conn:
            cursor = _cursor(conn, name)
            last = int(conn.execute(select(func.coalesce(func.max(events.c.seq), 0))).scalar_one())
            if cursor is None and not target.backfill:
                _set_cursor(conn, name, last)
                continue
            cursor = cursor or 0
            if last <= cursor:
                continue
            # The end first, then the rows up to it: an event committed in between waits for the next round.
            rows = conn.execute(select(events).where(events.c.seq > cursor, events.c.seq <= last,
                                                     events.c.type.in_(target.types),
                                                     events.c.member_id.is_not(None))
                                .order_by(events.c.seq).limit(limit)).all()
            new_cursor = rows[-1].seq if len(rows) == limit else last
            external = _external_ids(conn, {row.member_id for row in rows})
            label = workspace_name(ws, target)
            insert_ignore(conn, sync_deliveries, [
                {"target": name, "event_id": row.event_id, "event_seq": row.seq, "type": row.type,
                 "payload": rules.payload(dict(row._mapping), label, external.get(row.member_id)),
                 "status": "pending", "attempts": 0, "next_at": now, "created_at": now} for row in rows])
            _set_cursor(conn, name, new_cursor)
            queued += len(rows)
    return queued


def _external_ids(conn: Connection, member_ids: set[str]) -> dict[str, str]:
    """Each member's first-linked shop customer id (member_keys), the one id a CRM already knows."""
    if not member_ids:
        return {}
    k = member_keys.c
    rows = conn.execute(select(k.member_id, k.key).where(k.kind == "external_id", k.member_id.in_(member_ids))
                        .order_by(k.linked_at.desc(), k.id.desc())).all()
    return {row.member_id: row.key for row in rows}  # the earliest link is written last, so it wins


def deliver(ws: Workspace, *, limit: int = 200, budget: float = ROUND_BUDGET) -> Round:
    """Post due deliveries, signed. A failure waits (Retry-After on 429/503, else 30 s doubling up to an
    hour) and the subscription's other rows wait for the next round; after its last attempt a row is dead.

    Rows are leased in one transaction and their outcomes written RECORD_BATCH at a time (a commit per post
    would cost more than the post): a worker killed in between leaves them leased, and they are posted
    again when the lease runs out (at least once; the receiver drops a repeat by its event id)."""
    done = Round()
    targets = ws.settings.sync
    if not targets:
        return done
    rows = retry_busy(lambda: _claim(ws, list(targets), limit))
    started = time.monotonic()
    resting: set[str] = set()  # subscriptions whose receiver failed this round
    outcomes: list[tuple[int, dict[str, Any]]] = []
    unposted: list[int] = []
    for row in rows:
        if row.target in resting or time.monotonic() - started > budget:
            unposted.append(row.id)
            continue
        values = _post(ws, row, targets[row.target])
        if values["status"] == "sent":
            done.sent += 1
        else:
            resting.add(row.target)
            done.errors.append(values["last_error"])
            if values["status"] == "dead":
                done.dead += 1
            else:
                done.failed += 1
        outcomes.append((row.id, values))
        if len(outcomes) >= RECORD_BATCH:
            _record(ws, outcomes, [])
            outcomes = []
    _record(ws, outcomes, unposted)
    return done


def _claim(ws: Workspace, targets: list[str], limit: int) -> list[Any]:
    """Lease due rows (new, retries come due, and posts a killed worker left) to this worker."""
    now = ws.clock()
    d = sync_deliveries.c
    query = (select(d.id).where(d.status.in_(("pending", "posting")), d.next_at <= now, d.target.in_(targets))
             .order_by(d.next_at, d.id).limit(limit))
    with ws.engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # several workers: each takes rows no other holds
            query = query.with_for_update(skip_locked=True)
        ids = list(conn.execute(query).scalars())
        if not ids:
            return []
        rows = conn.execute(select(d.id, d.target, d.attempts, d.event_id, d.type, d.payload)
                            .where(d.id.in_(ids)).order_by(d.next_at, d.id)).all()
        conn.execute(update(sync_deliveries).where(d.id.in_(ids)).values(status="posting", next_at=now + LEASE))
    return list(rows)


def _record(ws: Workspace, outcomes: list[tuple[int, dict[str, Any]]], unposted: list[int]) -> None:
    """Write posts' outcomes, and give back the leased rows this round did not post, in one transaction."""
    if not outcomes and not unposted:
        return
    d = sync_deliveries.c

    def write() -> None:
        with ws.engine.begin() as conn:
            for row_id, values in outcomes:
                conn.execute(update(sync_deliveries).where(d.id == row_id).values(**values))
            if unposted:
                conn.execute(update(sync_deliveries).where(d.id.in_(unposted), d.status == "posting")
                             .values(status="pending", next_at=ws.clock()))

    retry_busy(write)


def _post(ws: Workspace, row: Any, target: rules.SyncTarget) -> dict[str, Any]:
    """One signed post of a claimed row; the row's new values."""
    attempts = row.attempts + 1
    status: int | None = None
    error: str | None
    wait: timedelta | None = None
    try:
        secret = ws.settings.sync_secret(row.target)
    except InvalidInput as exc:
        error = str(exc)
    else:
        raw = rules.body(row.payload)
        stamp = int(time.time())  # real time: it is the receiver's replay window, not the workspace's clock
        answer = post(target.url, raw, timeout=TIMEOUT,
                      headers=rules.headers(secret, stamp, raw, row.event_id, row.type))
        status, error = answer.status, answer.error
        wait = rules.retry_after(answer.retry_after, ws.clock()) if status in RETRYABLE_WAIT else None
    now = ws.clock()
    if error is None:
        return {"status": "sent", "attempts": attempts, "last_status": status, "last_error": None,
                "sent_at": now, "next_at": now}
    if attempts >= target.attempts:
        log.warning("sync %s: delivery %s is a dead letter after %d attempts: %s", row.target, row.id, attempts,
                    error)
        return {"status": "dead", "attempts": attempts, "last_status": status, "last_error": error, "next_at": now}
    return {"status": "pending", "attempts": attempts, "last_status": status, "last_error": error,
            "next_at": now + (wait if wait is not None else rules.wait_after(attempts))}


def prune(ws: Workspace) -> int:
    """Forget sent rows older than KEEP_SENT (the event log keeps the facts)."""
    d = sync_deliveries.c
    with ws.engine.begin() as conn:
        return int(conn.execute(delete(sync_deliveries).where(d.status == "sent",
                                                              d.next_at < ws.clock() - KEEP_SENT)).rowcount)


def sync_round(ws: Workspace) -> Round:
    """The worker's round (services/automation.work_once, which also prunes hourly): queue what is new, then
    post what is due."""
    if not ws.settings.sync:
        return Round()
    queued = queue(ws)
    done = deliver(ws)
    done.queued = queued
    return done


def list_deliveries(ws: Workspace, status: str | None = "dead", target: str | None = None,
                    limit: int = 200) -> list[dict[str, Any]]:
    """Deliveries, newest first: by default the dead letters."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}",
                           zh=f"状态须为 {', '.join(STATUSES)} 之一，而不是 {status!r}")
    d = sync_deliveries.c
    query = select(d.id, d.target, d.event_id, d.type, d.status, d.attempts, d.last_status, d.last_error,
                   d.created_at, d.next_at, d.sent_at)
    if status is not None:
        query = query.where(d.status == status)
    if target is not None:
        query = query.where(d.target == target)
    with ws.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query.order_by(d.id.desc()).limit(limit))]


def counts(ws: Workspace) -> dict[str, dict[str, int]]:
    """Rows per subscription and status (the console's summary)."""
    d = sync_deliveries.c
    out: dict[str, dict[str, int]] = {name: dict.fromkeys(STATUSES, 0) for name in ws.settings.sync}
    with ws.engine.connect() as conn:
        for target, status, n in conn.execute(select(d.target, d.status, func.count())
                                              .group_by(d.target, d.status)):
            out.setdefault(target, dict.fromkeys(STATUSES, 0))[status] = int(n)
    return out


def retry(ws: Workspace, ids: Iterable[int], *, all_dead: bool = False) -> int:
    """Put dead letters back in line with fresh attempts. All or nothing: an id that is not a dead letter
    raises NotFound and nothing changes. Returns how many went back."""
    d = sync_deliveries.c
    wanted = sorted(set(ids))
    now = ws.clock()
    with ws.engine.begin() as conn:
        if all_dead:
            wanted = list(conn.execute(select(d.id).where(d.status == "dead")).scalars())
        found = set(conn.execute(select(d.id).where(d.id.in_(wanted), d.status == "dead")).scalars())
        missing = [str(i) for i in wanted if i not in found]
        if missing:
            raise NotFound(f"not sync dead letters (see `qunflow sync list`): {', '.join(missing)}",
                           zh=f"不是同步死信（见 `qunflow sync list`）：{', '.join(missing)}")
        if wanted:
            conn.execute(update(sync_deliveries).where(d.id.in_(wanted))
                         .values(status="pending", attempts=0, next_at=now, last_error=None))
    return len(wanted)


def check_targets(ws: Workspace) -> list[str]:
    """What stops a subscription from delivering now (an unset secret), one line each."""
    problems = []
    for name in ws.settings.sync:
        try:
            ws.settings.sync_secret(name)
        except InvalidInput as exc:
            problems.append(str(exc))
    return problems

