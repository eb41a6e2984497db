"""Pools (issue 13): members gathered by a segment rule and stored, and their repeat-order rate by entry week.

The rules are settings (`[qunflow.pools.<name>]`, domain/pools.py); `sync_pools` adds the members a rule
now selects (set-based, one INSERT ... SELECT per pool; a member stays in a pool once entered). The
repurchase pool's own playbook is src/qunflow/playbooks/repurchase_reminder.yaml.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, func, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from qunflow.domain.pools import PoolRule, weekly_repeat
from qunflow.errors import NotFound
from qunflow.store.tables import events, member_levels, member_tags, pool_members
from qunflow.workspace import Workspace


def pool_rule(ws: Workspace, name: str) -> PoolRule:
    rule = ws.settings.pools.get(name)
    if rule is None:
        known = ", ".join(sorted(ws.settings.pools)) or "none"
        raise NotFound(f"no pool {name!r} (pools: {known}; define it in qunflow.toml as a qunflow.pools.{name} table)",
                       zh=f"没有复购池 {name!r}(现有:{known};请在 qunflow.toml 中以 qunflow.pools.{name} 表定义)")
    return rule


def sync_pools(ws: Workspace) -> dict[str, int]:
    """Add every member each pool's rule selects now; returns how many entered each pool."""
    now = ws.clock()
    added: dict[str, int] = {}
    with ws.engine.begin() as conn:
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        for name, rule in sorted(ws.settings.pools.items()):
            if rule.tag is not None:  # entered when tagged
                rows = select(literal(name), member_tags.c.member_id, member_tags.c.added_at,
                              literal(f"tag:{rule.tag}")).where(member_tags.c.tag == rule.tag)
            else:  # entered when this sync first saw the level
                rows = select(literal(name), member_levels.c.member_id, literal(now),
                              literal(f"level:{rule.level}")).where(member_levels.c.level == rule.level)
            statement = insert(pool_members).from_select(["pool", "member_id", "entered_at", "source"], rows)
            before = _size(conn, name)
            conn.execute(statement.on_conflict_do_nothing())
            added[name] = _size(conn, name) - before  # psycopg reports -1 rows for an INSERT ... SELECT
    return added


def _size(conn: Any, name: str) -> int:
    return int(conn.execute(select(func.count()).select_from(pool_members).where(pool_members.c.pool == name))
               .scalar_one())


def pool_stats(ws: Workspace, name: str, as_of: date | None = None) -> dict[str, Any]:
    """The repeat-order rate within the pool's `days`, split by entry week, as of a local day (default today)."""
    rule = pool_rule(ws, name)
    as_of = as_of or ws.local_today()
    cutoff = datetime.combine(as_of + timedelta(days=1), time(0), ws.settings.zone).astimezone(UTC) \
        .replace(tzinfo=None)
    first_order = func.min(events.c.ts)
    query = (select(pool_members.c.entered_at, first_order)
             .select_from(pool_members.outerjoin(events, and_(
                 events.c.member_id == pool_members.c.member_id,
                 events.c.type.in_(ws.settings.conversion_types),
                 events.c.ts > pool_members.c.entered_at, events.c.ts < cutoff)))
             .where(pool_members.c.pool == name, pool_members.c.entered_at < cutoff)
             .group_by(pool_members.c.member_id, pool_members.c.entered_at))
    with ws.engine.connect() as conn:
        rows = [(entered, first) for entered, first in conn.execute(query)]
    weeks = weekly_repeat(rows, rule.days, cutoff, ws.settings.zone)
    mature = sum(w["mature"] for w in weeks)
    repeated = sum(w["repeated"] for w in weeks)
    return {"pool": name, "days": rule.days, "as_of": as_of, "members": len(rows), "weeks": weeks,
            "total": {"mature": mature, "repeated": repeated, "rate": repeated / mature if mature else None}}


__all__ = ["pool_rule", "pool_stats", "sync_pools"]
