"""The outbox: the one path every message to a chat platform takes.

Welcome DM and menu, keyword replies, playbook steps and coupon DMs all come here. A send is recorded
before the platform call under an idempotency key (a key is sent at most once, ever), takes the shared
send limit, passes the key to platforms that deduplicate on it, and records the result. The platform's
"not now" (429 with retry_after, or our own limit) waits and tries again; other failures retry with
backoff and end as dead letters a person can retry; "never" (the person blocked the bot) marks the
person unreachable. A marketing DM goes only to a member whose marketing consent is in force, checked
when it is recorded and again just before the call; without it the send is `skipped` (not a dead letter).
A send whose call was interrupted by a crash is settled by asking the platform where
it can tell (Capabilities.finds_sends), else repeated only where the platform deduplicates
(Capabilities.idempotent_sends); elsewhere it becomes a dead letter, never a second message.
A send with a promise (the welcome: within 3 minutes of the join, SPEC C3) spaces its retries after
failures so that they all fall inside it; "not now" is always retried at the platform's retry_after.
"""

from __future__ import annotations

import json
import time
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, and_, bindparam, or_, select, update

from qunflow.connectors.base import Connector, FindsSends
from qunflow.domain.consent import MARKETING
from qunflow.domain.events import Event
from qunflow.errors import PlatformError, QunflowError, RateLimited, Unreachable
from qunflow.store.consents import has_consent
from qunflow.store.db import commit_update, connection, retry_busy, transaction
from qunflow.store.eventlog import append_events
from qunflow.store.memo import recall, remember
from qunflow.store.plain import insert_if_new, insert_new_key, read_first, write_plain
from qunflow.store.tables import deliveries, identities

if TYPE_CHECKING:
    from qunflow.workspace import Workspace

LEASE = timedelta(seconds=60)  # a call still "pending" after this was interrupted
MAX_ATTEMPTS = 5  # failed calls before a send is a dead letter (waits for "not now" do not count)
SKIP_WHEN_LATE = ("keyword_reply", "welcome_menu")  # past expires_at a late chat answer is noise: skipped
INTERRUPTED = "outcome unknown after an interruption; check the chat, then retry or skip"
NO_CONSENT = "not sent: a marketing message, and the member has no marketing consent in force"
# How soon after the send was recorded a kind must have gone (SPEC C3); a platform's own window
# (expires_at) can be shorter. Failed calls are retried faster so that every try falls inside it.
PROMISES = {"welcome_dm": timedelta(minutes=3), "gate_link": timedelta(minutes=3)}


@dataclass(frozen=True)
class Message:
    key: str  # idempotency key: one send per key, ever
    kind: str  # welcome_dm, welcome_menu, keyword_reply, playbook, coupon_dm ...
    platform: str
    target: str  # the user (private) or chat (group) id on the platform
    text: str
    private: bool
    member_id: str | None = None
    context: str | None = None  # a window token: WeCom welcome code, Telegram user_chat_id
    marketing: bool = False
    expires_at: datetime | None = None  # no send after this (a closed window, or too late to matter)
    on_sent: dict[str, Any] | None = None  # an event recorded with the send: {event_id, type, member_id, ...}


@dataclass
class Sent:
    """What happened to one send."""

    key: str
    status: str  # sent, retry, dead, unreachable, skipped, known (recorded before: nothing done)
    message_id: str | None = None
    error: str | None = None
    retry_at: datetime | None = None


@dataclass
class Tally:
    sent: int = 0
    waiting: int = 0
    dead: int = 0
    unreachable: int = 0
    skipped: int = 0
    results: list[Sent] = field(default_factory=list)

    def add(self, result: Sent) -> None:
        self.results.append(result)
        name = {"sent": "sent", "retry": "waiting", "dead": "dead", "unreachable": "unreachable",
                "skipped": "skipped"}.get(result.status)
        if name:
            setattr(self, name, getattr(self, name) + 1)


