"""Metrics equal METRICS.md on hand-worked edge cases and on random event logs (oracle: reference_metrics)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from qunflow.domain.metrics import DIMENSIONS, METRIC_KEYS
from qunflow.services.ingest import ingest_batch
from qunflow.services.metrics import metrics_report
from qunflow.store.tables import spend
from qunflow.workspace import Workspace, init_workspace
from tests.emptied import empty
from tests.examples import examples
from tests.reference_metrics import reference_metrics

START, END, AS_OF = date(2026, 3, 1), date(2026, 3, 31), date(2026, 4, 30)


def ev(i: str, kind: str, ts: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": i, "type": kind, "ts": ts, **fields}


# Times are local (+08:00) unless they say Z. Worked by hand in the comments.
SCENARIO = [
    ev("1", "landing_view", "2026-03-01T23:59:00+08:00", visitor_id="v1", channel="ads"),
    ev("2", "joined", "2026-03-02T00:00:30+08:00", member_id="m1", visitor_id="v1", channel="ads", group="g1",
       properties={"tier": "core"}),
    ev("3", "message", "2026-03-03T10:00:00+08:00", member_id="m1"),  # m1 D1
    ev("4", "task_completed", "2026-03-03T23:59:59+08:00", member_id="m1"),  # M9: join_day + 1
    ev("5", "order", "2026-04-01T00:00:30+08:00", member_id="m1", amount=50),  # join + exactly 30 d: no conversion
    ev("6", "order", "2026-03-09T12:00:00+08:00", member_id="m2", amount=100),  # before joining: ignored
    ev("7", "joined", "2026-03-10T12:00:00+08:00", member_id="m2", channel="ads", group="g1",
       properties={"tier": "newbie"}),
    ev("8", "message", "2026-03-10T16:30:00Z", member_id="m2"),  # 03-11 00:30 local: m2 D1
    ev("9", "order", "2026-04-09T11:59:59+08:00", member_id="m2", amount=200, margin=80),  # join + 30 d - 1 s
    ev("10", "landing_view", "2026-03-05T10:00:00+08:00", visitor_id="v3", channel="content"),
    ev("11", "joined", "2026-03-12T10:00:00+08:00", member_id="m3", visitor_id="v3", channel="content",
       group="g1"),  # exactly 7 x 24 h after the landing: not a landing conversion
    ev("12", "left", "2026-03-13T10:00:00+08:00", member_id="m3"),
    ev("13", "joined", "2026-03-14T10:00:00+08:00", member_id="m3", channel="ads", group="g2"),  # rejoin
    ev("14", "joined", "2026-03-20T10:00:00+08:00", member_id="m4", channel="content", group="g2"),
    ev("15", "message", "2026-03-27T09:00:00+08:00", member_id="m4"),  # m4 D7
    ev("16", "left", "2026-03-25T10:00:00+08:00", member_id="m4"),
    ev("17", "landing_view", "2026-03-30T10:00:00+08:00", visitor_id="v5", channel="content"),
]
SPEND = [("ads", date(2026, 3, 3), Decimal("600")), ("ads", date(2026, 3, 20), Decimal("400")),
         ("offline", date(2026, 3, 15), Decimal("500")), ("ads", date(2026, 2, 28), Decimal("999"))]


def load(ws: Workspace, events: list[dict[str, Any]], spend_rows: list[tuple[str, date, Decimal]] = ()) -> None:
    result = ingest_batch(ws.engine, events)
    assert not result.errors, result.errors
    if spend_rows:
        with ws.engine.begin() as conn:
            conn.execute(insert(spend), [{"channel": c, "day": d, "amount": a, "currency": "CNY"}
                                         for c, d, a in spend_rows])


def rows_by(report: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    return {row[report["by"]]: row for row in report["rows"]}


def test_hand_worked_edge_cases_by_channel(any_workspace: Workspace) -> None:
    load(any_workspace, SCENARIO + SCENARIO[:5], SPEND)  # re-sent events are no-ops
    report = metrics_report(any_workspace, start=START, end=END, as_of=AS_OF, by="channel")
    rows = rows_by(report)
    assert set(rows) == {"ads", "content", "offline"}
    ads, content, offline = rows["ads"], rows["content"], rows["offline"]
    assert (ads["landing_visitors"], ads["join_conversion"], ads["cohort_size"]) == (1, 1.0, 2)
    assert (ads["retention_d1"], ads["retention_d7"], ads["retention_d14"], ads["retention_d30"]) == (1, 0, 0, 1)
    assert ads["task_completion_d1"] == 0.5
    assert (ads["converted"], ads["in_progress"], ads["conversion_rate"]) == (1, 0, 0.5)
    assert ads["median_seconds_to_conversion"] == 30 * 86400 - 1
    assert (ads["revenue_per_member"], ads["margin_per_member"]) == (100, 40)
    assert ads["ltv_90_revenue"] is None  # nobody has had 90 days yet
    assert (ads["spend"], ads["cost_per_join"], ads["cost_per_acquisition"]) == (1000, 500, 1000)
    assert (ads["current_members"], ads["active_ratio_7d"], ads["active_ratio_30d"]) == (2, 0, 1)
    # m3 keeps the channel of their first join; the landing 7 x 24 h before the join does not count.
    assert (content["cohort_size"], content["landing_visitors"], content["join_conversion"]) == (2, 2, 0)
    assert (content["retention_d1"], content["retention_d7"], content["current_members"]) == (0, 0.5, 1)
    # An organic channel spent 0: 0 per join (METRICS.md M8); no conversion, so no cost per acquisition.
    assert (content["spend"], content["cost_per_join"], content["cost_per_acquisition"]) == (0, 0, None)
    # Spend and no joins: the spend shows, the costs are undefined.
    assert (offline["spend"], offline["cost_per_join"], offline["cohort_size"], offline["retention_d1"]) == (
        500, None, 0, None)
    total = report["total"]
    assert (total["cohort_size"], total["landing_visitors"], total["spend"]) == (4, 3, 1500)
    assert total["join_conversion"] == pytest.approx(1 / 3)


def test_current_members_by_group_keep_the_first_joins_group(workspace: Workspace) -> None:
    """M3 by group reads the group as every slice does, from the first join (../shared/floor's reading)."""
    load(workspace, SCENARIO)
    rows = rows_by(metrics_report(workspace, start=START, end=END, as_of=AS_OF, by="group"))
    assert rows["g1"]["cohort_size"] == 3 and rows["g1"]["current_members"] == 3  # m1, m2, m3 (rejoined into g2)
    assert rows["g2"]["cohort_size"] == 1 and rows["g2"]["current_members"] == 0  # m4 left
    filtered = metrics_report(workspace, start=START, end=END, as_of=AS_OF, filters={"group": "g2"})["total"]
    assert (filtered["cohort_size"], filtered["current_members"]) == (1, 0)


def test_young_cohort_shows_no_value_and_counts_in_progress(workspace: Workspace) -> None:
    load(workspace, SCENARIO)
    total = metrics_report(workspace, start=START, end=END, as_of=date(2026, 3, 12), by="none")["total"]
    # As of 03-12: m1, m2 joined; m3 joined that day. Nobody is 30 days in.
    assert total["conversion_rate"] is None and total["retention_d30"] is None
    assert (total["converted"], total["in_progress"], total["cohort_size"]) == (0, 3, 3)
    assert total["retention_d1"] == 1.0  # m1 and m2 are eligible and retained; m3 is not eligible yet


def test_bad_parameters_are_refused(workspace: Workspace) -> None:
    with pytest.raises(Exception, match="by must be one of"):
        metrics_report(workspace, by="city")
    with pytest.raises(Exception, match="after"):
        metrics_report(workspace, start=END, end=START)


# --- random event logs against the oracle ---

BASE = datetime(2026, 2, 27, 16, 0)  # midnight in Asia/Shanghai
TYPES = ["landing_view", "joined", "joined", "left", "message", "task_completed", "checkin", "order", "booking",
         "invite_sent", "reaction", "coupon_issued", "experiment_exposure"]
MINUTE_OFFSETS = st.one_of(
    st.integers(0, 70 * 24 * 60),
    st.sampled_from([d * 1440 + o for d in (0, 1, 7, 14, 30, 31) for o in (-1, 0, 1)]),  # near day/window edges
)


@st.composite
def event_logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(TYPES))
        minutes = draw(MINUTE_OFFSETS)
        seconds = draw(st.sampled_from([0, 30, 59]))
        ts = (BASE + timedelta(minutes=minutes, seconds=seconds)).isoformat() + "Z"
        member = draw(st.sampled_from(["m1", "m2", "m3", "m4", None]))
        visitor = draw(st.sampled_from(["v1", "v2", "v3", None]))
        if member is None and visitor is None:
            visitor = "v9"
        fields: dict[str, Any] = {"member_id": member, "visitor_id": visitor,
                                  "channel": draw(st.sampled_from(["ads", "content", None])),
                                  "group": draw(st.sampled_from(["g1", "g2", None])),
                                  "entry_point": draw(st.sampled_from(["e1", None]))}
        if kind == "joined":
            fields["referrer_id"] = draw(st.sampled_from(["m1", "m2", None]))
            fields["properties"] = {"tier": draw(st.sampled_from(["core", "newbie"]))}
        if kind == "experiment_exposure":
            fields["experiment"] = draw(st.sampled_from(["exp", "exp", "other"]))
            fields["variant"] = draw(st.sampled_from(["A", "B"]))
        if kind in ("order", "booking"):
            fields["amount"] = draw(st.sampled_from([10, 99.5, 200]))
            fields["margin"] = draw(st.sampled_from([1, 20.25]))
        event_id = f"e{draw(st.integers(0, 45)) if draw(st.booleans()) else 1000 + i}"  # some re-sent ids
        out.append(ev(event_id, kind, ts, **{k: v for k, v in fields.items() if v is not None}))
    return out


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


