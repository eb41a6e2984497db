"""Cohort metrics from per-member facts (issue 15) against ../shared/floor/'s DuckDB suite, on the same data.

One run: the floor's generator makes the data (seeded; kept between runs under --data), the floor's DuckDB
suite runs in its own process (median of 3 warm suites, as the floor's run.py reports it), then qunflow in its
own process: the floor's events loaded into a qunflow analytics store (ids as text, channel names, the tier on
the join, as `qunflow events import` would hold them), the facts built, then `metrics_report` by channel and by
cohort week, from the facts and from the events, median of 3 warm runs of both slices together. It also times
keeping the facts up to date when the last 50,000 events arrive after the rest (one ship's worth), checks the
kept facts against a rebuild, and checks the facts path gives the very same reports as the event path.

    python bench/bench_facts.py --members 1000000 [--engine duckdb|chdb|both]

With chdb (the default runs both engines, as issue 15 asks), the same events go into an embedded ClickHouse
store through the engine's own append (Arrow chunks read from the DuckDB load query), the facts are built and
kept up there (analytics/facts_clickhouse.py), and both slices are timed from facts and from events; the facts
are also read through argMax(row, version) GROUP BY member instead of FINAL, to compare the two exact reads.
On both engines the dashboard page's server time comes last (`dashboard_times`: wall and the process's CPU).

Goal at 1M members: both slices together <= 1.5x the floor suite, peak RSS <= 2 GiB.
Loading the store straight from Parquet leaves out import and shipping (see bench_metrics.py for those).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FLOOR = Path(os.environ.get("QUNFLOW_FLOOR", ROOT.parent / "shared" / "floor"))
LANDING_CAP_S = int(os.environ.get("BENCH_LANDING_CAP_S", "600"))  # chdb's LANDING from the events, at most
LATE = 50_000  # events arriving after the facts were built: one ship's worth
SLICES = ("channel", "cohort_week")
GOALS = {"slices_vs_floor": 1.5, "peak_mib": 2048.0}

# The floor's events as qunflow's rows (ARROW_SCHEMA's columns, in its order); INSERT_EVENTS puts them in a store.
LOAD_EVENTS = """
SELECT e.event_id, CAST(e.event_id AS VARCHAR), e.type, timezone('UTC', e.ts), 'm' || e.member_id, NULL, c.name,
       NULL, NULL, 'g' || e.group_id, 'm' || e.referrer_id, CAST(e.amount AS DECIMAL(18, 4)),
       CAST(e.margin AS DECIMAL(18, 4)), CASE WHEN e.amount IS NOT NULL THEN 'CNY' END, NULL, NULL,
       CASE WHEN e.type = 'joined' THEN json_object('tier', g.tier) END
FROM read_parquet('{data}/events.parquet') e
LEFT JOIN read_parquet('{data}/channels.parquet') c ON c.id = e.channel_id
LEFT JOIN read_parquet('{data}/groups.parquet') g ON g.id = e.group_id
WHERE {where} ORDER BY e.event_id
"""
INSERT_EVENTS = """
INSERT INTO events (seq, event_id, type, ts, member_id, visitor_id, channel, campaign, entry_point, group_key,
                    referrer_id, amount, margin, currency, experiment, variant, properties)
