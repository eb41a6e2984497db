"""Recovery: finishing the work a crash of `qunflow serve` left half done.

`sweep` runs when `serve` starts and then every minute (services.runtime). It
- settles sends left "pending" against the platform where it can tell (engine.outbox.settle_pending);
  where it cannot (Telegram, WeCom), the outbox's own rule applies once the send's lease runs out;
- welcomes members whose join was recorded but whose welcome was never tried, on platforms where a
  bot may write first (dm_policy "any"); elsewhere the window token (Telegram's user_chat_id, WeCom's
  welcome code) came only with the update, which the platform delivers again instead;
- gives members welcomed without their Day-1 tasks their tasks.
Platform updates qunflow never acknowledged are the platform's to deliver again: the sandbox does
(SandboxPlatform.redeliver, on its own loop in `serve`), Telegram retries a webhook and a poll starts
from the last confirmed update, WeCom retries a callback three times.
Every step is idempotent: the sweep may run while joins come in, and in several processes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, literal, select

from qunflow.domain.welcome import DM_KEY_PREFIX, pick_language
from qunflow.engine import outbox
from qunflow.errors import QunflowError
from qunflow.services.welcome import Arrival, ensure_day1_tasks, welcome
from qunflow.store import event_indexes
from qunflow.store.tables import deliveries, events, groups, identities, member_tasks, members
from qunflow.workspace import Workspace

log = logging.getLogger("qunflow")

LOOK_BACK = timedelta(days=1)  # joins older than this are not welcomed late: a welcome a day late is noise
GRACE = timedelta(seconds=30)  # on the timer: work younger than this may still be under way
SWEEP_SECONDS = 60.0
NAMELESS = {"zh": "朋友", "en": "there"}  # the welcome's {{ name }} when neither the gate nor the update gave one


@dataclass
class Swept:
    """What one sweep finished."""

    sends_recorded: int = 0  # pending sends that had arrived: now recorded as sent
    sends_due_again: int = 0  # pending sends that had not: due again (platforms that deduplicate)
    welcomed: int = 0
    tasks_assigned: int = 0

    def __bool__(self) -> bool:
        return any((self.sends_recorded, self.sends_due_again, self.welcomed, self.tasks_assigned))


def sweep(ws: Workspace, *, before: datetime | None = None) -> Swept:
    """Finish interrupted work started before `before` (default: GRACE ago; at start-up: the start)."""
    now = ws.clock()
    before = before or now - GRACE
    swept = Swept()
    swept.sends_recorded, swept.sends_due_again = outbox.settle_pending(ws, before)
    for member_id, platform, user_id in _joined_unwelcomed(ws, before):
        try:
            _welcome_late(ws, member_id, platform, user_id)
            swept.welcomed += 1
        except QunflowError as exc:  # e.g. the platform was disconnected since: the next sweep tries again
            log.warning("recovery: welcome of %s not sent: %s", member_id, exc)
    for member_id in _welcomed_without_tasks(ws, before):
        swept.tasks_assigned += ensure_day1_tasks(ws, member_id) > 0
    if swept:
        log.info("recovery: %s", swept)
    return swept


def _recent_joins(before: datetime) -> list[ColumnElement[bool]]:
    """Members whose join was recorded between LOOK_BACK and `before`, still in their group."""
    m = members.c
    last_move = (select(events.c.type).where(events.c.member_id == m.id, events.c.type.in_(("joined", "left")))
                 .order_by(events.c.seq.desc()).limit(1).scalar_subquery())
    return [m.joined_at.is_not(None), m.joined_at >= before - LOOK_BACK, m.joined_at <= before,
            last_move == "joined"]


def _joined_unwelcomed(ws: Workspace, before: datetime) -> list[tuple[str, str, str]]:
    """(member, platform, user) of joins with no welcome tried, on platforms where a bot may write first."""
    writes_first = [name for name in ws.connected_platforms()
                    if ws.connector(name).capabilities.dm_policy == "any"]
    if not writes_first:
        return []
    welcomed = exists().where(deliveries.c.idempotency_key == literal(DM_KEY_PREFIX) + members.c.id)
    query = (select(members.c.id, identities.c.platform, identities.c.external_user_id)
             .join(identities, identities.c.member_id == members.c.id)
             .join(groups, and_(groups.c.id == members.c.group_id, groups.c.platform == identities.c.platform))
             .where(*_recent_joins(before), ~welcomed, identities.c.platform.in_(writes_first))
             .order_by(members.c.joined_at))
    with ws.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


def _welcome_late(ws: Workspace, member_id: str, platform: str, user_id: str) -> None:
    with ws.engine.connect() as conn:
        member = conn.execute(select(members.c.locale, members.c.joined_at, members.c.group_id)
                              .where(members.c.id == member_id)).one()
        group = conn.execute(select(groups).where(groups.c.id == member.group_id)).first()
    name = NAMELESS[pick_language(member.locale)]
    welcome(ws, member_id, Arrival(platform, user_id, name, member.joined_at, None, group, None))


def _welcomed_without_tasks(ws: Workspace, before: datetime) -> list[str]:
    welcomed = exists().where(deliveries.c.idempotency_key == literal(DM_KEY_PREFIX) + members.c.id)
    has_tasks = exists().where(member_tasks.c.member_id == members.c.id)
    with ws.engine.connect() as conn:
        return list(conn.execute(select(members.c.id).where(*_recent_joins(before), welcomed, ~has_tasks)).scalars())


class Sweeper:
    """The `serve` loop's step: the first sweep finishes everything started before this process; later ones
    what is older than GRACE."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.started = ws.clock()
        self.first = True

    def __call__(self) -> Swept:
        before = self.started if self.first else None
        swept = sweep(self.ws, before=before)
        self.first = False
        # An import killed while this process ran left the event log's secondary indexes out; until they are
        # built, the join path's reads by member scan the whole log (one query when none is missing).
        event_indexes.restore(self.ws.engine)
        return swept
