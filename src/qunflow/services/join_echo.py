"""A member update that only echoes a join handled to the end, decided in one read.

Telegram sends a `chat_member` update for every join it makes, the ones qunflow's own approvals make too: by
then the approval recorded the join (services/join.py approve_request) and the welcome went out, so the join
handlers would each read to find nothing to do (about nine reads: the group, the member, their last join or
leave, an offered tier move, the welcome DM's record, the welcome in force, the locale, the menu's record). One
statement reads what those reads decide, with the handled mark that `services.inbound` reads first anyway;
only when it finds something left to do do the handlers run, and they read for themselves as before.

Nothing to do means, as each handler sees it:
- services/join.py: the group is not managed, or the member is in it (their last join or leave is a join);
- services/tier_moves.py: the member has no offered move;
- services/welcome.py: the welcome DM was recorded, and on a platform that posts to groups the menu of the
  current batch too. The batch key depends on the welcome in force: the one this process last read is assumed,
  and the statement checks that its digest is still the one in force.
"""

from __future__ import annotations

from sqlalchemy import Integer, String, and_, bindparam, exists, literal, literal_column, or_, select

from qunflow.connectors.base import MemberJoined
from qunflow.domain.welcome import DM_KEY_PREFIX
from qunflow.services import join, welcome
from qunflow.services import tier_moves as moves
from qunflow.services.welcome import menu_batch
from qunflow.services.welcome_docs import IN_FORCE_DIGEST, last_in_force
from qunflow.store.db import UpdateTransaction
from qunflow.store.plain import flag, read_first
from qunflow.store.tables import deliveries, events, groups, identities, inbound_updates, tier_moves
from qunflow.workspace import Workspace

# The handlers whose "nothing to do" the statement below decides, in their order (services/inbound.py HANDLERS):
# the update takes this shortcut only while these are its handlers, so a handler added there is never skipped.
STANDS_IN_FOR = (join.on_member_joined, moves.on_member_joined, welcome.on_member_joined)


_ONE = select(literal_column("1").label("one")).subquery("one")  # one row, whether or not the group is managed
_MEMBER = identities.c.member_id
_LAST_JOIN_OR_LEAVE = (select(events.c.type)
                       .where(events.c.member_id == _MEMBER, events.c.group_key == groups.c.key,
                              or_(events.c.type == "joined", events.c.type == "left"))
                       .order_by(events.c.seq.desc()).limit(1).scalar_subquery())
_ECHO = (select(
    flag(exists().where(inbound_updates.c.platform == bindparam("platform"),
                        inbound_updates.c.key == bindparam("key"))).label("seen"),
    groups.c.id.label("group_id"),
    _MEMBER.label("member_id"),
    _LAST_JOIN_OR_LEAVE.label("last"),
    flag(exists().where(tier_moves.c.open_key == _MEMBER, tier_moves.c.status == "offered")).label("offered"),
    flag(exists().where(deliveries.c.idempotency_key == literal(DM_KEY_PREFIX, String) + _MEMBER)).label("welcomed"),
    flag(exists().where(deliveries.c.idempotency_key == literal("welcome_menu:", String) + groups.c.key
                        + bindparam("menu_batch", type_=String))).label("menu"),
    IN_FORCE_DIGEST.label("digest"),
).select_from(_ONE.outerjoin(groups, and_(groups.c.platform == bindparam("platform"),
                                          groups.c.external_id == bindparam("chat")))
              .outerjoin(identities, and_(identities.c.platform == bindparam("platform"),
                                          identities.c.external_user_id == bindparam("user_id")))))
assert all(isinstance(c.type, Integer | String) for c in _ECHO.selected_columns)


def handled_or_echo(ws: Workspace, tx: UpdateTransaction, item: MemberJoined) -> bool:
    """Whether the update was handled before, or is an echo its handlers would find nothing to do for.
    The update's first statement, read before its transaction begins (UpdateTransaction.before_begin)."""
    digest, config = last_in_force()
    with tx.before_begin() as conn:
        row = read_first(conn, _ECHO, {"platform": item.platform, "key": item.key, "chat": item.group_id,
                                       "user_id": item.user_id, "menu_batch": f":{menu_batch(config, ws.clock())}"})
    if row.seen or row.group_id is None:  # handled to the end, or not a group qunflow manages
        return True
    if row.member_id is None or row.last != "joined" or row.offered or not row.welcomed:
        return False
    return not ws.connector(item.platform).capabilities.posts_to_groups or bool(row.menu and row.digest == digest)