def _row(ws: Workspace, message: Message, now: datetime, status: str) -> dict[str, Any]:
    on_sent = None
    if message.on_sent is not None:
        on_sent = {**message.on_sent, "wall": time.time()}  # latency is measured in real time, also in the demo
    return {"idempotency_key": message.key, "member_id": message.member_id, "platform": message.platform,
            "target": message.target, "kind": message.kind, "status": status, "created_at": now,
            "private": message.private, "marketing": message.marketing, "context": message.context,
            "body": ws.fernet.encrypt(message.text.encode()), "attempts": 0, "next_at": now,
            "expires_at": message.expires_at, "on_sent": on_sent,
            "lease_until": now + LEASE if status == "pending" else None}


# A send's row as the database holds it, for _attempt: the row just written, known without reading it back
# (its INSERT returns the new id only; a whole row of twenty columns costs the driver several times that).
_Delivery = namedtuple("_Delivery", [column.key for column in deliveries.c])  # type: ignore[misc]
_UNWRITTEN: dict[str, Any] = dict.fromkeys(_Delivery._fields)  # sent_at, external_message_id, error: NULL in a new row


def _insert_pending(ws: Workspace, conn: Connection, message: Message) -> Any:
    """Record the send as pending (its call goes now); the stored row, or None when its key was recorded before."""
    values = _row(ws, message, ws.clock(), "pending")
    new_id = insert_new_key(conn, deliveries, values)
    if new_id is None:
        return None
    on_sent = values["on_sent"]  # as the JSON column gives it back
    return _Delivery(**{**_UNWRITTEN, **values, "id": new_id,
                        "on_sent": None if on_sent is None else json.loads(json.dumps(on_sent))})


_RECORDED = select(deliveries.c.id).where(deliveries.c.idempotency_key == bindparam("key"))


def recorded(conn: Connection, key: str) -> bool:
    """Whether a send with this key was recorded (each key is sent at most once)."""
    return read_first(conn, _RECORDED, {"key": key}) is not None


def _known_key(key: str) -> tuple[str, str]:
    return ("send_known", key)


def known_in_update(key: str) -> bool:
    """Whether this inbound update found the send with this key recorded already (send returned "known"): by
    another delivery of the update, maybe calling the platform right now (wait_settled)."""
    return bool(recall(_known_key(key)))


_STATUS = select(deliveries.c.status, deliveries.c.next_at).where(deliveries.c.idempotency_key == bindparam("key"))


def wait_settled(ws: Workspace, key: str, up_to: float) -> None:
    """Wait while the send with this key is in flight elsewhere (another delivery of the same update is calling
    the platform: "pending"; or waits to call it again: "retry" due before this wait ends, as `send` waits for a
    platform's "retry after"), at most `up_to` seconds. Commits the open inbound update's writes first, and reads
    each time afresh."""
    deadline, pause = time.monotonic() + up_to, 0.01
    while (left := deadline - time.monotonic()) > 0:
        commit_update()  # nothing held while waiting; the next read sees the other's commits
        with connection(ws.engine) as conn:  # a rare path: SQLAlchemy's execution, for next_at's type
            row = conn.execute(_STATUS, {"key": key}).first()
        due_soon = row is not None and row.status == "retry" and row.next_at is not None and \
            row.next_at <= ws.clock() + timedelta(seconds=left)
        if row is None or (row.status != "pending" and not due_soon):
            return
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _needs_consent(private: bool, marketing: bool, member_id: str | None) -> bool:
    return bool(private and marketing and member_id)


def _refused(conn: Connection, message: Message) -> bool:
    """A marketing DM to a member without the marketing consent (it is recorded as skipped)."""
    return _needs_consent(message.private, message.marketing, message.member_id) and not has_consent(
        conn, message.member_id or "", MARKETING)


def _skipped_row(ws: Workspace, message: Message, now: datetime) -> dict[str, Any]:
    return {**_row(ws, message, now, "skipped"), "error": NO_CONSENT, "body": None, "on_sent": None}


def record(ws: Workspace, conn: Connection, message: Message) -> bool:
    """Queue a send in the caller's transaction, so it commits with the state change that caused it;
    `deliver` sends it. False when the key was recorded before (nothing queued)."""
    if _refused(conn, message):
        insert_if_new(conn, deliveries, _skipped_row(ws, message, ws.clock()))
        return False
    return insert_if_new(conn, deliveries, _row(ws, message, ws.clock(), "queued"))


