"""Identity resolution for incoming events (issue 13): the lookups behind domain/identity.py's rule.

`external_id` is looked up in member_keys; `phone` as its keyed hash (services/fraud.phone_key) in
member_keys, then in the gate's join_signals; `coupon` as the member who redeemed it, else its owner.
The lookups for a batch are a few IN queries. An event with a member_id and an external id or phone
that names nobody yet links them to that member (member_keys), in the same transaction as the events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from qunflow.domain.events import parse_event
from qunflow.domain.identity import (
    IDENTITY_FIELDS,
    Found,
    candidate_rows,
    carries_identity,
    identity_text,
    resolve,
    rewrite,
)
from qunflow.errors import InvalidInput
from qunflow.services.coupons import normalise_code
from qunflow.services.fraud import phone_key
from qunflow.store.plain import insert_ignore
from qunflow.store.tables import coupons, join_signals, member_keys, member_merges
from qunflow.workspace import Workspace


@dataclass
class Resolved:
    """A batch after resolution: items to validate (bad ones are reasons, by index), links to store."""

    items: list[Any]
    reasons: dict[int, str] = field(default_factory=dict)
    links: list[dict[str, Any]] = field(default_factory=list)
    # Merge candidates: an event's member_id with an external id or phone linked to another member.
    candidates: list[tuple[str, str, str]] = field(default_factory=list)


def key_of(ws: Workspace, name: str, value: str) -> str | None:
    """The stored key of an identity value: the phone's keyed hash, the coupon's normal form, the id itself."""
    if name == "phone":
        return phone_key(ws, value)
    if name == "coupon":
        try:
            return normalise_code(value)
        except InvalidInput:
            return None
    return value


def lookup(conn: Connection, name: str, keys: set[str]) -> dict[str, str]:
    """key -> member id for the keys of one identity field that name a member."""
    if not keys:
        return {}
    if name == "coupon":
        rows = conn.execute(select(coupons.c.code, func.coalesce(coupons.c.redeemed_by, coupons.c.member_id))
                            .where(coupons.c.code.in_(keys)))
        return {code: member for code, member in rows}
    kind = "phone" if name == "phone" else "external_id"
    found = {key: member for key, member in conn.execute(
        select(member_keys.c.key, member_keys.c.member_id).where(member_keys.c.kind == kind,
                                                                 member_keys.c.key.in_(keys)))}
    if name == "phone" and len(found) < len(keys):  # the gate's hash: the earliest member with it
        rows = conn.execute(select(join_signals.c.phone, join_signals.c.member_id)
                            .where(join_signals.c.phone.in_(keys - set(found)))
                            .order_by(join_signals.c.recorded_at.desc(), join_signals.c.member_id.desc()))
        for key, member in rows:
            found[key] = member  # descending order: the earliest one is written last
    return found


def resolve_items(conn: Connection, ws: Workspace, items: Sequence[Any]) -> Resolved:
    """Resolve the items that carry external_id, phone or coupon; the others pass unchanged."""
    out = Resolved(list(items))
    given: dict[int, dict[str, str | None]] = {}
    for index, item in enumerate(items):
        if not carries_identity(item):
            continue
        try:
            values = {name: identity_text(name, item.get(name)) for name in ("member_id", *IDENTITY_FIELDS)}
        except ValueError as exc:
            out.reasons[index] = str(exc)
            continue
        given[index] = values
    keys: dict[int, dict[str, str | None]] = {
        index: {name: key_of(ws, name, v) if (v := values[name]) else None for name in IDENTITY_FIELDS}
        for index, values in given.items()}
    named = {name: lookup(conn, name, {v for k in keys.values() if (v := k[name])}) for name in IDENTITY_FIELDS}
    now = ws.clock()
    pending: dict[tuple[str, str], str] = {}  # links made by this batch: the first event's member wins
    for index, values in given.items():
        key = keys[index]
        found = Found(member_id=None, **{name: named[name].get(key[name] or "") or pending.get((name, key[name] or ""))
                                         for name in IDENTITY_FIELDS})
        resolution = resolve(values, found)
        event = rewrite(items[index], resolution, values)
        try:
            parse_event(event)
        except InvalidInput as exc:
            out.reasons[index] = str(exc)
            continue
        out.items[index] = event
        if resolution.rule == "member_id" and resolution.member_id:
            out.candidates += [(resolution.member_id, other, name) for name in ("external_id", "phone")
                               if (other := getattr(found, name)) and other != resolution.member_id]
        for name in resolution.links:
            link = key[name]
            if link and (name, link) not in pending:
                pending[(name, link)] = resolution.member_id or ""
                out.links.append({"kind": name, "key": link, "member_id": resolution.member_id,
                                  "linked_at": now, "source": "event"})
    return out


def store_links(conn: Connection, links: list[dict[str, Any]],
                candidates: list[tuple[str, str, str]] | None = None, now: datetime | None = None) -> None:
    """The links (and merge candidates) a batch made, in the caller's transaction."""
    insert_ignore(conn, member_keys, links)
    if candidates and now is not None:
        insert_ignore(conn, member_merges, candidate_rows(candidates, now))
