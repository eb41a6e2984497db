"""A join request's first lookups in one read.

services/inbound.py first reads whether an update was handled before; a join request's handlers then look up the
managed group behind the chat (services/join.py group_row), the member behind the user (member_of_user) and, for a
person not known yet, what the link's label names: a gate pass's member (the ticket holder), else an entry point
(_entry_by_code); the welcome handler then reads the welcome and the experiments in force (services/welcome_docs.py
active_welcome, services/experiments.py documents). One statement reads all seven, and what it found is
remembered for the update (store/memo.py), found or not, so the handlers run unchanged and find it there. A member
not found is remembered as not found here only: the update's first handler (join.on_join_request) is the one that
makes them, and remembers them. A label the platform did not report is looked up by nobody: nothing is remembered
for it. A welcome or experiment applied while the update runs is used from the next update on, as if it had come a
few milliseconds later.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from sqlalchemy import and_, bindparam, exists, literal_column, select

from qunflow.connectors.base import JoinRequested
from qunflow.services import experiments, join, welcome_docs
from qunflow.store.db import UpdateTransaction
from qunflow.store.memo import remember
from qunflow.store.plain import flag, read_first
from qunflow.store.tables import entry_points, groups, identities, inbound_updates, members

# The lookups this read stands in for (services/join.py), each part's columns read under its name as a prefix.
# The rows remembered have those lookups' own shape (their columns' names, as store/plain.py read_plain names
# them), so a column added to one of them comes here too. Each part's first column is its row's id: NULL when
# the outer join found no row.
_PARTS = {"group": join._GROUP_BY_CHAT, "holder": join._TICKET_HOLDER, "entry": join._ENTRY_BY_CODE}
_ROWS: dict[str, Any] = {part: namedtuple(f"{part.title()}Row", [c.key for c in statement.selected_columns],  # type: ignore[misc]
                                           rename=True) for part, statement in _PARTS.items()}
_ONE = select(literal_column("1").label("one")).subquery("one")  # one row, whatever the joins find
_READ = select(
    flag(exists().where(inbound_updates.c.platform == bindparam("platform"),
                        inbound_updates.c.key == bindparam("key"))).label("seen"),
    identities.c.member_id,
    *(column.label(f"{part}_{column.key}") for part, statement in _PARTS.items()
      for column in statement.selected_columns),
    welcome_docs.IN_FORCE_VERSION.label("welcome_version"), welcome_docs.IN_FORCE_DIGEST.label("welcome_digest"),
    experiments.IN_FORCE_NAMES.label("experiments"),
).select_from(
    _ONE.outerjoin(groups, and_(groups.c.platform == bindparam("platform"), groups.c.external_id == bindparam("chat")))
    .outerjoin(identities, and_(identities.c.platform == bindparam("platform"),
                                identities.c.external_user_id == bindparam("user_id")))
    .outerjoin(members, members.c.join_ticket == bindparam("label"))
    .outerjoin(join._WITH_CHANNEL, entry_points.c.code == bindparam("label")))


def _part(row: Any, part: str) -> Any:
    """The row one lookup would have read (None: it found none)."""
    fields = _ROWS[part]._fields
    values = [getattr(row, f"{part}_{name}") for name in fields]
    return None if values[0] is None else _ROWS[part]._make(values)


def handled_before(tx: UpdateTransaction, item: JoinRequested) -> bool:
    """Whether the request was handled to the end before; the handlers' lookups are remembered either way. The
    update's first statement, read before its transaction begins (UpdateTransaction.before_begin: a repeat is one
    round trip)."""
    label = item.invite_label or None
    with tx.before_begin() as conn:
        row = read_first(conn, _READ, {"platform": item.platform, "key": item.key, "chat": item.group_id,
                                       "user_id": item.user_id, "label": label})
    remember(join.group_key(item.platform, item.group_id), _part(row, "group"))
    # None too: the join handler, which runs next, makes the member and remembers them (join.resolve)
    remember(join.member_key(item.platform, item.user_id), row.member_id)
    if label is not None:
        remember(join.holder_key(label), _part(row, "holder"))
        join.remember_entry(label, _part(row, "entry"))
    # what the welcome reads next (services/welcome.py): the welcome and the experiments in force
    remember(welcome_docs.IN_FORCE_KEY, None if row.welcome_version is None else
             welcome_docs.InForce(row.welcome_version, row.welcome_digest))
    remember(experiments.IN_FORCE_KEY, row.experiments)
    return bool(row.seen)