def send(ws: Workspace, message: Message, *, wait_up_to: float = 0.0,
         with_record: Callable[[Connection], object] | None = None) -> Sent:
    """Record and send now, without waiting for a worker (the welcome path). A key seen before is left alone.

    `wait_up_to`: when the platform says "not now" for at most this many seconds, wait here and try once
    more (a join request is approved only after its welcome, so the caller waits anyway).
    `with_record`: writes that belong with the send (the welcome's Day-1 tasks), made in the transaction
    that records it, before the call; they must be idempotent (they run again for a key seen before).
    Inside an inbound update, the send is recorded in the update's transaction, committed before the call."""
    def insert() -> Any:  # the new row; None when the key is known; "skipped" without marketing consent
        with transaction(ws.engine) as conn:
            if with_record is not None:
                with_record(conn)
            elif recorded(conn, message.key):  # known: read, so that a repeat writes nothing
                return None
            if _refused(conn, message):
                new = insert_if_new(conn, deliveries, _skipped_row(ws, message, ws.clock()))
                return "skipped" if new else None
            return _insert_pending(ws, conn, message)

    row = retry_busy(insert)
    if row == "skipped":
        return Sent(message.key, "skipped", error=NO_CONSENT)
    if row is None:
        remember(_known_key(message.key), True)
        return Sent(message.key, "known")
    result = _attempt(ws, row)
    if result.status == "retry" and result.retry_at is not None:
        pause = (result.retry_at - ws.clock()).total_seconds()
        if pause <= wait_up_to:
            commit_update()  # nothing held while waiting
            time.sleep(max(pause, 0.0))
            again = deliver(ws, [message.key]).results
            return again[0] if again else result
    return result


def deliver(ws: Workspace, keys: list[str] | None = None, *, limit: int = 500) -> Tally:
    """Send what is queued or due for a retry (only `keys`, when given), and settle interrupted calls."""
    tally = Tally()
    while True:
        rows = retry_busy(lambda: _claim(ws, keys, limit))
        for row, interrupted in rows:
            tally.add(_attempt(ws, row, interrupted=interrupted))
        if len(rows) < limit:
            return tally


def _claim(ws: Workspace, keys: list[str] | None, limit: int) -> list[tuple[Any, bool]]:
    """Lease due sends to this process; each comes with whether its last call was interrupted."""
    now = ws.clock()
    d = deliveries.c
    due = or_(and_(d.status.in_(("queued", "retry")), d.next_at <= now),
              and_(d.status == "pending", or_(d.lease_until.is_(None), d.lease_until < now)))
    query = select(d.id).where(due).order_by(d.next_at).limit(limit)
    if keys is not None:
        query = query.where(d.idempotency_key.in_(keys))
    with ws.engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # several workers: each takes rows no other holds
            query = query.with_for_update(skip_locked=True)
        ids = list(conn.execute(query).scalars())
        if not ids:
            return []
        rows = conn.execute(select(deliveries).where(d.id.in_(ids)).order_by(d.next_at, d.id)).all()
        conn.execute(update(deliveries).where(d.id.in_(ids)).values(status="pending", lease_until=now + LEASE))
    return [(row, row.status == "pending") for row in rows]


def _attempt(ws: Workspace, row: Any, *, interrupted: bool = False) -> Sent:
    now = ws.clock()
    key = row.idempotency_key
    try:
        connector = ws.connector(row.platform)
    except QunflowError as exc:  # e.g. the platform was disconnected since
        return _finish(ws, row, "dead", error=str(exc))
    if interrupted:
        commit_update()  # nothing of an inbound update's is held while the platform answers
        arrived = _ask_platform(connector, key)
        if arrived is not None:  # it went before the crash: recorded now, not sent again
            return _finish(ws, row, "sent", message_id=arrived)
        if not (connector.capabilities.idempotent_sends or connector.capabilities.finds_sends):
            return _finish(ws, row, "dead", error=INTERRUPTED)
    if row.expires_at is not None and now > row.expires_at:
        return _late(ws, row, row.error or "no try in time")
    if _needs_consent(row.private, row.marketing, row.member_id):
        with connection(ws.engine) as conn:  # withdrawn since it was queued (退订, the link)
            if not has_consent(conn, row.member_id, MARKETING):
                return _finish(ws, row, "skipped", error=NO_CONSENT)
    wait = ws.limiter.wait(row.platform, row.target, group=not row.private, now=now)
    # Inside an inbound update: the send is recorded before the platform hears of it, in one commit with its
    # share of the shared send limit (engine/limits.py), whose locks are given back here, also when it waits.
    commit_update()
    if wait > 0:
        return _again(ws, row, now + timedelta(seconds=wait), counted=False,
                      error=f"send limit reached (free again in {wait:.1f} s)")
    text = ws.fernet.decrypt(row.body).decode()
    try:
        if row.private:
            result = connector.send_direct(row.target, text, context=row.context, idempotency_key=key)
        else:
            result = connector.post_to_group(row.target, text, idempotency_key=key)
    except RateLimited as exc:
        return _again(ws, row, ws.clock() + timedelta(seconds=max(float(exc.retry_after or 1), 0.05)),
                      counted=False, error=str(exc))
    except Unreachable as exc:
        return _finish(ws, row, "unreachable", error=str(exc))
    except PlatformError as exc:
        if row.attempts + 1 >= MAX_ATTEMPTS:
            return _finish(ws, row, "dead", error=str(exc), attempts=row.attempts + 1)
        return _again(ws, row, ws.clock() + backoff(row, ws.clock()), counted=True, error=str(exc))
    return _finish(ws, row, "sent", message_id=result.message_id)


