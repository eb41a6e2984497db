"""Inbound: one dispatcher from a platform's updates to the handlers that act on them.

A connector verifies and parses the platform's call (`Connector.receive`); each update type then runs
its handlers in the order below. Handlers do not call each other: a join records the member, the
welcome handler welcomes them, and a join request is approved only after its welcome went out. An
update the platform delivers again (same key) is not acted on twice once it was handled to the end; one
whose handling was cut off by a crash is handled again (every handler is idempotent); for the same
reason a handler the database refused for now ("database is locked") is run again after a pause.

Durability: the handlers of an update commit without waiting for the disk (`store.db.sync_deferred`);
the handled mark that ends the update is a synced commit, which makes theirs durable too, before the
platform gets its answer. One disk sync per update instead of one per transaction; a killed process loses
nothing, and a power cut in the middle of an update loses only what the platform will deliver again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from functools import partial
from typing import Any

from sqlalchemy import bindparam, select

from qunflow.connectors.base import (
    ContactAdded,
    Inbound,
    JoinRequested,
    MemberJoined,
    MemberLeft,
    MessagePosted,
    Update,
)
from qunflow.services import activity, consent, group_polls, join, keyword_rules, meetups, tier_moves, welcome
from qunflow.store.db import insert_ignore, read_first, retry_busy, sync_deferred, unsynced
from qunflow.store.memo import update_memo
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
        if item.key is not None and retry_busy(partial(_handled_before, ws, item)):
            continue
        if item.key is None:  # nothing ends it with a synced commit: each handler's commits are synced
            with update_memo():
                _run_handlers(ws, handlers, item)
            continue
        with sync_deferred() as scope, update_memo():
            _run_handlers(ws, handlers, item)
        retry_busy(partial(_mark_handled, ws, item, synced=scope.wrote))  # a repeat is now ignored


def _run_handlers(ws: Workspace, handlers: Sequence[Handler], item: Update) -> None:
    for handler in handlers:
        retry_busy(partial(handler, ws, item))


def _mark_handled(ws: Workspace, item: Update, *, synced: bool) -> None:
    """Synced when the handlers wrote: it makes their deferred commits durable along with itself. When they
    wrote nothing (the join that follows an approved request), the mark only saves handling a repeat again
    (every handler is idempotent) and need not wait for the disk."""
    with nullcontext() if synced else unsynced(), ws.engine.begin() as conn:
        insert_ignore(conn, inbound_updates, [{"platform": item.platform, "key": item.key,
                                               "status": "done", "received_at": ws.clock()}])


_SEEN = select(inbound_updates.c.key).where(inbound_updates.c.platform == bindparam("platform"),
                                            inbound_updates.c.key == bindparam("key"))


def _handled_before(ws: Workspace, item: Update) -> bool:
    with ws.engine.connect() as conn:
        return read_first(conn, _SEEN, {"platform": item.platform, "key": item.key}) is not None
