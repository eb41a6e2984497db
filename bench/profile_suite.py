"""Measure proposed rewrites of the metric SQL (analytics/queries.py) on a shipped analytics store.

Each variant is the product's template with a textual change, run on the same DuckDB file; the results
must be identical to the original's. Variants (combine the letters, e.g. R1DN):
  R1  retention without the DISTINCT (member, day) pass: join the cohort to `ev` directly (bool_or
      does not mind repeated days).
  N   `WITH ev AS NOT MATERIALIZED (`: DuckDB otherwise materialises `ev` (every event before the
      cutoff, all columns) because several CTEs read it.
  D   the local calendar day stored as an `events.day` column (computed once, at shipping) instead of
      @LOCAL_DAY(ts) per query; measured on a copy of the store with the column added.
Run: python bench/profile_suite.py WORKSPACE/analytics.duckdb [--by channel] [--variants base,R1,N,D,R1DN]
      [--explain COHORT]  (a bench_metrics.py --keep DIR run leaves DIR/ws/analytics.duckdb)
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from qunflow.analytics import queries
from qunflow.analytics.dialects import for_duckdb
from qunflow.analytics.queries import render
from qunflow.domain.metrics import Period
from qunflow.settings import DEFAULT_CONVERSION, DEFAULT_ENGAGEMENT

START, END, AS_OF, TZ = date(2026, 1, 1), date(2026, 4, 30), date(2026, 4, 30), "Asia/Shanghai"
TEMPLATES = ("COHORT", "CURRENT", "LANDING")

R1_OLD = """act AS (SELECT DISTINCT member_id, day FROM ev WHERE member_id IS NOT NULL AND @IN_LIST(type, engagement)),
retained AS (
    SELECT c.member_id AS member_id,
           @ANY_TRUE(a.day = c.join_day + 1) AS r1, @ANY_TRUE(a.day = c.join_day + 7) AS r7,
           @ANY_TRUE(a.day = c.join_day + 14) AS r14, @ANY_TRUE(a.day = c.join_day + 30) AS r30
    FROM cohort c JOIN act a ON a.member_id = c.member_id
    WHERE a.day IN"""
R1_NEW = """retained AS (  -- no DISTINCT (member, day) first: bool_or does not mind repeated days
    SELECT c.member_id AS member_id,
           @ANY_TRUE(a.day = c.join_day + 1) AS r1, @ANY_TRUE(a.day = c.join_day + 7) AS r7,
           @ANY_TRUE(a.day = c.join_day + 14) AS r14, @ANY_TRUE(a.day = c.join_day + 30) AS r30
    FROM cohort c JOIN ev a ON a.member_id = c.member_id
    WHERE @IN_LIST(a.type, engagement) AND a.day IN"""
EDITS = {
    "R1": [("COHORT", R1_OLD, R1_NEW)],
    "N": [(name, "WITH ev AS (", "WITH ev AS NOT MATERIALIZED (") for name in TEMPLATES],
    "D": [(name, "@LOCAL_DAY(ts) AS day", "day") for name in TEMPLATES],
}


def variant(name: str) -> dict[str, str]:
    """The three templates with the edits of every letter group in `name` ("base" = unchanged)."""
    texts = {t: getattr(queries, t) for t in TEMPLATES}
    for key, edits in EDITS.items():
        if key in name:
            for template, old, new in edits:
                if old not in texts[template]:
                    raise SystemExit(f"{key}: queries.{template} no longer contains the text to replace")
                texts[template] = texts[template].replace(old, new)
    return texts


def params() -> dict[str, Any]:
    period = Period(START, END, AS_OF, ZoneInfo(TZ))
    return {"tz": TZ, "cutoff": period.cutoff, "start": START, "end": END, "as_of": AS_OF,
            "engagement": DEFAULT_ENGAGEMENT, "conversion": DEFAULT_CONVERSION}


def with_day_column(source: Path, target: Path) -> None:
    shutil.copy(source, target)
    conn = duckdb.connect(str(target))
    conn.execute("ALTER TABLE events ADD COLUMN day DATE")
    conn.execute("UPDATE events SET day = CAST(timezone($tz, ts AT TIME ZONE 'UTC') AS DATE)", {"tz": TZ})
    conn.close()


def run(path: Path, name: str, by: str) -> tuple[dict[str, float], list[Any]]:
    """Seconds per template on a fresh connection, and the sorted results."""
    conn = duckdb.connect(str(path), read_only=True)
    seconds, results = {}, []
    for template, text in variant(name).items():
        sql, used = for_duckdb(render(text, by), params())
        started = time.perf_counter()
        results.append(sorted(conn.execute(sql, used).fetchall(), key=str))
        seconds[template] = time.perf_counter() - started
    conn.close()
    return seconds, results


def explain(path: Path, name: str, by: str, template: str, top: int = 8) -> None:
    """DuckDB's profile of one template: peak buffer memory and the most expensive operators."""
    sql, used = for_duckdb(render(variant(name)[template], by), params())
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "profile.json"
        conn = duckdb.connect(str(path), read_only=True)
        conn.execute("PRAGMA enable_profiling = 'json'")
        conn.execute(f"PRAGMA profiling_output = '{output}'")
        conn.execute(sql, used).fetchall()
        conn.close()
        tree = json.loads(output.read_text())
    operators: list[tuple[float, str, str]] = []

    def walk(node: dict[str, Any]) -> None:
        operators.append((node.get("timing", 0.0), node.get("name", ""), json.dumps(node.get("extra_info"))[:150]))
        for child in node.get("children", []):
            walk(child)

    for root in tree["operator"]:
        walk(root)
    print(f"{template} {name}: cpu {tree['query']['cpu_time']:.2f} s, "
          f"peak buffer {tree['system']['peak_buffer_memory'] / 2**20:,.0f} MiB")
    for seconds, operator, info in sorted(operators, reverse=True)[:top]:
        print(f"  {seconds:6.2f} s {operator} {info}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--by", default="channel")
    parser.add_argument("--variants", default="base,R1,N,D,R1DN")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (the machine is shared)")
    parser.add_argument("--explain", choices=TEMPLATES)
    args = parser.parse_args()
    names = args.variants.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        day_store = Path(tmp) / "with_day.duckdb"
        if any("D" in name for name in names):
            with_day_column(args.store, day_store)
        baseline = run(args.store, "base", args.by)[1]
        for round_ in range(1, args.rounds + 1):
            for name in names:
                seconds, results = run(day_store if "D" in name else args.store, name, args.by)
                parts = ", ".join(f"{t} {s:.2f}" for t, s in seconds.items())
                print(f"round {round_} {name:6} by {args.by}: {sum(seconds.values()):5.2f} s ({parts}); "
                      f"results {'identical' if results == baseline else 'DIFFERENT'}", flush=True)
        if args.explain:
            for name in names:
                explain(day_store if "D" in name else args.store, name, args.by, args.explain)


if __name__ == "__main__":
    main()
