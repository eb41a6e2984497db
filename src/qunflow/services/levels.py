"""Engagement levels for every member at once (issue 13; the rules: domain/engagement.py, docs/levels.md).

One set-based pass: the activity counts and the level of every joined member are computed by one
SELECT into a scratch table; a `level_changed` event is appended for each member whose level differs
from the stored one, and member_levels is updated for the rows that changed. No member row passes
through Python, so a million members take seconds (bench/bench_levels.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from qunflow.domain.engagement import LEVELS, LevelRules
from qunflow.errors import InvalidInput
from qunflow.store.db import scratch_only
from qunflow.store.eventlog import EVENT_LOCK_KEY
from qunflow.store.tables import automation_state, events, member_levels, members
from qunflow.workspace import Workspace

AS_OF_STATE = "levels_as_of"  # automation_state: the as-of day of the last computation
_scratch_meta = MetaData()
scratch = Table("qf_levels_new", _scratch_meta,  # per computation, on its own connection
                Column("member_id", String(40), nullable=False),  # no key: written once, read in full
                Column("level", String(16), nullable=False),
                Column("score", Integer, nullable=False),
                prefixes=["TEMPORARY"])


@dataclass
class LevelRun:
    as_of: date
    members: int = 0
    changed: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # members per level after the run


def _midnight(day: date, ws: Workspace) -> datetime:
    """The start of a local day (workspace zone) as naive UTC, the storage convention."""
    return datetime.combine(day, time(0), ws.settings.zone).astimezone(UTC).replace(tzinfo=None)


def levels_select(ws: Workspace, as_of: date, rules: LevelRules | None = None) -> Any:
    """member_id, level, score of every member who joined by the end of `as_of`, as one SELECT.

    The CASE mirrors domain.engagement.engagement_level with the day windows turned into UTC bounds:
    tenure < n days  <=>  joined at or after the local midnight starting day `as_of - n + 1`.
    """
    rules = rules or ws.settings.levels
    end = _midnight(as_of + timedelta(days=1), ws)
    recent_start = _midnight(as_of - timedelta(days=rules.recent_days - 1), ws)
    long_start = _midnight(as_of - timedelta(days=rules.long_days - 1), ws)
    new_start = _midnight(as_of - timedelta(days=rules.new_days - 1), ws)
    activity = (select(events.c.member_id,
                       func.sum(case((events.c.ts >= recent_start, 1), else_=0)).label("recent"),
                       func.count().label("long"))
                .where(events.c.type.in_(ws.settings.engagement_types), events.c.ts >= long_start,
                       events.c.ts < end, events.c.member_id.is_not(None))
                .group_by(events.c.member_id).subquery("activity"))
    recent = func.coalesce(activity.c.recent, 0)
    long = func.coalesce(activity.c.long, 0)
    score = rules.recent_weight * recent + long
    whens: list[tuple[Any, Any]] = [(members.c.joined_at >= new_start, literal("new"))] if rules.new_days else []
    whens += [(and_(recent > 0, score >= rules.core_score), literal("core")),
              (recent > 0, literal("active")),
              (or_(long > 0, members.c.joined_at >= long_start), literal("slipping"))]
    level = case(*whens, else_=literal("dormant"))
    return (select(members.c.id.label("member_id"), level.label("level"), score.label("score"))
            .select_from(members.outerjoin(activity, activity.c.member_id == members.c.id))
            .where(members.c.joined_at.is_not(None), members.c.joined_at < end))


def compute_levels(ws: Workspace, as_of: date | None = None) -> LevelRun:
    """Compute and store every member's level as of a local day (default today); returns the counts."""
    today = ws.local_today()
    as_of = as_of or today
    if as_of > today:
        raise InvalidInput(f"as-of day {as_of} is in the future (today is {today})",
                           zh=f"统计日 {as_of} 在未来(今天是 {today})")
    now = ws.clock()
    stamp = min(now, _midnight(as_of + timedelta(days=1), ws) - timedelta(seconds=1))
    run = LevelRun(as_of)
    with ws.engine.connect() as conn:
        # First the long part, every member's level into the connection's own scratch table: a read of the
        # state database that holds no write lock on it, so joins and sends go on meanwhile.
        with scratch_only(conn), conn.begin():
            conn.execute(text(f"DROP TABLE IF EXISTS {scratch.name}"))
            scratch.create(conn)
            conn.execute(scratch.insert().from_select(["member_id", "level", "score"], levels_select(ws, as_of)))
            run.members = int(conn.execute(select(func.count()).select_from(scratch)).scalar_one())
        # Then the writes, in one transaction: only the members whose level or score moved.
        with conn.begin():
            run.changed = _record_changes(conn, as_of, stamp, now)
            _store(conn, as_of)
            _set_as_of(conn, as_of)
            per_level = select(member_levels.c.level, func.count()).group_by(member_levels.c.level)
            counts = {str(level): int(count) for level, count in conn.execute(per_level)}
        with scratch_only(conn), conn.begin():
            scratch.drop(conn)
    run.counts = {name: counts.get(name, 0) for name in LEVELS}
    return run


