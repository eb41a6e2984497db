"""Random event logs: the DuckDB metrics equal the plain-Python oracle for every metric and slice.

The generator aims at the edges of METRICS.md: events placed at exactly 0, 1 s, 7 x 24 h, 30 days
and 90 days (give or take a second) from a join or a landing view, at local midnights, rejoins and
`left`, orders before joining, visitors linked to members through any event carrying both ids, and
reporting time zones with and without daylight saving time.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from qunflow.domain.metrics import DIMENSIONS, METRIC_KEYS
from qunflow.services.ingest import ingest_batch
from qunflow.services.metrics import metrics_report
from qunflow.store.tables import spend as spend_table
from qunflow.workspace import Workspace, init_workspace
from tests.emptied import empty
from tests.examples import examples
from tests.reference_metrics import reference_metrics

ZONES = ("Asia/Shanghai", "America/New_York", "UTC")
ORIGIN = datetime(2026, 2, 27, 16, 0, tzinfo=UTC)  # 02-28 00:00 in Shanghai; DST starts in New York 03-08
SECOND, DAY = timedelta(seconds=1), timedelta(days=1)
EDGES = [k * DAY + s * SECOND for k in (0, 1, 7, 30, 90) for s in (-1, 0, 1)]
AFTER_JOIN = ["message", "task_completed", "checkin", "order", "booking", "invite_sent", "left", "joined",
              "reaction", "coupon_issued", "landing_view"]
MEMBERS = [f"m{i}" for i in range(6)]
VISITORS = [f"v{i}" for i in range(5)]
CHANNELS = ["ads", "content", "kol", None]


def offsets() -> st.SearchStrategy[timedelta]:
    return st.one_of(st.sampled_from(EDGES), st.integers(-3 * 86400, 95 * 86400).map(lambda s: s * SECOND))


def moments(origin: datetime = ORIGIN, days: int = 70,
            hours: tuple[int, ...] = (0, 8, 13, 16)) -> st.SearchStrategy[datetime]:
    """Anywhere in `days` days from `origin` (about 10 weeks), with a bias to a second either side of the
    given UTC hours of each day (local midnights of the zones tested)."""
    midnight = st.tuples(st.integers(0, days), st.sampled_from(hours), st.sampled_from([-1, 0, 1]))
    return st.one_of(
        midnight.map(lambda t: origin + t[0] * DAY + timedelta(hours=t[1]) + t[2] * SECOND),
        st.integers(0, days * 86400).map(lambda s: origin + s * SECOND),
    )


@st.composite
def event_logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(kind: str, ts: datetime, **fields: Any) -> None:
        clean = {k: v for k, v in fields.items() if v is not None}
        out.append({"event_id": f"e{len(out)}", "type": kind, "ts": ts.isoformat(), **clean})

    def attributes() -> dict[str, Any]:
        return {"channel": draw(st.sampled_from(CHANNELS)),
                "campaign": draw(st.sampled_from(["c1", "c2", None])),
                "entry_point": draw(st.sampled_from(["ep1", "ep2", None])),
                "group": draw(st.sampled_from(["g1", "g2", None]))}

    for _ in range(draw(st.integers(0, 6))):  # landing views, some followed by a join near the 7-day edge
        visitor = draw(st.sampled_from(VISITORS))
        seen = draw(moments())
        add("landing_view", seen, visitor_id=visitor, member_id=draw(st.sampled_from([None, None, "m0"])),
            **attributes())
        if draw(st.booleans()):
            gap = draw(st.sampled_from([timedelta(0), 7 * DAY - SECOND, 7 * DAY, 3 * DAY, -SECOND]))
            add("joined", seen + gap, member_id=draw(st.sampled_from(MEMBERS)), visitor_id=visitor,
                referrer_id=draw(st.sampled_from([None, "m1", "m2"])),
                properties={"tier": draw(st.sampled_from(["core", "newbie"]))}, **attributes())
    for _ in range(draw(st.integers(1, 6))):  # joins (first or rejoins) and what follows them
        member = draw(st.sampled_from(MEMBERS))
        joined = draw(moments())
        tier = draw(st.sampled_from(["core", "newbie", None]))
        add("joined", joined, member_id=member, visitor_id=draw(st.sampled_from([None, *VISITORS])),
            referrer_id=draw(st.sampled_from([None, *MEMBERS])),
            properties={"tier": tier} if tier else None, **attributes())
        for _ in range(draw(st.integers(0, 6))):
            kind = draw(st.sampled_from(AFTER_JOIN))
            money: dict[str, Any] = {}
            if kind in ("order", "booking"):
                money = {"amount": draw(st.sampled_from([10, 99.5, 0.0001])),
                         "margin": draw(st.sampled_from([None, 3, 20.25]))}
            add(kind, joined + draw(offsets()), member_id=member,
                visitor_id=draw(st.sampled_from([None, None, *VISITORS])), **money)
    for _ in range(draw(st.integers(0, 5))):  # exposures, by member or by a visitor id that may become one
        who = draw(st.sampled_from([{"member_id": m} for m in MEMBERS] + [{"visitor_id": v} for v in VISITORS]))
        experiment, variant = draw(st.sampled_from(["exp", "exp", "other"])), draw(st.sampled_from(["A", "B"]))
        named = ({"experiment": experiment, "variant": variant} if draw(st.booleans())
                 else {"properties": {"experiment": experiment, "variant": variant}})
        add("experiment_exposure", draw(moments()), **who, **named)
    return out


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Workspace]:
    """One workspace per reporting zone, emptied before each example (far cheaper than creating one)."""
    made = {zone: init_workspace(tmp_path_factory.mktemp("prop"), timezone=zone) for zone in ZONES}
    yield made  # type: ignore[misc]
    for ws in made.values():
        ws.close()


SPEND_ROWS = st.lists(st.tuples(st.sampled_from(["ads", "content", "tv"]), st.integers(0, 70),
                                st.sampled_from([Decimal("0"), Decimal("12.5"), Decimal("300")])),
                      max_size=5, unique_by=lambda r: (r[0], r[1]))


# Each example runs the full path (ingest, ship, SQL) for every slice; shrinking would be slow.
@pytest.mark.long
@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(logs=event_logs(), zone=st.sampled_from(ZONES), start_offset=st.integers(0, 40),
       span=st.integers(0, 30), as_of_offset=st.integers(-5, 100), spend_rows=SPEND_ROWS)
def test_random_logs_match_the_oracle_for_every_metric_and_slice(
        workspaces: dict[str, Workspace], logs: list[dict[str, Any]], zone: str, start_offset: int, span: int,
        as_of_offset: int, spend_rows: list[tuple[str, int, Decimal]]) -> None:
    ws = workspaces[zone]
    empty(ws)
    origin = date(2026, 2, 28)
    spend = [(channel, origin + timedelta(days=d), amount) for channel, d, amount in spend_rows]
    result = ingest_batch(ws.engine, logs)
    assert not result.errors and result.stored == len(logs)
    with ws.engine.begin() as conn:
        if spend:
            conn.execute(spend_table.insert(), [{"channel": c, "day": d, "amount": a, "currency": "CNY"}
                                                for c, d, a in spend])
    start = origin + timedelta(days=start_offset)
    end = start + timedelta(days=span)
    as_of = end + timedelta(days=as_of_offset)
    slices = [(by, None) for by in DIMENSIONS if by != "variant"]
    slices += [(by, "exp") for by in ("variant", "none", "channel", "group", "cohort_week")]
    for by, experiment in slices:
        got_report = metrics_report(ws, start=start, end=end, as_of=as_of, by=by, experiment=experiment)
        got = {"__total__": got_report["total"], **{row[by]: row for row in got_report["rows"]}}
        expected = reference_metrics(logs, start, end, as_of, by, spend, tz=zone, experiment=experiment)
        if by == "none":
            expected = {"__total__": expected["__total__"]}
        assert set(got) == set(expected), (zone, by)
        for key, values in got.items():
            assert list(values)[-len(METRIC_KEYS):] == list(METRIC_KEYS)
            for metric in METRIC_KEYS:
                assert same(values[metric], expected[key][metric]), (
                    zone, by, experiment, key, metric, values[metric], expected[key][metric])
