"""A join request's first lookups in one read.

services/inbound.py first reads whether an update was handled before; a join request's handlers then look up the
managed group behind the chat (services/join.py group_row), the member behind the user (member_of_user) and, for a
person not known yet, what the link's label names: a gate pass's member (the ticket holder), else an entry point
(_entry_by_code). One statement reads all five, and what it found is remembered for the update (store/memo.py),
found or not, so the handlers run unchanged and find it there. A member not found is remembered as not found
here only: the update's first handler (join.on_join_request) is the one that makes them, and remembers them. A
label the platform did not report is looked up by nobody: nothing is remembered for it.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Integer, String, and_, bindparam, case, exists, literal_column, select

from qunflow.connectors.base import JoinRequested
from qunflow.services import join
from qunflow.store.db import UpdateTransaction
from qunflow.store.memo import remember
from qunflow.store.plain import read_first
from qunflow.store.tables import campaigns, channels, entry_points, groups, identities, inbound_updates, members


class _Group(NamedTuple):
    """A group's row as join._GROUP_BY_CHAT reads it."""

    id: int
    key: str
    name: str
    platform: str
    external_id: str
    tier: str
    capacity: int
    member_count: int


class _Holder(NamedTuple):
    """A gate pass's member as join._TICKET_HOLDER reads it."""

    id: str
    entry_point_id: int | None
    tier: str | None


class _Entry(NamedTuple):
    """An entry point as join._ENTRY_BY_CODE reads it."""

    id: int
    target_tier: str | None
    code: str
    channel: str
    campaign: str | None


_holder = members.alias("holder")
_ONE = select(literal_column("1").label("one")).subquery("one")  # one row, whatever the joins find
_READ = select(
    case((exists().where(inbound_updates.c.platform == bindparam("platform"),
                         inbound_updates.c.key == bindparam("key")), literal_column("1", Integer)),
         else_=literal_column("0", Integer)).label("seen"),
    *(groups.c[name] for name in _Group._fields),
    identities.c.member_id,
    _holder.c.id.label("holder_id"), _holder.c.entry_point_id.label("holder_entry_point_id"),
    _holder.c.tier.label("holder_tier"),
    entry_points.c.id.label("entry_id"), entry_points.c.target_tier, entry_points.c.code,
    channels.c.key.label("channel"), campaigns.c.key.label("campaign"),
).select_from(
    _ONE.outerjoin(groups, and_(groups.c.platform == bindparam("platform"), groups.c.external_id == bindparam("chat")))
    .outerjoin(identities, and_(identities.c.platform == bindparam("platform"),
                                identities.c.external_user_id == bindparam("user_id")))
    .outerjoin(_holder, _holder.c.join_ticket == bindparam("label"))
    # channel_id is never NULL: the inner join drops no entry point (as join._ENTRY_BY_CODE)
    .outerjoin(entry_points.join(channels, channels.c.id == entry_points.c.channel_id)
               .outerjoin(campaigns, campaigns.c.id == entry_points.c.campaign_id),
               entry_points.c.code == bindparam("label")))
assert all(isinstance(c.type, Integer | String) for c in _READ.selected_columns)


def handled_before(tx: UpdateTransaction, item: JoinRequested) -> bool:
    """Whether the request was handled to the end before; the handlers' lookups are remembered either way. The
    update's first statement, read before its transaction begins (UpdateTransaction.before_begin: a repeat is one
    round trip)."""
    label = item.invite_label or None
    with tx.before_begin() as conn:
        row = read_first(conn, _READ, {"platform": item.platform, "key": item.key, "chat": item.group_id,
                                       "user_id": item.user_id, "label": label})
    group = None if row.id is None else _Group(*(getattr(row, name) for name in _Group._fields))
    remember(join.group_key(item.platform, item.group_id), group)
    # None too: the join handler, which runs next, makes the member and remembers them (join.resolve)
    remember(join.member_key(item.platform, item.user_id), row.member_id)
    if label is not None:
        remember(join.holder_key(label), None if row.holder_id is None else
                 _Holder(row.holder_id, row.holder_entry_point_id, row.holder_tier))
        join.remember_entry(label, None if row.entry_id is None else
                            _Entry(row.entry_id, row.target_tier, row.code, row.channel, row.campaign))
    return bool(row.seen)