def backoff(row: Any, now: datetime) -> timedelta:
    """The wait after a failed call: 30 s, doubling; for a kind with a promise, short enough that the tries
    left all fall before it ends (at least a second apart), while it lasts."""
    standard = timedelta(seconds=30 * 2 ** row.attempts)
    promise = PROMISES.get(row.kind)
    if promise is None:
        return standard
    deadline = row.created_at + promise
    if row.expires_at is not None:
        deadline = min(deadline, row.expires_at)
    tries_left = MAX_ATTEMPTS - row.attempts - 1
    if deadline <= now or tries_left <= 0:
        return standard
    return max(min(standard, (deadline - now) / tries_left), timedelta(seconds=1))


def _ask_platform(connector: Connector, key: str) -> str | None:
    """The id of the message a send with this key produced, when the platform can tell and it arrived."""
    if not connector.capabilities.finds_sends:
        return None
    try:
        found = cast(FindsSends, connector).find_sent(key)
    except QunflowError:  # cannot tell now: the rules for platforms that cannot tell apply
        return None
    return None if found is None else found.message_id


def settle_pending(ws: Workspace, claimed_before: datetime, *, limit: int = 1000) -> tuple[int, int]:
    """Settle sends left "pending" by a crash without waiting for their lease, where the platform can tell:
    one that arrived is recorded as sent; one that did not, on a platform that deduplicates, is due again now.
    Only sends claimed before `claimed_before` (none in flight). Returns (recorded as sent, due again)."""
    d = deliveries.c
    with ws.engine.connect() as conn:
        rows = conn.execute(select(deliveries).where(d.status == "pending", d.lease_until <= claimed_before + LEASE)
                            .order_by(d.id).limit(limit)).all()
    sent = again = 0
    for row in rows:
        try:
            connector = ws.connector(row.platform)
        except QunflowError:
            continue
        if not connector.capabilities.finds_sends:
            continue  # Telegram, WeCom: the lease runs out, then the outbox's rules for "unknown" apply
        arrived = _ask_platform(connector, row.idempotency_key)
        if arrived is not None:
            _finish(ws, row, "sent", message_id=arrived)
            sent += 1
        elif connector.capabilities.idempotent_sends:
            with ws.engine.begin() as conn:  # unless someone settled it meanwhile
                again += conn.execute(update(deliveries).where(
                    d.id == row.id, d.status == "pending", d.lease_until == row.lease_until)
                    .values(status="retry", next_at=ws.clock(), lease_until=None)).rowcount
    return sent, again


def _late(ws: Workspace, row: Any, why: str) -> Sent:
    if row.kind in SKIP_WHEN_LATE:
        return _finish(ws, row, "skipped", error=f"not sent, the moment passed: {why}")
    return _finish(ws, row, "dead", error=f"the window for this message closed before it could go: {why}")