@pytest.fixture(scope="module")
def emptied_workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """One workspace for every example, emptied before each (tests/emptied.py)."""
    ws = init_workspace(tmp_path_factory.mktemp("prop"))
    yield ws
    ws.close()


# Each example ships a new log; shrinking them is slow, so failures are reported unshrunk.
@pytest.mark.long
@settings(max_examples=examples(20), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(logs=event_logs(), as_of_offset=st.integers(0, 75), span=st.integers(0, 40))
def test_every_metric_and_slice_matches_the_reference(emptied_workspace: Workspace, logs: list[dict[str, Any]],
                                                     as_of_offset: int, span: int) -> None:
    ws = emptied_workspace
    empty(ws)
    # Within a batch the first copy of an id wins: send them one at a time to mirror the oracle.
    for event in logs:
        ingest_batch(ws.engine, [event])
    spend_rows = [("ads", date(2026, 3, 1), Decimal("300")), ("tv", date(2026, 3, 2), Decimal("50"))]
    load(ws, [], spend_rows)
    start = date(2026, 2, 28)
    end = start + timedelta(days=span)
    as_of = start + timedelta(days=as_of_offset)
    for by in DIMENSIONS:
        experiment = "exp" if by == "variant" else None
        report = metrics_report(ws, start=start, end=end, as_of=as_of, by=by, experiment=experiment)
        expected = reference_metrics(logs, start, end, as_of, by, spend_rows, experiment=experiment)
        got = {"__total__": report["total"], **rows_by(report)} if by != "none" else {"__total__": report["total"]}
        expected_keys = set(expected) if by != "none" else {"__total__"}
        assert set(got) == expected_keys, by
        for key, values in got.items():
            for metric in METRIC_KEYS:
                assert same(values[metric], expected[key][metric]), (by, key, metric, values[metric],
                                                                     expected[key][metric])


def test_active_ratio_counts_every_current_member_not_only_the_cohort(workspace: Workspace) -> None:
    early = [ev("e0", "joined", "2026-02-15T10:00:00+08:00", member_id="m0", channel="ads", group="g1"),
             ev("e1", "reaction", "2026-04-28T10:00:00+08:00", member_id="m0")]
    load(workspace, SCENARIO + early)
    rows = rows_by(metrics_report(workspace, start=START, end=END, as_of=AS_OF, by="channel"))
    # m0 joined before the period: outside the cohort (cohort_size 2) but a current member, active this week.
    assert (rows["ads"]["cohort_size"], rows["ads"]["current_members"]) == (2, 3)
    assert rows["ads"]["active_ratio_7d"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("by", ["channel", "group", "tier", "campaign", "entry_point"])
def test_a_filter_gives_the_same_numbers_as_that_row_of_the_slice(workspace: Workspace, by: str) -> None:
    load(workspace, SCENARIO + [ev("e0", "joined", "2026-02-15T10:00:00+08:00", member_id="m0", channel="ads",
                                   group="g1", campaign="spring", entry_point="ep1",
                                   properties={"tier": "core"})], SPEND)
    sliced = rows_by(metrics_report(workspace, start=START, end=END, as_of=AS_OF, by=by))
    for value, row in sliced.items():
        if value is None:
            continue
        narrowed = metrics_report(workspace, start=START, end=END, as_of=AS_OF, filters={by: value})["total"]
        assert narrowed == {k: v for k, v in row.items() if k != by}, (by, value)


def test_unknown_filter_is_refused(workspace: Workspace) -> None:
    with pytest.raises(Exception, match="cannot filter by 'city'"):
        metrics_report(workspace, filters={"city": "x"})
