"""Inbound: one dispatcher from a platform's updates to the handlers that act on them.

A connector verifies and parses the platform's call (`Connector.receive`); each update type then runs
its handlers in the order below. Handlers do not call each other: a join records the member, the
welcome handler welcomes them, and a join request is approved only after its welcome went out. An
update the platform delivers again (same key) is not acted on twice once it was handled to the end; one
whose handling was cut off by a crash is handled again (every handler is idempotent); for the same
reason an update the database refused for now ("database is locked") is handled again after a pause.

Transactions: the handlers of an update share one connection and so one transaction
(`store.db.update_transaction`), committed only where the update needs it: before each platform call (a
send is recorded before it goes) and at the end, where the handled mark rides with the update's last
writes. A Telegram join request is three commits: the member, the join request and the welcome DM's send
record; the DM's result, before the approval; the approved join and the mark. An update whose handlers
write nothing (the join that follows an approved request) commits nothing and leaves no mark: handling a
repeat again changes nothing.

Durability: the commits before the update's first platform call wait for no disk; its last commit does,
which makes the earlier ones durable too, before the platform gets its answer (`store.db.sync_deferred`).
A killed process loses nothing; a power cut in the middle of an update loses only what the platform will
deliver again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from sqlalchemy import Connection, bindparam, select

from qunflow.connectors.base import (
    ContactAdded,
    Inbound,
    JoinRequested,
    MemberJoined,
    MemberLeft,
    MessagePosted,
    Update,
)
from qunflow.services import (
    activity,
    consent,
    group_polls,
    join,
    join_echo,
    join_request_read,
    keyword_rules,
    meetups,
    tier_moves,
    welcome,
)
from qunflow.store.db import UpdateTransaction, retry_busy, update_transaction
from qunflow.store.memo import update_memo
from qunflow.store.plain import insert_ignore, read_first
from qunflow.store.tables import inbound_updates
from qunflow.workspace import Workspace

Handler = Callable[[Workspace, Any], object]

HANDLERS: dict[type[Update], tuple[Handler, ...]] = {
    JoinRequested: (join.on_join_request, welcome.on_join_request, join.approve_request),
    MemberJoined: (join.on_member_joined, tier_moves.on_member_joined, welcome.on_member_joined),
    ContactAdded: (join.on_contact_added, welcome.on_contact_added),
    MemberLeft: (join.on_member_left,),
    MessagePosted: (activity.on_message, consent.on_message, keyword_rules.on_message, meetups.on_message,
                    group_polls.on_message),
}


def receive(ws: Workspace, platform: str, method: str, query: Mapping[str, str], headers: Mapping[str, str],
            body: bytes) -> Inbound:
    """A platform's call to /hooks/<platform>: verified and parsed by its connector, then dispatched."""
    inbound = ws.connector(platform).receive(method, query, headers, body)
    dispatch(ws, inbound.updates)
    return inbound


def dispatch(ws: Workspace, updates: Sequence[Update]) -> None:
    for item in updates:
        handlers = HANDLERS.get(type(item), ())
        if not handlers:
            continue
        # Updates are handled side by side (a platform delivers over several connections, and most of a
        # handler's time is the platform's own calls); SQLite then takes their writes one at a time.
        if item.key is None:  # nothing ends it with a synced commit: each handler's commits are synced
            with update_memo():
                for handler in handlers:
                    retry_busy(partial(handler, ws, item))
            continue
        # The database refused for now ("database is locked"): the update's open transaction is rolled
        # back and the whole update handled again (every handler is idempotent).
        retry_busy(partial(_handle, ws, handlers, item))


def _handle(ws: Workspace, handlers: Sequence[Handler], item: Update) -> None:
    with update_transaction(ws.engine) as tx, update_memo():
        if _handled_before(ws, tx, item, handlers):
            return
        for handler in handlers:
            handler(ws, item)
        if tx.scope.wrote:  # a repeat is now ignored
            tx.end(partial(_mark_handled, ws, item))


def _mark_handled(ws: Workspace, item: Update, conn: Connection) -> None:
    insert_ignore(conn, inbound_updates, [{"platform": item.platform, "key": item.key, "status": "done",
                                           "received_at": ws.clock()}], hold=True)  # sent with the COMMIT


_SEEN = select(inbound_updates.c.key).where(inbound_updates.c.platform == bindparam("platform"),
                                            inbound_updates.c.key == bindparam("key"))


def _handled_before(ws: Workspace, tx: UpdateTransaction, item: Update, handlers: Sequence[Handler]) -> bool:
    """Handled to the end before; a member update that echoes a join handled to the end counts too (one read
    for both: services/join_echo.py, while its handlers are the ones that read stands in for). A join request's
    read brings its handlers' first lookups too (services/join_request_read.py)."""
    if isinstance(item, MemberJoined) and tuple(handlers) == join_echo.STANDS_IN_FOR:
        return join_echo.handled_or_echo(ws, tx, item)
    if isinstance(item, JoinRequested):  # with its handlers' first lookups (services/join_request_read.py)
        return join_request_read.handled_before(tx, item)
    return read_first(tx.connection(), _SEEN, {"platform": item.platform, "key": item.key}) is not None
