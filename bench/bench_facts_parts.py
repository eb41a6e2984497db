"""The ClickHouse facts' parts (facts_clickhouse.merge_parts) at scale: the dashboard page's CPU with the parts
that catch-ups leave unmerged, the merge's own CPU, and the page after it, on one chdb store.

    python bench/bench_facts_parts.py --data DIR [--ships 5]

DIR holds ../shared/floor/'s data (gen.py --members 1000000 --out DIR). The events but the last 50,000 (at most
5%) are loaded and the facts built, then those events are shipped in --ships catch-ups with the facts tables'
merges stopped (SYSTEM STOP MERGES: merge_parts leaves such tables alone, and ClickHouse's background merges
cannot blur the figures); the page is timed (`build_dashboard`, 1 warm run and 3 timed, median of the process's
CPU, chdb's threads included), merges are started, merge_parts is timed, and the page is timed again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_facts import LATE, LOAD_SPEND, chdb_store, period  # noqa: E402


def active_parts(engine: Any) -> dict[str, int]:
    from qunflow.analytics.facts_clickhouse import LOG_TABLES

    return dict(engine.query("SELECT table, count() FROM system.parts WHERE database = currentDatabase() AND active "
                             f"AND table IN {LOG_TABLES!r} GROUP BY table ORDER BY table", {})[1])


def page_cpu(ws: Any, data: Path) -> float:
    from qunflow.services.dashboard import build_dashboard

    start, as_of = period(data)
    build_dashboard(ws, start, as_of, as_of)
    runs = []
    for _ in range(3):
        began = time.process_time()
        build_dashboard(ws, start, as_of, as_of)
        runs.append(time.process_time() - began)
    return statistics.median(runs)


def run(data: Path, ws_dir: Path, ships: int) -> dict[str, Any]:
    import pyarrow as pa

    from qunflow.analytics.engines import open_engine
    from qunflow.analytics.facts import refresh_facts
    from qunflow.analytics.facts_clickhouse import LOG_TABLES, merge_parts
    from qunflow.analytics.shipper import SPEND_SCHEMA

    ws, source, append = chdb_store(data, ws_dir)
    total = source.execute(f"SELECT count(*) FROM read_parquet('{data}/events.parquet')").fetchall()[0][0]
    late = min(LATE, total // 20)  # as bench_facts: a small run keeps the catch-ups incremental
    first = total - late
    out: dict[str, Any] = {"events": total, "late_events": late, "ships": ships, "catch_up_cpu_s": []}
    with open_engine(ws) as engine:
        append(engine, f"e.event_id <= {first}")
        spend = source.sql(LOAD_SPEND.format(data=data).replace("INSERT INTO spend", "")).to_arrow_table()
        engine.replace_spend(pa.Table.from_arrays(spend.columns, names=SPEND_SCHEMA.names).cast(SPEND_SCHEMA))
        refresh_facts(engine, ws.settings)
        for table in LOG_TABLES:
            engine.command(f"SYSTEM STOP MERGES {table}")  # type: ignore[attr-defined]
        bounds = [first + late * i // ships for i in range(ships + 1)]
        for low, high in zip(bounds, bounds[1:], strict=False):
            append(engine, f"e.event_id > {low} AND e.event_id <= {high}")
            began = time.process_time()
            refresh_facts(engine, ws.settings)
            out["catch_up_cpu_s"].append(time.process_time() - began)
        out["parts_unmerged"] = active_parts(engine)
    out["page_unmerged_cpu_s"] = page_cpu(ws, data)
    with open_engine(ws) as engine:
        for table in LOG_TABLES:
            engine.command(f"SYSTEM START MERGES {table}")  # type: ignore[attr-defined]
        began = time.process_time()
        merge_parts(engine)
        out["merge_cpu_s"] = time.process_time() - began
        out["parts_merged"] = active_parts(engine)
    out["page_merged_cpu_s"] = page_cpu(ws, data)
    ws.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the floor's data directory")
    parser.add_argument("--ships", type=int, default=5, help="catch-ups the last 50,000 events arrive in")
    args = parser.parse_args()
    if not (args.data / "meta.json").exists():
        raise SystemExit(f"no floor data in {args.data}: python ../shared/floor/gen.py --members N --out {args.data}")
    with tempfile.TemporaryDirectory(prefix="qunflow-parts-") as tmp:
        out = run(args.data.resolve(), Path(tmp) / "ws", args.ships)
    out["load_average"] = os.getloadavg()[0]
    print(f"{out['ships']} catch-ups of the last {out['late_events']:,} events: CPU "
          f"{', '.join(f'{s:.2f}' for s in out['catch_up_cpu_s'])} s; parts left {out['parts_unmerged']}")
    print(f"dashboard page, median CPU: {out['page_unmerged_cpu_s']:.3f} s unmerged, "
          f"{out['page_merged_cpu_s']:.3f} s after merge_parts ({out['merge_cpu_s']:.3f} s CPU; parts "
          f"{out['parts_merged']}); load average {out['load_average']:.1f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
