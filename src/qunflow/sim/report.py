"""The headline a demo prints: welcome speed and the chain's metrics by channel."""

from __future__ import annotations

import statistics
import sys
from datetime import date, timedelta

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from qunflow.i18n import fmt_number, fmt_percent
from qunflow.sim.demo import DemoStats
from qunflow.store.tables import events
from qunflow.workspace import Workspace

HEADLINE = (("landing_visitors", "landing visitors", "n"), ("join_conversion", "M1 join conv.", "%"),
            ("cohort_size", "joins", "n"), ("retention_d1", "M2 D1", "%"), ("retention_d7", "M2 D7", "%"),
            ("task_completion_d1", "M9 Day-1 task", "%"), ("conversion_rate", "M5 conversion", "%"),
            ("spend", "spend", "n"), ("cost_per_join", "CPJ", "n"), ("cost_per_acquisition", "M8 CPA", "n"))


def welcome_latencies(ws: Workspace) -> list[float]:
    with ws.engine.connect() as conn:
        rows = conn.execute(select(events.c.properties).where(events.c.type == "welcome_sent")).scalars()
        return sorted(float(p["latency_ms"]) for p in rows if p and "latency_ms" in p)


def print_automation(ws: Workspace, stats: DemoStats, console: Console | None = None) -> None:
    """What the worker did: playbook steps and sends, and where the referral rewards stand."""
    from qunflow.services.rewards import status_counts

    console = console or Console(width=None if sys.stdout.isatty() else 140)
    with ws.engine.connect() as conn:
        counts = status_counts(conn)
    rewards = ", ".join(f"{status} {c['count']} (¥{c['value']:,.0f})" for status, c in sorted(counts.items()))
    console.print(f"Automation: {stats.steps} playbook steps run, {stats.sent} messages sent; "
                  f"referral rewards: {rewards or 'none yet'}")


def print_headline(ws: Workspace, start: date, end: date, console: Console | None = None) -> None:
    console = console or Console(width=None if sys.stdout.isatty() else 140)
    latencies = welcome_latencies(ws)
    if latencies:
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        console.print(f"Welcome DM after join: median {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms "
                      f"({len(latencies)} welcomes; the platform limit is 3 minutes)")
    from qunflow.services.metrics import metrics_report

    as_of = end - timedelta(days=1)
    report = metrics_report(ws, start=start, end=as_of, as_of=as_of, by="channel")
    table = Table(title=f"Metrics by channel, joins {start} to {as_of} (as of {as_of})")
    table.add_column("channel")
    for _key, label, _kind in HEADLINE:
        table.add_column(label, justify="right")
    for row in [*report["rows"], {"channel": "total", **report["total"]}]:
        cells = [str(row.get("channel") or "(none)")]
        for key, _label, kind in HEADLINE:
            value = row.get(key)
            cells.append(fmt_percent(value, "en") if kind == "%" else fmt_number(value, "en"))
        table.add_row(*cells)
    console.print(table)


def print_experiment(ws: Workspace, as_of: date, console: Console | None = None) -> None:
    """The demo's welcome-text experiment as `qunflow experiments results` shows it."""
    from qunflow.cli.experiments import print_report
    from qunflow.errors import NotFound
    from qunflow.services.experiments import experiment_results
    from qunflow.sim.demo import DEMO_EXPERIMENT_KEY

    try:
        report = experiment_results(ws, DEMO_EXPERIMENT_KEY, as_of=as_of)
    except NotFound:
        return
    print_report(report, console)
