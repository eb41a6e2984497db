"""Engagement levels for 1,000,000 members (goal: under 10 s), against a plain-SQL floor in the same run.

Data: N joined members (join days spread over 90 days) and about 3 events each over the last 45 days
(messages, check-ins, orders and landing views, which are not engagement), written by the database
itself. Timed:
- qunflow, first run: every member gets a first level (N level_changed events, N level rows);
- qunflow, next day: the steady state (only the moves are written);
- floor: the same counts and CASE in one hand-written SELECT that only counts members per level (no
  scratch table, no events, no writes): what reading the activity costs at the least.
The floor's counts must equal qunflow's, or the run fails.
Run: python bench/bench_levels.py [--members 1000000] [--db sqlite|postgres]
(postgres needs QUNFLOW_BENCH_POSTGRES_URL or QUNFLOW_TEST_POSTGRES_URL)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

AS_OF = date(2026, 6, 30)
ENGAGEMENT = "('message', 'task_completed', 'checkin', 'reaction', 'poll_vote', 'order', 'booking', " \
             "'signup', 'download', 'coupon_redeemed')"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def fill(conn, n: int, end: datetime, postgres: bool) -> None:  # type: ignore[no-untyped-def]
    """N members and their events, generated inside the database (the data is not what is timed)."""
    if postgres:
        series = f"generate_series(0, {n - 1}) AS g(i)"
        stamp = "(CAST(:end AS timestamp) - make_interval(secs => {s}))"
        member = "'m_' || i"
    else:
        series = f"(WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i < {n - 1}) " \
                 "SELECT i FROM g) AS g"
        stamp = "(datetime(:end, '-' || ({s}) || ' seconds') || '.000000')"
        member = "'m_' || i"
    joined = stamp.format(s="(i * 7919) % (90 * 86400)")
    conn.execute(text(f"INSERT INTO members (id, locale, tier, created_at, joined_at) "
                      f"SELECT {member}, 'zh', 'newbie', {joined}, {joined} FROM {series}"), {"end": end})
    kinds = "CASE j % 4 WHEN 0 THEN 'message' WHEN 1 THEN 'checkin' WHEN 2 THEN 'order' ELSE 'landing_view' END"
    ts = stamp.format(s="(i * 104729 + j * 7727) % (45 * 86400)")
    for j in range(7):  # member i has i % 7 events: 3 on average
        kind, when = kinds.replace("j %", f"{j} %"), ts.replace("j *", f"{j} *")
        conn.execute(text(f"INSERT INTO events (event_id, type, ts, member_id, received_at) "
                          f"SELECT 'b-' || i || '-' || {j}, {kind}, {when}, {member}, :end "
                          f"FROM {series} WHERE i % 7 > {j}"), {"end": end})


def floor_counts(conn, ws) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The same rules as domain/engagement.py, hand-written: members per level, nothing stored."""
    from qunflow.services.levels import _midnight

    rules = ws.settings.levels
    bounds = {"end": _midnight(AS_OF + timedelta(days=1), ws),
              "recent": _midnight(AS_OF - timedelta(days=rules.recent_days - 1), ws),
              "long": _midnight(AS_OF - timedelta(days=rules.long_days - 1), ws),
              "new": _midnight(AS_OF - timedelta(days=rules.new_days - 1), ws)}
    sql = f"""
        SELECT level, count(*) FROM (
          SELECT CASE WHEN m.joined_at >= :new THEN 'new'
                      WHEN coalesce(a.recent, 0) > 0
                           AND {rules.recent_weight} * coalesce(a.recent, 0) + coalesce(a.long, 0) >= {rules.core_score}
                           THEN 'core'
                      WHEN coalesce(a.recent, 0) > 0 THEN 'active'
                      WHEN coalesce(a.long, 0) > 0 OR m.joined_at >= :long THEN 'slipping'
                      ELSE 'dormant' END AS level
          FROM members m LEFT JOIN (
            SELECT member_id, sum(CASE WHEN ts >= :recent THEN 1 ELSE 0 END) AS recent, count(*) AS long
            FROM events WHERE type IN {ENGAGEMENT} AND ts >= :long AND ts < :end AND member_id IS NOT NULL
            GROUP BY member_id) a ON a.member_id = m.id
          WHERE m.joined_at IS NOT NULL AND m.joined_at < :end) x
        GROUP BY level"""
    if conn.dialect.name == "sqlite":  # bind as SQLAlchemy stores DateTime on SQLite
        bounds = {k: v.isoformat(" ", "microseconds") for k, v in bounds.items()}  # type: ignore[misc]
    return {str(level): int(count) for level, count in conn.execute(text(sql), bounds)}


def run(n: int, db: str) -> None:
    from qunflow.services.levels import compute_levels
    from qunflow.workspace import init_workspace

    console = Console()
    admin_url = os.environ.get("QUNFLOW_BENCH_POSTGRES_URL") or os.environ.get("QUNFLOW_TEST_POSTGRES_URL")
    name = None
    if db == "postgres":
        if not admin_url:
            sys.exit("postgres needs QUNFLOW_BENCH_POSTGRES_URL or QUNFLOW_TEST_POSTGRES_URL")
        from qunflow.store.db import normalise_url

        admin = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
        name = f"qf_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        os.environ["QUNFLOW_DATABASE_URL"] = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        with tempfile.TemporaryDirectory() as home:
            os.environ["QUNFLOW_SQLITE_SYNCHRONOUS"] = "normal"
            ws = init_workspace(Path(home) / "ws")
            end = datetime.combine(AS_OF, datetime.min.time(), ws.settings.zone).astimezone(UTC) \
                .replace(tzinfo=None) + timedelta(days=1)
            ws.clock = Clock(end - timedelta(minutes=1))
            started = time.perf_counter()
            with ws.engine.begin() as conn:
                fill(conn, n, end, db == "postgres")
            if db == "postgres":
                with ws.engine.begin() as conn:
                    conn.execute(text("ANALYZE"))
            console.print(f"data: {n:,} members written in {time.perf_counter() - started:.1f} s")

            started = time.perf_counter()
            with ws.engine.connect() as conn:
                floor = floor_counts(conn, ws)
            floor_s = time.perf_counter() - started
            started = time.perf_counter()
            first = compute_levels(ws, AS_OF - timedelta(days=1))
            first_s = time.perf_counter() - started
            started = time.perf_counter()
            steady = compute_levels(ws, AS_OF)
            steady_s = time.perf_counter() - started
            ws.close()
    finally:
        if name is not None and admin_url:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    ours = {k: v for k, v in steady.counts.items() if v}
    if ours != floor:
        sys.exit(f"the floor disagrees with qunflow: {floor} != {ours}")
    table = Table(title=f"engagement levels, {n:,} members, {db}")
    for column in ("run", "seconds", "members", "level changes"):
        table.add_column(column, justify="right")
    table.add_row("floor: one SELECT, counts only", f"{floor_s:.2f}", f"{sum(floor.values()):,}", "-")
    table.add_row("qunflow, first run (all new rows)", f"{first_s:.2f}", f"{first.members:,}", f"{first.changed:,}")
    table.add_row("qunflow, next day", f"{steady_s:.2f}", f"{steady.members:,}", f"{steady.changed:,}")
    console.print(table)
    console.print(f"levels: {steady.counts}; goal: < 10 s at 1,000,000 members")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    run(args.members, args.db)


if __name__ == "__main__":
    main()