def _again(ws: Workspace, row: Any, at: datetime, *, counted: bool, error: str | None = None) -> Sent:
    if row.expires_at is not None and at > row.expires_at:
        return _late(ws, row, error or "it would have to wait")
    values: dict[str, Any] = {"status": "retry", "next_at": at, "lease_until": None}
    if counted:
        values["attempts"] = row.attempts + 1
    if error:
        values["error"] = error[:500]
    _update(ws, row, values)
    return Sent(row.idempotency_key, "retry", error=error, retry_at=at)


# One send's new state: the columns to set come as parameters (built once; every send writes it).
_SET_DELIVERY = update(deliveries).where(deliveries.c.id == bindparam("delivery_id"))


def _update(ws: Workspace, row: Any, values: dict[str, Any]) -> None:
    def write() -> None:
        with transaction(ws.engine) as conn:
            write_plain(conn, _SET_DELIVERY, {"delivery_id": row.id, **values})

    retry_busy(write)


def _finish(ws: Workspace, row: Any, status: str, *, message_id: str | None = None, error: str | None = None,
            attempts: int | None = None) -> Sent:
    now = ws.clock()
    values: dict[str, Any] = {"status": status, "lease_until": None, "error": error[:500] if error else None}
    if attempts is not None:
        values["attempts"] = attempts
    events: list[Event] = []
    if status == "sent":
        values.update(sent_at=now, external_message_id=message_id)
        if row.on_sent:
            events.append(_sent_event(row.on_sent, now))
    # After a platform call: losing this would leave a delivered message "pending". Inside an inbound update
    # it commits with the update's next commit, which comes before any other platform call (and on PostgreSQL
    # goes in that commit's one query: nothing reads it back before).
    def write() -> None:
        with transaction(ws.engine) as conn:
            write_plain(conn, _SET_DELIVERY, {"delivery_id": row.id, **values}, hold=True)
            if events:
                append_events(conn, events)
            if status == "unreachable" and row.private:
                conn.execute(update(identities).where(identities.c.platform == row.platform,
                                                      identities.c.external_user_id == row.target)
                             .values(unreachable_at=now))

    retry_busy(write)
    return Sent(row.idempotency_key, status, message_id=message_id, error=error)


def _sent_event(spec: dict[str, Any], now: datetime) -> Event:
    """The event a send carried (e.g. welcome_sent), stamped with when it went and how long it took."""
    properties = dict(spec.get("properties") or {})
    if "since" in spec:
        properties["seconds_after_join"] = (now - datetime.fromisoformat(spec["since"])).total_seconds()
    if "wall" in spec:
        properties["latency_ms"] = round((time.time() - float(spec["wall"])) * 1000, 3)
    return Event(event_id=spec["event_id"], type=spec["type"], ts=now.replace(tzinfo=UTC),
                 member_id=spec.get("member_id"), group=spec.get("group"), properties=properties)


# --- dead letters ---------------------------------------------------------------------------------

def dead_sends(ws: Workspace, limit: int = 200) -> list[dict[str, Any]]:
    d = deliveries.c
    with ws.engine.connect() as conn:
        rows = conn.execute(select(d.id, d.idempotency_key, d.kind, d.platform, d.member_id, d.target, d.error,
                                   d.attempts, d.created_at).where(d.status == "dead")
                            .order_by(d.id.desc()).limit(limit)).all()
    return [dict(r._mapping) for r in rows]


def retry_sends(ws: Workspace, ids: list[int], *, skip: bool = False) -> int:
    """Put dead sends back in line (or mark them skipped). All or nothing: an id that is not a dead
    send raises NotFound and nothing changes."""
    from qunflow.errors import NotFound

    wanted = sorted(set(ids))
    with ws.engine.begin() as conn:
        found = set(conn.execute(select(deliveries.c.id).where(deliveries.c.id.in_(wanted),
                                                               deliveries.c.status == "dead")).scalars())
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFound(f"no dead send {', '.join(map(str, missing))} (see `qunflow automation dead`)",
                           zh=f"没有处于死信状态的发送 {', '.join(map(str, missing))}"
                              "(可用 `qunflow automation dead` 查看)")
        values: dict[str, Any] = ({"status": "skipped"} if skip else
                                  {"status": "queued", "attempts": 0, "next_at": ws.clock(), "expires_at": None,
                                   "lease_until": None})
        conn.execute(update(deliveries).where(deliveries.c.id.in_(wanted)).values(**values))
    return len(wanted)