def _changed(conn: Connection) -> tuple[Any, Any]:
    """The scratch rows joined to the stored levels, and the condition "the level moved"."""
    return (scratch.outerjoin(member_levels, member_levels.c.member_id == scratch.c.member_id),
            or_(member_levels.c.level.is_(None), member_levels.c.level != scratch.c.level))


def _record_changes(conn: Connection, as_of: date, stamp: datetime, now: datetime) -> int:
    """One `level_changed` event per member whose level moved (from: null for a first level)."""
    postgres = conn.dialect.name == "postgresql"
    joined, moved = _changed(conn)
    day = as_of.isoformat()
    build = func.json_build_object if postgres else func.json_object
    properties = build("from", member_levels.c.level, "to", scratch.c.level, "score", scratch.c.score,
                       "as_of", day)
    event_id = literal("lvl-") + scratch.c.member_id + literal(f"-{day}-") + scratch.c.level
    rows = (select(event_id, literal("level_changed"), literal(stamp), scratch.c.member_id, properties,
                   literal(now)).select_from(joined).where(moved))  # WHERE: SQLite's upsert-after-SELECT rule
    if postgres:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVENT_LOCK_KEY})
    statement = (pg_insert if postgres else sqlite_insert)(events).from_select(
        ["event_id", "type", "ts", "member_id", "properties", "received_at"], rows).on_conflict_do_nothing()
    if postgres:  # psycopg reports -1 for an INSERT ... SELECT: count the moves first (same transaction)
        changed = int(conn.execute(select(func.count()).select_from(joined).where(moved)).scalar_one())
        conn.execute(statement)
        return changed
    return int(conn.execute(statement).rowcount)  # SQLite counts the rows an INSERT ... SELECT wrote


def _store(conn: Connection, as_of: date) -> None:
    """Write the rows whose level or score changed; `since` moves only with the level."""
    postgres = conn.dialect.name == "postgresql"
    joined = scratch.outerjoin(member_levels, member_levels.c.member_id == scratch.c.member_id)
    rows = (select(scratch.c.member_id, scratch.c.level, scratch.c.score, literal(as_of), literal(as_of))
            .select_from(joined)
            .where(true(), or_(member_levels.c.level.is_(None), member_levels.c.level != scratch.c.level,
                               member_levels.c.score != scratch.c.score)))
    statement = (pg_insert if postgres else sqlite_insert)(member_levels).from_select(
        ["member_id", "level", "score", "since", "as_of"], rows)
    new = statement.excluded
    conn.execute(statement.on_conflict_do_update(
        index_elements=[member_levels.c.member_id],
        set_={"since": case((member_levels.c.level == new.level, member_levels.c.since), else_=new.since),
              "level": new.level, "score": new.score, "as_of": new.as_of}))


def _set_as_of(conn: Connection, as_of: date) -> None:
    from qunflow.services.automation import _set_state

    _set_state(conn, AS_OF_STATE, as_of.isoformat())


def last_as_of(ws: Workspace) -> date | None:
    with ws.engine.connect() as conn:
        value = conn.execute(select(automation_state.c.value).where(automation_state.c.name == AS_OF_STATE)).scalar()
    return date.fromisoformat(value) if value else None


def levels_tick(ws: Workspace) -> LevelRun:
    """`qunflow serve`'s hourly run: today's levels, then the pools and the tier rules (either may follow a
    level)."""
    from qunflow.services.pools import sync_pools
    from qunflow.services.tier_moves import rules_tick

    run = compute_levels(ws)
    sync_pools(ws)
    rules_tick(ws)
    return run


__all__ = ["LevelRun", "compute_levels", "last_as_of", "levels_select", "levels_tick"]