"""
LOAD_SPEND = """
INSERT INTO spend SELECT c.name, s.day, CAST(s.amount AS DECIMAL(18, 4)), 'CNY'
FROM read_parquet('{data}/spend.parquet') s JOIN read_parquet('{data}/channels.parquet') c ON c.id = s.channel_id
"""


def period(data: Path) -> tuple[date, date]:
    meta = json.loads((data / "meta.json").read_text())
    start = date.fromisoformat(meta["start_date"])
    return start, start + timedelta(days=meta["days"] - 1)


def load_rows(conn: Any, data: Path, zone: str, after: int, upto: int) -> None:
    """The floor's events after..upto (event ids, which become seqs) into a DuckDB store as the shipper leaves
    them: their local day stored (store.insert_events) and the watermark moved."""
    from qunflow.analytics.dialects import local_day_duckdb

    conn.execute(INSERT_EVENTS + LOAD_EVENTS.format(data=data, where=f"e.event_id > {after} AND e.event_id <= {upto}"))
    conn.execute(f"UPDATE events SET day = {local_day_duckdb('ts', zone)} WHERE seq > {after}")
    conn.execute("INSERT OR REPLACE INTO event_day_zone VALUES (1, ?)", [zone])
    conn.execute("INSERT OR REPLACE INTO ship_state SELECT 1, max(seq) FROM events")


# ---- stages, each in its own process ------------------------------------------------------------------------

def stage_load(data: Path, ws_dir: Path) -> dict[str, Any]:
    """The floor's data into a qunflow analytics store; the facts built, then kept up as LATE events arrive."""
    from qunflow.analytics.engines import DuckDBEngine
    from qunflow.analytics.facts import refresh_facts
    from qunflow.analytics.facts_duckdb import _rebuild, _rebuild_landings
    from qunflow.analytics.store import connect
    from qunflow.workspace import init_workspace

    ws = init_workspace(ws_dir)
    out: dict[str, Any] = {}
    with connect(ws.settings.analytics_file) as conn:
        engine = DuckDBEngine(conn, ws.settings.timezone)
        total = conn.execute(f"SELECT count(*) FROM read_parquet('{data}/events.parquet')").fetchall()[0][0]
        late = min(LATE, total // 20)  # a small run keeps the catch-up incremental (not a rebuild)
        started = time.perf_counter()
        load_rows(conn, data, ws.settings.timezone, 0, total - late)
        conn.execute(LOAD_SPEND.format(data=data))
        conn.execute("CHECKPOINT")
        out["load_s"] = time.perf_counter() - started
        started = time.perf_counter()
        refresh_facts(engine, ws.settings)
        out["facts_build_s"] = time.perf_counter() - started
        load_rows(conn, data, ws.settings.timezone, total - late, total)
        started = time.perf_counter()
        refresh_facts(engine, ws.settings)
        out["facts_late_s"] = time.perf_counter() - started
        out["late_members"] = conn.execute(
            f"SELECT count(DISTINCT member_id) FROM events WHERE seq > {total - late}").fetchall()[0][0]
        out["late_events"] = late
        _rebuild(conn, ws.settings, "facts_check", temporary=True)
        out["facts_differ"] = conn.execute(
            "SELECT count(*) FROM ((SELECT * FROM member_facts EXCEPT ALL SELECT * FROM facts_check) UNION ALL "
            "(SELECT * FROM facts_check EXCEPT ALL SELECT * FROM member_facts))").fetchall()[0][0]
        _rebuild_landings(conn, ws.settings, "landings_check", "links_check", temporary=True)
        for kept, check in (("landing_facts", "landings_check"), ("landing_links", "links_check"),
                            ("landing_days", "landings_check_days")):
            out["facts_differ"] += conn.execute(
                f"SELECT count(*) FROM ((SELECT * FROM {kept} EXCEPT ALL SELECT * FROM {check}) UNION ALL "
                f"(SELECT * FROM {check} EXCEPT ALL SELECT * FROM {kept}))").fetchall()[0][0]
        out["members"] = conn.execute("SELECT count(*) FROM member_facts").fetchall()[0][0]
        out["landing_rows"] = conn.execute("SELECT count(*) FROM landing_facts").fetchall()[0][0]
        conn.execute("CHECKPOINT")
    out["events"] = total
    ws.close()
    return out


def chdb_store(data: Path, ws_dir: Path) -> tuple[Any, Any, Callable[[Any, str], None]]:
    """A new workspace on chdb, a DuckDB connection that reads the floor's data, and append(engine, where): the
    floor's events matching `where` (LOAD_EVENTS) appended to the store in Arrow chunks."""
    import duckdb
    import pyarrow as pa

    from qunflow.analytics.eventlog_arrow import ARROW_SCHEMA
    from qunflow.workspace import init_workspace, open_workspace

    init_workspace(ws_dir).close()
    with (ws_dir / "qunflow.toml").open("a") as settings:
        settings.write('\nanalytics_engine = "chdb"\n')
    source = duckdb.connect()

    def append(engine: Any, where: str) -> None:
        sql = LOAD_EVENTS.format(data=data, where=where)
        for batch in source.sql(sql).to_arrow_reader(500_000):
            columns = [c.storage if isinstance(c, pa.ExtensionArray) else c for c in batch.columns]
            engine.append(pa.Table.from_arrays(columns, names=ARROW_SCHEMA.names).cast(ARROW_SCHEMA))

    return open_workspace(ws_dir), source, append


def event_count(source: Any, data: Path) -> int:
    """The floor's events (the DuckDB connection chdb_store gives)."""
    return int(source.execute(f"SELECT count(*) FROM read_parquet('{data}/events.parquet')").fetchall()[0][0])


def replace_spend(engine: Any, source: Any, data: Path) -> None:
    """The floor's spend (LOAD_SPEND) into a store through Engine.replace_spend."""
    import pyarrow as pa

    from qunflow.analytics.shipper import SPEND_SCHEMA

    spend = source.sql(LOAD_SPEND.format(data=data).replace("INSERT INTO spend", "")).to_arrow_table()
    engine.replace_spend(pa.Table.from_arrays(spend.columns, names=SPEND_SCHEMA.names).cast(SPEND_SCHEMA))


def stage_load_chdb(data: Path, ws_dir: Path) -> dict[str, Any]:
    """As stage_load, into an embedded ClickHouse store: the rows DuckDB's load query gives, appended in chunks."""

    from qunflow.analytics import facts_clickhouse, facts_clickhouse_sql
    from qunflow.analytics.engines import open_engine
    from qunflow.analytics.facts import refresh_facts

    ws, source, append = chdb_store(data, ws_dir)
    total = event_count(source, data)
    late = min(LATE, total // 20)
    out: dict[str, Any] = {"events": total, "late_events": late}
    with open_engine(ws) as engine:
        started = time.perf_counter()
        append(engine, f"e.event_id <= {total - late}")
        replace_spend(engine, source, data)
        out["load_s"] = time.perf_counter() - started
        started = time.perf_counter()
        refresh_facts(engine, ws.settings)
        out["facts_build_s"] = time.perf_counter() - started
        append(engine, f"e.event_id > {total - late}")
        started = time.perf_counter()
        refresh_facts(engine, ws.settings)
        out["facts_late_s"] = time.perf_counter() - started
        out["late_members"] = engine.query(
            f"SELECT count(DISTINCT member_id) FROM events WHERE seq > {total - late}", {})[1][0][0]
        facts_clickhouse.rebuild(engine, ws.settings, 1, "facts_check")
        names = ", ".join(facts_clickhouse_sql.FACT_NAMES)
        out["facts_differ"] = sum(engine.query(
            f"SELECT count() FROM (SELECT {names} FROM {a} EXCEPT ALL SELECT {names} FROM {b})", {})[1][0][0]
            for a, b in (("member_facts", "facts_check"), ("facts_check", "member_facts")))
        days = "(SELECT member_id, spans, active_days FROM facts_check_days FINAL WHERE NOT deleted)"
        out["facts_differ"] += sum(engine.query(
            f"SELECT count() FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})", {})[1][0][0]
            for a, b in (("member_days", days), (days, "member_days")))
        for check in ("facts_check", "facts_check_days"):
            engine.command(f"DROP TABLE {check} SYNC")  # type: ignore[attr-defined]
        facts_clickhouse.rebuild_landings(engine, ws.settings, 1, "landings_check", "links_check")
        for kept, check, columns in (("landing_facts", "landings_check", ", ".join(facts_clickhouse_sql.LANDING_NAMES)),
                                     ("landing_links", "links_check", "visitor_id, member_id")):
            checked = f"(SELECT {columns} FROM {check} FINAL WHERE {'NOT deleted' if kept == 'landing_facts' else 1})"
            out["facts_differ"] += sum(engine.query(
                f"SELECT count() FROM (SELECT {columns} FROM {a} EXCEPT ALL SELECT {columns} FROM {b})", {})[1][0][0]
                for a, b in ((kept, checked), (checked, kept)))
            engine.command(f"DROP TABLE {check} SYNC")  # type: ignore[attr-defined]
        out["members"] = engine.query("SELECT count() FROM member_facts", {})[1][0][0]
        out["landing_rows"] = engine.query("SELECT count() FROM landing_facts", {})[1][0][0]
    ws.close()
    return out


def stage_queries(ws: Any, start: date, as_of: date) -> dict[str, Any]:
    """The queries the facts replace, on their own: COHORT and CURRENT by channel and by cohort week, from the
    facts (a warm-up, median of 3) and from the events (a warm-up, 1 timed); on chdb the facts are also read
    through argMax(row, version) instead of FINAL."""
    from qunflow.analytics.engines import open_engine
    from qunflow.analytics.facts import usable
    from qunflow.analytics.queries import COHORT, COHORT_FACTS, CURRENT, CURRENT_FACTS, render
    from qunflow.domain.metrics import Period
    from qunflow.services.metrics import _params

    when = Period(start, as_of, as_of, ws.settings.zone)
    params = _params(ws, when, {}, None)
    out: dict[str, Any] = {}
    with open_engine(ws) as engine:
        assert usable(engine, ws.settings, when.cutoff)

        def run(templates: tuple[str, str]) -> tuple[float, list[Any]]:
            began = time.perf_counter()
            rows = [sorted(engine.query(render(t, by, {}), params)[1], key=repr) for by in SLICES for t in templates]
            return time.perf_counter() - began, rows

        def median_of_3(templates: tuple[str, str]) -> tuple[float, list[Any]]:
            run(templates)
            runs = [run(templates) for _ in range(3)]
            return statistics.median(r[0] for r in runs), runs[0][1]

        out["facts_s"], from_facts = median_of_3((COHORT_FACTS, CURRENT_FACTS))
        run((COHORT, CURRENT))
        out["events_s"], from_events = run((COHORT, CURRENT))
        out["same_rows"] = from_facts == from_events
        if engine.name != "duckdb":
            from qunflow.analytics import facts_clickhouse_sql

            parts = engine.query("SELECT count(), sum(rows) FROM system.parts WHERE database = currentDatabase() "
                                 "AND table = 'member_facts_log' AND active", {})[1][0]
            out.update(parts=parts[0], stored_rows=parts[1])
            engine.command(f"CREATE OR REPLACE VIEW member_facts AS {facts_clickhouse_sql.VIEW_ARGMAX}")  # type: ignore[attr-defined]
            try:
                out["argmax_s"], by_argmax = median_of_3((COHORT_FACTS, CURRENT_FACTS))
                out["argmax_same"] = by_argmax == from_facts
            finally:
                engine.command(f"CREATE OR REPLACE VIEW member_facts AS {facts_clickhouse_sql.VIEW}")  # type: ignore[attr-defined]
    return out


def stage_qunflow(data: Path, ws_dir: Path) -> dict[str, Any]:
    """Both slices from the facts (a warm-up, then 3 timed runs) and from the events (a warm-up, 1 timed)."""
    from qunflow.services.metrics import metrics_report
    from qunflow.workspace import open_workspace

    ws = open_workspace(ws_dir)
    start, as_of = period(data)
    queries = stage_queries(ws, start, as_of)

    def both() -> tuple[float, dict[str, Any]]:
        began = time.perf_counter()
        reports = {by: metrics_report(ws, start=start, end=as_of, as_of=as_of, by=by, ship_first=False)
                   for by in SLICES}
        return time.perf_counter() - began, reports

    first, from_facts = both()
    runs = [both()[0] for _ in range(3)]
    landing = landings(ws, start, as_of)
    if ws.settings.analytics_engine != "duckdb":  # the event path is M1's LANDING once more (timed above) and
        return {"first_s": first, "runs_s": runs, "median_s": statistics.median(runs),  # COHORT + CURRENT
                "queries": queries, **landing, "rows": {by: len(from_facts[by]["rows"]) for by in SLICES},
                **dashboard_times(ws, start, as_of)}
    ws.settings.metrics_facts = False
    both()
    events_s, from_events = both()
    ws.settings.metrics_facts = True
    return {"first_s": first, "runs_s": runs, "median_s": statistics.median(runs), "events_path_s": events_s,
            **dashboard_times(ws, start, as_of), **landing,
            "same_reports": from_facts == from_events, "queries": queries,
            "rows": {by: len(from_facts[by]["rows"]) for by in SLICES}}


def dashboard_times(ws: Any, start: date, as_of: date) -> dict[str, float]:
    """The dashboard page's server time (`build_dashboard`: every card, four slicings, the funnel and the daily
    trend; issue 15's goal: under 1 s at 1M), the median of 3 runs after a warm-up, wall and the process's CPU
    (chdb's threads are the process's). Its state-database parts are empty here, the analytics are the whole
    store; run it last: a dashboard brings the store's spend in line with the empty state database."""
    from qunflow.services.dashboard import build_dashboard

    build_dashboard(ws, start, as_of, as_of)
    wall, cpu = [], []
    for _ in range(3):
        began, began_cpu = time.perf_counter(), time.process_time()
        build_dashboard(ws, start, as_of, as_of)
        wall.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    return {"dashboard_s": statistics.median(wall), "dashboard_cpu_s": statistics.median(cpu)}


def landings(ws: Any, start: date, as_of: date) -> dict[str, Any]:
    """M1's own query for both slices, from the landing facts and from the landing days (median of 3 warm each)
    and from the events (1 warm), and whether all give the same rows."""
    from qunflow.analytics.queries import LANDING, LANDING_DAYS, LANDING_FACTS, render
    from qunflow.analytics.shipper import analytics
    from qunflow.domain.metrics import Period
    from qunflow.services.metrics import _params

    params = _params(ws, Period(start, as_of, as_of, ws.settings.zone), {}, None)
    with analytics(ws, ship_first=False) as engine:
        rows: dict[str, Any] = {}
        cpu: dict[str, list[float]] = {}  # the process's CPU seconds per run (chdb's threads are the process's)

        def both(template: str) -> float:
            began, began_cpu = time.perf_counter(), time.process_time()
            rows[template] = [sorted(engine.query(render(template, by), params)[1], key=repr) for by in SLICES]
            cpu.setdefault(template, []).append(time.process_time() - began_cpu)
            return time.perf_counter() - began

        both(LANDING_FACTS)
        from_facts = statistics.median(both(LANDING_FACTS) for _ in range(3))
        both(LANDING_DAYS)
        days = {"landing_days_s": statistics.median(both(LANDING_DAYS) for _ in range(3)),
                "landing_days_same": rows[LANDING_DAYS] == rows[LANDING_FACTS],
                "landing_facts_cpu_s": statistics.median(cpu[LANDING_FACTS][1:]),
                "landing_days_cpu_s": statistics.median(cpu[LANDING_DAYS][1:])}
        if engine.name == "duckdb":
            both(LANDING)
            return {"landing_facts_s": from_facts, "landing_events_s": both(LANDING),
                    "landing_same": rows[LANDING] == rows[LANDING_FACTS], **days}
        # chdb: LANDING from the events takes minutes from 20k members on; one cold run, stopped at the cap.
        from qunflow.analytics.dialects import for_clickhouse
        from qunflow.analytics.engines import _rows

        began, capped = time.perf_counter(), []
        for by in SLICES:
            sql = for_clickhouse(render(LANDING, by), params) + f", max_execution_time = {LANDING_CAP_S}"
            try:
                capped.append(sorted(_rows(engine.session.query(sql, "ArrowTable"))[1], key=repr))  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - chdb raises its own error type for the timeout
                if "TIMEOUT_EXCEEDED" not in str(exc) and "Timeout exceeded" not in str(exc):
                    raise
                return {"landing_facts_s": from_facts, "landing_events_s": None, "landing_same": None,
                        "landing_capped_s": time.perf_counter() - began, **days}
        return {"landing_facts_s": from_facts, "landing_events_s": time.perf_counter() - began,
                "landing_same": capped == rows[LANDING_FACTS], **days}


def stage_floor(data: Path) -> dict[str, Any]:
    out = data / "floor-duckdb.json"
    subprocess.run([sys.executable, "-m", "queries.worker", "--engine", "duckdb", "--data", str(data),
                    "--runs", "3", "--out", str(out)], cwd=FLOOR, check=True, stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    return {"median_s": result["suite_median_s"], "first_s": result["first_run_s"], "load_s": result["load_s"],
            "peak_mib": result["peak_rss_mib"]}


# ---- the parent ------------------------------------------------------------------------------------------------

def run_stage(args: list[str], script: str = __file__) -> tuple[dict[str, Any], float]:
    """A stage of `script` (this bench's, by default) in a child process: the JSON its last line prints and the
    child's own peak RSS (MiB)."""
    from bench.bench_ship import child_env

    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen([sys.executable, script, *args], stdout=log, stderr=subprocess.STDOUT,
                                   env=child_env())
        _, status, usage = os.wait4(process.pid, 0)
        log.seek(0)
        text = log.read()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"stage {args} failed:\n{text[-3000:]}")
    return json.loads(text.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--data", type=Path, help="the floor's data directory (default: a temporary one)")
    parser.add_argument("--engine", choices=["duckdb", "chdb", "both"], default="both",
                        help="the analytics engine(s) to time (default: both)")
    parser.add_argument("--stage", choices=["load", "load-chdb", "qunflow", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--ws", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        result = {"load": lambda: stage_load(args.data, args.ws),
                  "load-chdb": lambda: stage_load_chdb(args.data, args.ws),
                  "qunflow": lambda: stage_qunflow(args.data, args.ws),
                  "floor": lambda: stage_floor(args.data)}[args.stage]()
        print(json.dumps(result))
        return
    data = (args.data or Path(tempfile.mkdtemp(prefix="qunflow-facts-"))).resolve()
    if not (data / "meta.json").exists() or json.loads((data / "meta.json").read_text())["members"] != args.members:
        subprocess.run([sys.executable, str(FLOOR / "gen.py"), "--members", str(args.members), "--out", str(data)],
                       check=True, stdout=subprocess.DEVNULL)
    engines = ["duckdb", "chdb"] if args.engine == "both" else [args.engine]
    results: dict[str, Any] = {}
    loads = [os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="qunflow-facts-ws-") as tmp:
        floor, floor_peak = run_stage(["--stage", "floor", "--data", str(data)])
        for engine in engines:
            ws = Path(tmp) / engine
            load_stage = "load" if engine == "duckdb" else "load-chdb"
            loaded, load_peak = run_stage(["--stage", load_stage, "--data", str(data), "--ws", str(ws)])
            loads.append(os.getloadavg())
            ours, peak = run_stage(["--stage", "qunflow", "--data", str(data), "--ws", str(ws)])
            loads.append(os.getloadavg())
            results[engine] = {"load": loaded, "load_peak_mib": load_peak, "qunflow": ours, "qunflow_peak_mib": peak,
                               "ratio": ours["median_s"] / floor["median_s"] if "median_s" in ours else None}
    first = results[engines[0]]["load"]
    print(f"{args.members:,} members, {first['events']:,} events, {first['members']:,} joined members; "
          f"{os.cpu_count()} cores, load average (1 min) before/after each stage "
          f"{', '.join(f'{load[0]:.1f}' for load in loads)}")
    print(f"floor (DuckDB suite, Q0-Q5): median {floor['median_s']:.3f} s, first run {floor['first_s']:.3f} s, "
          f"peak {floor['peak_mib']:.0f} MiB")
    for engine, result in results.items():
        report(engine, result, floor)
    print(json.dumps({"floor": floor, "floor_peak_mib": floor_peak, "engines": results, "load_averages": loads}))


def report(engine: str, result: dict[str, Any], floor: dict[str, Any]) -> None:
    loaded, ours, peak = result["load"], result["qunflow"], result["qunflow_peak_mib"]
    queries = ours["queries"]
    print(f"[{engine}] store load {loaded['load_s']:.2f} s; facts built in {loaded['facts_build_s']:.2f} s; "
          f"{loaded['late_events']:,} late events ({loaded['late_members']:,} members) kept up in "
          f"{loaded['facts_late_s']:.2f} s; kept facts vs rebuild: {loaded['facts_differ']} rows differ; "
          f"peak {result['load_peak_mib']:.0f} MiB")
    print(f"[{engine}] COHORT + CURRENT by channel and by cohort week: from facts {queries['facts_s']:.3f} s "
          f"(median of 3), from events {queries['events_s']:.3f} s ({queries['events_s'] / queries['facts_s']:.1f}x); "
          f"same rows: {queries['same_rows']}")
    if "argmax_s" in queries:
        print(f"[{engine}] facts read with FINAL {queries['facts_s']:.3f} s, with argMax by version "
              f"{queries['argmax_s']:.3f} s (same rows: {queries['argmax_same']}; {queries['parts']} active parts, "
              f"{queries['stored_rows']:,} stored rows for {loaded['members']:,} members)")
    if ours["landing_events_s"] is None:
        print(f"[{engine}] M1 (landings) alone, both slices: from the landing facts {ours['landing_facts_s']:.3f} s "
              f"({loaded['landing_rows']:,} rows), from the events: stopped after {ours['landing_capped_s']:.0f} s "
              f"(over {ours['landing_capped_s'] / ours['landing_facts_s']:.0f}x)")
    else:
        print(f"[{engine}] M1 (landings) alone, both slices: from the landing facts {ours['landing_facts_s']:.3f} s "
              f"({loaded['landing_rows']:,} rows), from the events {ours['landing_events_s']:.3f} s "
              f"({ours['landing_events_s'] / ours['landing_facts_s']:.1f}x); same rows: {ours['landing_same']}")
    if "events_path_s" not in ours:
        print(f"[{engine}] by channel + by cohort week from facts (M1 too): median {ours['median_s']:.3f} s "
              f"(runs {', '.join(f'{s:.3f}' for s in ours['runs_s'])}; first {ours['first_s']:.3f} s); "
              f"peak {peak:.0f} MiB; the event path is not timed again (the queries above)")
        print(f"[{engine}] dashboard page (server time, median of 3 warm): {ours['dashboard_s']:.3f} s, CPU "
              f"{ours['dashboard_cpu_s']:.3f} s (goal < 1 s)")
        met = result["ratio"] <= GOALS["slices_vs_floor"] and peak <= GOALS["peak_mib"] \
            and ours["landing_same"] is not False
        print(f"[{engine}] both slices / floor suite: {result['ratio']:.2f} (goal <= {GOALS['slices_vs_floor']}); "
              f"goal {'met' if met and queries['same_rows'] and not loaded['facts_differ'] else 'NOT met'}")
        return
    print(f"[{engine}] by channel + by cohort week from facts: median {ours['median_s']:.3f} s "
          f"(runs {', '.join(f'{s:.3f}' for s in ours['runs_s'])}; first {ours['first_s']:.3f} s); "
          f"from events: {ours['events_path_s']:.3f} s; same reports: {ours['same_reports']}; peak {peak:.0f} MiB")
    print(f"[{engine}] dashboard page (server time, median of 3 warm): {ours['dashboard_s']:.3f} s, CPU "
          f"{ours['dashboard_cpu_s']:.3f} s (goal < 1 s)")
    met = result["ratio"] <= GOALS["slices_vs_floor"] and peak <= GOALS["peak_mib"]
    print(f"[{engine}] both slices / floor suite: {result['ratio']:.2f} (goal <= {GOALS['slices_vs_floor']}); "
          f"events path / floor: {ours['events_path_s'] / floor['median_s']:.2f}; "
          f"goal {'met' if met and ours['same_reports'] and not loaded['facts_differ'] else 'NOT met'}")


if __name__ == "__main__":
    main()
