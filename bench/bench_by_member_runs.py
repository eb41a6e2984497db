"""DuckDB's copy of the events ordered by member (analytics/by_member.py) as it grows: what the read that finds the
tail too large pays, and what a catch-up's lookup of its members costs in each shape of the copy.

    python bench/bench_by_member_runs.py --store WS/analytics.duckdb [--tail 0.2] [--runs 1] [--members 20]

WS is a workspace bench_metrics.py kept (`--keep DIR`: DIR/ws). The store is copied to a temporary file first.
The copy is made of the events but the last --tail share of them (a copy whose tail just reached the share), then:

- tail: the lookup of --members random members (by_member.events_of: from the copy, plus the tail read from
  `events`), --repeat times with other members, median of the process's CPU (DuckDB's threads included);
- run: by_member.extend appends the tail as a run sorted by member (timed: what the read that crossed the share
  pays now), then the same lookups; with --runs K the tail is appended as K runs in turn (a copy that grew by
  K sorted runs; the last one timed);
- whole (the baselines, in the same run): by_member.build sorts every event again (timed: what that read paid
  before), then the same lookups; and the lookups on the events without a copy.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from qunflow.analytics import by_member  # noqa: E402


def timed(work: Callable[[], Any]) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return {"cpu_s": round(time.process_time() - cpu, 3), "wall_s": round(time.perf_counter() - wall, 3)}


def lookups(conn: Any, members: list[str], top: int | None, size: int, repeat: int) -> dict[str, float]:
    """The median (and range) CPU of reading `size` random members' events as a catch-up does."""
    spent, found = [], []
    for k in range(repeat):
        chosen = random.Random(k).sample(members, size)
        conn.execute("CREATE OR REPLACE TEMP TABLE touched AS SELECT unnest(?::VARCHAR[]) AS member_id", [chosen])
        sql = f"SELECT count(*), sum(length(type)) FROM ({by_member.events_of('touched', top)})"
        spent.append(timed(lambda sql=sql: found.append(conn.execute(sql).fetchall()[0][0]))["cpu_s"])
    return {"median_ms": round(statistics.median(spent) * 1000, 1), "min_ms": round(min(spent) * 1000, 1),
            "max_ms": round(max(spent) * 1000, 1), "events_found": sum(found)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="a kept workspace's analytics.duckdb")
    parser.add_argument("--tail", type=float, default=0.2, help="the tail's share of the events")
    parser.add_argument("--runs", type=int, default=1, help="the tail appended as this many runs")
    parser.add_argument("--members", type=int, default=20, help="members per lookup")
    parser.add_argument("--repeat", type=int, default=8)
    args = parser.parse_args()
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "analytics.duckdb"
        shutil.copy(args.store, path)
        conn = duckdb.connect(str(path))
        count, highest = conn.execute("SELECT count(*), max(seq) FROM events").fetchall()[0]
        top = conn.execute("SELECT quantile_disc(seq, ?) FROM events", [1 - args.tail]).fetchall()[0][0]
        members = sorted(r[0] for r in conn.execute("SELECT DISTINCT member_id FROM events WHERE member_id IS NOT "
                                                    "NULL USING SAMPLE 5000 ROWS").fetchall())
        out: dict[str, Any] = {"events": count, "tail_events": highest - top if highest else 0, "runs": args.runs,
                               "members": args.members}
        conn.execute(f"SET memory_limit = '{by_member.SORT_MEMORY}'")
        conn.execute(f"CREATE OR REPLACE TABLE {by_member.TABLE} AS SELECT {by_member.COLUMNS} FROM events "
                     f"WHERE member_id IS NOT NULL AND seq <= {int(top)} ORDER BY member_id, seq")
        conn.execute("RESET memory_limit")
        out["lookup_tail"] = lookups(conn, members, top, args.members, args.repeat)
        bounds = [conn.execute("SELECT quantile_disc(seq, ?) FROM events WHERE seq > ?",
                               [k / args.runs, top]).fetchall()[0][0] for k in range(1, args.runs)]
        for low, high in zip([top, *bounds], bounds, strict=False):  # the runs before the last
            conn.execute(f"INSERT INTO {by_member.TABLE} SELECT {by_member.COLUMNS} FROM events WHERE seq > {low} "
                         f"AND seq <= {high} AND member_id IS NOT NULL ORDER BY member_id, seq")
        out["extend"] = timed(lambda: by_member.extend(conn, by_member.upto(conn) or top))
        out["lookup_run"] = lookups(conn, members, by_member.upto(conn), args.members, args.repeat)
        out["build"] = timed(lambda: by_member.build(conn))
        out["lookup_whole"] = lookups(conn, members, by_member.upto(conn), args.members, args.repeat)
        out["lookup_no_copy"] = lookups(conn, members, None, args.members, args.repeat)
        conn.close()
    print(f"{count:,} events, tail {args.tail:.0%} in {args.runs} run(s); "
          f"lookups of {args.members} members, median CPU")
    print(f"  the read that crossed the share: sorted run {out['extend']['wall_s']} s wall "
          f"({out['extend']['cpu_s']} s CPU), whole copy sorted again {out['build']['wall_s']} s wall "
          f"({out['build']['cpu_s']} s CPU): {out['extend']['wall_s'] / out['build']['wall_s']:.2f}x")
    for shape in ("tail", "run", "whole", "no_copy"):
        print(f"  lookup, {shape}: {out['lookup_' + shape]['median_ms']} ms")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
