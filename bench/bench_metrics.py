"""The metric suite at scale: ingest, shipping, and metrics by channel and by join week, cold and warm.

Compared in the same run with (a) the same metric SQL run by DuckDB straight over the Parquet file
(no workspace, no shipping: the floor for our engine path) and (b) a straightforward pandas version of
retention and conversion by channel (a subset of the suite, so the comparison flatters pandas).
Run: python bench/bench_metrics.py [--members 100000] [--engine duckdb|chdb|clickhouse]
(clickhouse: a server at QUNFLOW_CLICKHOUSE_URL, which should name a fresh database)
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

START, END, AS_OF = date(2026, 1, 1), date(2026, 4, 30), date(2026, 5, 31)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(results: list, label: str, run, n: int | None = None):  # type: ignore[no-untyped-def,type-arg]
    started = time.perf_counter()
    value = run()
    seconds = time.perf_counter() - started
    results.append((label, seconds, n / seconds if n else None, peak_mib()))
    return value


def floor_suite(parquet: Path, by: str) -> None:
    """Our metric SQL, by DuckDB directly over the Parquet file (a `events` view, no store, no shipping)."""
    import duckdb

    from qunflow.analytics.dialects import for_duckdb
    from qunflow.analytics.queries import COHORT, CURRENT, LANDING, render
    from qunflow.domain.metrics import Period
    from qunflow.settings import DEFAULT_CONVERSION, DEFAULT_ENGAGEMENT

    period = Period(START, END, AS_OF, __import__("zoneinfo").ZoneInfo("Asia/Shanghai"))
    conn = duckdb.connect()
    conn.execute(f"""CREATE VIEW events AS SELECT row_number() OVER () AS seq, event_id, type,
        CAST(ts AT TIME ZONE 'UTC' AS TIMESTAMP) AS ts, member_id, visitor_id, channel, NULL::VARCHAR AS campaign,
        NULL::VARCHAR AS entry_point, "group" AS group_key, referrer_id, amount, margin, properties
        FROM read_parquet('{parquet}')""")
    params = {"tz": "Asia/Shanghai", "cutoff": period.cutoff, "start": START, "end": END, "as_of": AS_OF,
              "engagement": DEFAULT_ENGAGEMENT, "conversion": DEFAULT_CONVERSION}
    for template in (COHORT, CURRENT, LANDING):
        sql, used = for_duckdb(render(template, by), params)
        conn.execute(sql, used).fetchall()
    conn.close()


def pandas_suite(parquet: Path) -> None:
    """D1/D7 retention and 30-day conversion by channel, the way an analyst might write it in pandas."""
    import pandas as pd

    frame = pd.read_parquet(parquet, columns=["type", "ts", "member_id", "channel"])
    frame["day"] = frame["ts"].dt.tz_convert("Asia/Shanghai").dt.date
    joins = (frame[frame["type"] == "joined"].sort_values("ts").drop_duplicates("member_id")
             .rename(columns={"ts": "join_ts", "day": "join_day"})[["member_id", "join_ts", "join_day", "channel"]])
    active = frame[frame["type"].isin(["message", "task_completed", "order"])][["member_id", "day", "ts", "type"]]
    merged = active.merge(joins, on="member_id")
    offset = (pd.to_datetime(merged["day"]) - pd.to_datetime(merged["join_day"])).dt.days
    d1 = merged[offset == 1].groupby("channel")["member_id"].nunique()
    d7 = merged[offset == 7].groupby("channel")["member_id"].nunique()
    orders = merged[(merged["type"] == "order") & (merged["ts"] >= merged["join_ts"])
                    & (merged["ts"] < merged["join_ts"] + pd.Timedelta(days=30))]
    converted = orders.groupby("channel")["member_id"].nunique()
    size = joins.groupby("channel")["member_id"].nunique()
    pd.DataFrame({"size": size, "d1": d1 / size, "d7": d7 / size, "conv": converted / size})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--engine", default="duckdb", choices=["duckdb", "chdb", "clickhouse"])
    args = parser.parse_args()
    from qunflow.analytics.shipper import ship
    from qunflow.services.ingest import import_event_file
    from qunflow.services.metrics import metrics_report
    from qunflow.sim.generator import generate
    from qunflow.workspace import init_workspace

    results: list = []  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        parquet = Path(tmp) / "events.parquet"
        table = timed(results, "generate (numpy)", lambda: generate(args.members))
        events = table.num_rows
        pq.write_table(table, parquet)
        del table
        ws = init_workspace(Path(tmp) / "ws")
        ws.settings.analytics_engine = args.engine
        if args.engine == "clickhouse" and not ws.settings.clickhouse_url:
            parser.error("--engine clickhouse needs QUNFLOW_CLICKHOUSE_URL")
        timed(results, "ingest: qunflow events import (Parquet)", lambda: import_event_file(ws.engine, parquet),
              events)
        timed(results, f"ship to {args.engine}", lambda: ship(ws), events)
        for by in ("channel", "cohort_week"):
            for run in ("cold", "warm"):
                timed(results, f"suite by {by} ({run}, qunflow)",
                      lambda b=by: metrics_report(ws, start=START, end=END, as_of=AS_OF, by=b))
            timed(results, f"suite by {by} (same SQL on Parquet, floor)", lambda b=by: floor_suite(parquet, b))
        try:
            timed(results, "pandas: D1/D7 + conversion by channel only", lambda: pandas_suite(parquet))
        except ImportError:
            results.append(("pandas not installed", 0.0, None, peak_mib()))
        ws.close()

    out = Table(title=f"Metric suite, {args.members:,} members, {events:,} events, engine {args.engine} "
                      "(2 cores; peak RSS is the process high-water mark so far)")
    for column in ("step", "seconds", "events/s", "peak RSS MiB"):
        out.add_column(column, justify="left" if column == "step" else "right")
    for label, seconds, rate, peak in results:
        out.add_row(label, f"{seconds:.2f}", f"{rate:,.0f}" if rate else "", f"{peak:,.0f}")
    Console(width=140).print(out)


if __name__ == "__main__":
    main()
