"""The dashboard's previous period (an as-of day in the past) read partly from the facts: its M3 from the member
days (DuckDB, chdb and a ClickHouse server), the rest from the events. Its numbers must equal the event-level
SQL's on a log with history before the period, moves after its as-of day and events that arrive late with old
times."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from qunflow.analytics.facts import days_usable, usable
from qunflow.analytics.queries import LANDING, LANDING_DAYS, render
from qunflow.analytics.shipper import analytics
from qunflow.domain.metrics import Period
from qunflow.services.dashboard import build_dashboard, previous_period
from qunflow.services.ingest import ingest_batch
from qunflow.services.metrics import _params
from qunflow.workspace import init_workspace
from tests.integration.test_member_facts import engine_workspace

START, END = date(2026, 3, 29), date(2026, 4, 11)  # the previous period: 03-15 .. 03-28, as of 03-28


def event(kind: str, day: str, **fields: Any) -> dict[str, Any]:
    who = fields.get("member_id") or fields.get("visitor_id")
    return {"event_id": f"{kind}-{who}-{day}-{len(fields)}", "type": kind, "ts": f"2026-{day}T10:00:00+08:00",
            **fields}


FIRST = [
    event("joined", "03-01", member_id="a", channel="ads", group="g1"),  # history before the period
    event("message", "03-20", member_id="a"),
    event("joined", "03-16", member_id="b", channel="ads", group="g1"),
    event("message", "03-17", member_id="b"),
    event("left", "04-02", member_id="b"),  # after the previous as-of day: b is present as of 03-28
    event("order", "03-30", member_id="b", amount="20", margin="5"),
    event("joined", "03-10", member_id="c", channel="kol", group="g1"),
    event("left", "03-25", member_id="c"),
    event("joined", "04-03", member_id="c", channel="kol", group="g2"),  # back after the as-of day
    event("joined", "03-30", member_id="d", channel="ads", group="g1"),  # joins after it
    event("joined", "03-20", member_id="e", channel="kol", group="g1"),
    event("message", "03-27", member_id="e"),
    event("message", "04-01", member_id="e"),
    event("landing_view", "03-14", visitor_id="v2", channel="ads"),
    event("landing_view", "03-20", visitor_id="v2", channel="ads"),
    event("landing_view", "03-16", visitor_id="v1", channel="kol"),
    event("joined", "03-17", member_id="g", channel="kol", group="g1"),
    event("message", "04-02", member_id="g", visitor_id="v1"),  # links v1 to g after the as-of day
]
LATE = [  # arriving after the facts were built, with times before the previous as-of day
    event("message", "03-22", member_id="b"),
    event("joined", "03-18", member_id="f", channel="ads", group="g1"),
    event("left", "03-26", member_id="a"),
    event("joined", "04-01", member_id="a", channel="ads", group="g2"),
]


@pytest.mark.parametrize("engine_name", ["duckdb", "chdb", "clickhouse"])
def test_previous_period_equals_the_event_level_numbers(request: pytest.FixtureRequest, tmp_path: Path,
                                                         engine_name: str) -> None:
    ws = engine_workspace(request, tmp_path / "ws", engine_name)
    before = previous_period(START, END, END)
    try:
        for batch in (FIRST, LATE):
            assert not ingest_batch(ws.engine, batch).errors
            for filters in ({}, {"group": "g1"}, {"channel": "ads"}):
                board = build_dashboard(ws, START, END, END, filters)
                with analytics(ws, ship_first=False) as engine:
                    assert not usable(engine, ws.settings, Period(*before, ws.settings.zone).cutoff)
                    assert days_usable(engine, ws.settings)
                ws.settings.metrics_facts = False
                try:
                    from_events = build_dashboard(ws, START, END, END, filters)
                finally:
                    ws.settings.metrics_facts = True
                assert board.previous == from_events.previous, (batch is LATE, filters)
        # As of 03-28: b (left later), e, f (a late join) and g are present; a left on 03-26 (late), c on 03-25.
        # Active within 7 days: b (a late message on 03-22) and e; g only later.
        previous = build_dashboard(ws, START, END, END).previous
        assert previous["current_members"] == 4
        assert previous["active_ratio_7d"] == 0.5
        assert previous["cohort_size"] == 4  # b, e, f, g joined 03-15 .. 03-28
        assert before == (date(2026, 3, 15), date(2026, 3, 28), date(2026, 3, 28))
    finally:
        ws.close()


def test_the_landing_facts_do_not_answer_a_past_as_of_day(tmp_path: Path) -> None:
    """Why the previous period's M1 stays on the events: v1 viewed on 03-16 and g (a join naming no visitor) joined
    on 03-17, but the event linking v1 to g came on 04-02. As of 03-28 v1 is a bare visitor who has not joined;
    the landing facts, kept over every event, count the view as g's, joined within the week."""
    ws = init_workspace(tmp_path / "ws")
    try:
        assert not ingest_batch(ws.engine, FIRST).errors
        period = Period(*previous_period(START, END, END), ws.settings.zone)
        with analytics(ws) as engine:
            params = _params(ws, period, {}, None)
            from_events, from_days = ([row[2:] for row in engine.query(render(template, "none"), params)[1] if row[0]]
                                      for template in (LANDING, LANDING_DAYS))
        assert from_events == [(2, 2, 0)]  # landing visitors, mature, joined
        assert from_days == [(2, 2, 1)]
    finally:
        ws.close()
