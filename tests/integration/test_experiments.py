"""Per-variant metrics (METRICS.md Experiments), worked by hand: exposed people only, behaviour from exposure on."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from qunflow.errors import InvalidInput
from qunflow.services.ingest import ingest_batch
from qunflow.services.metrics import metrics_report
from qunflow.workspace import Workspace
from tests.integration.test_metrics_exact import ev, load, rows_by
from tests.reference_metrics import reference_metrics

START, END, AS_OF = date(2026, 3, 1), date(2026, 3, 7), date(2026, 4, 15)
EXP = "welcome-copy"


def exposure(i: str, ts: str, variant: str, experiment: str = EXP, **who: Any) -> dict[str, Any]:
    return ev(i, "experiment_exposure", ts, experiment=experiment, variant=variant, **who)


# Times are local (+08:00). The comments say which variant each fact lands in, and why.
EVENTS = [
    # m1 (A): exposed a second after joining; D1 message, invite and order after exposure count.
    ev("1", "joined", "2026-03-02T10:00:00+08:00", member_id="m1", channel="ads"),
    exposure("2", "2026-03-02T10:00:01+08:00", "A", member_id="m1"),
    ev("3", "invite_sent", "2026-03-02T09:00:00+08:00", member_id="m1"),  # before exposure (and join): no
    ev("4", "invite_sent", "2026-03-03T08:00:00+08:00", member_id="m1"),  # counts
    ev("5", "message", "2026-03-03T09:00:00+08:00", member_id="m1"),  # D1
    ev("6", "order", "2026-03-05T12:00:00+08:00", member_id="m1", amount=100, margin=30),
    exposure("7", "2026-03-04T00:00:00+08:00", "B", member_id="m1"),  # a later exposure changes nothing
    ev("8", "joined", "2026-03-04T12:00:00+08:00", member_id="m6", referrer_id="m1", channel="kol"),  # referred
    # m2 (B): exposed on day 1 at noon, after the morning's message and task.
    ev("10", "joined", "2026-03-02T11:00:00+08:00", member_id="m2", channel="ads"),
    ev("11", "message", "2026-03-03T09:00:00+08:00", member_id="m2"),  # before exposure: not D1
    ev("12", "task_completed", "2026-03-03T08:00:00+08:00", member_id="m2"),  # before exposure: no M9
    exposure("13", "2026-03-03T12:00:00+08:00", "B", member_id="m2"),
    ev("14", "order", "2026-03-04T12:00:00+08:00", member_id="m2", amount=50, margin=10),
    ev("15", "message", "2026-04-14T12:00:00+08:00", member_id="m2"),  # active in the 7 days to 04-15
    # m4 (B): exposed as visitor v4 on the landing page, at the very moment of the view.
    exposure("20", "2026-03-01T09:00:00+08:00", "B", visitor_id="v4"),
    ev("21", "landing_view", "2026-03-01T09:00:00+08:00", visitor_id="v4", channel="content"),
    ev("22", "joined", "2026-03-01T10:00:00+08:00", member_id="m4", visitor_id="v4", channel="content"),
    ev("23", "message", "2026-03-02T20:00:00+08:00", member_id="m4"),  # D1
    # v5 (A): a view before exposure, then one after; the first after exposure is the one that counts.
    ev("30", "landing_view", "2026-03-01T08:00:00+08:00", visitor_id="v5", channel="ads"),
    exposure("31", "2026-03-01T08:30:00+08:00", "A", visitor_id="v5"),
    ev("32", "landing_view", "2026-03-01T09:00:00+08:00", visitor_id="v5", channel="ads"),
    # Not in the experiment: m3 never exposed, m5 exposed to another experiment.
    ev("40", "joined", "2026-03-02T10:00:00+08:00", member_id="m3", channel="ads"),
    ev("41", "order", "2026-03-03T10:00:00+08:00", member_id="m3", amount=999),
    ev("42", "joined", "2026-03-02T10:00:00+08:00", member_id="m5", channel="ads"),
    exposure("43", "2026-03-02T10:00:00+08:00", "A", experiment="price-test", member_id="m5"),
]
SPEND = [("ads", date(2026, 3, 2), Decimal("300"))]


def report(ws: Workspace, by: str = "variant", **kwargs: Any) -> dict[str, Any]:
    return metrics_report(ws, start=START, end=END, as_of=AS_OF, by=by, experiment=EXP, **kwargs)


def test_each_variant_counts_its_exposed_members_from_exposure_on(any_workspace: Workspace) -> None:
    load(any_workspace, EVENTS, SPEND)
    got = report(any_workspace)
    rows = rows_by(got)
    assert set(rows) == {"A", "B"}
    a, b = rows["A"], rows["B"]
    assert (a["cohort_size"], a["retention_d1"], a["task_completion_d1"]) == (1, 1.0, 0.0)
    assert (a["invites_per_member"], a["k_factor"], a["conversion_rate"]) == (1.0, 1.0, 1.0)
    assert (a["revenue_per_member"], a["margin_per_member"]) == (100, 30)
    assert (a["landing_visitors"], a["join_conversion"]) == (1, 0.0)  # v5, who never joined
    assert (b["cohort_size"], b["retention_d1"], b["task_completion_d1"]) == (2, 0.5, 0.0)  # m4 yes, m2 no
    assert (b["converted"], b["conversion_rate"], b["revenue_per_member"]) == (1, 0.5, 25)
    assert (b["landing_visitors"], b["join_conversion"]) == (1, 1.0)  # v4 viewed at exposure, joined as m4
    assert (b["current_members"], b["active_ratio_7d"]) == (2, 0.5)
    assert (a["spend"], a["cost_per_join"], got["total"]["spend"]) == (None, None, None)  # spend has no variant
    assert (got["experiment"], got["total"]["cohort_size"], got["total"]["landing_visitors"]) == (EXP, 3, 2)


def test_other_slices_narrow_to_the_exposed_and_a_variant_filter_equals_its_row(any_workspace: Workspace) -> None:
    load(any_workspace, EVENTS, SPEND)
    by_channel = rows_by(report(any_workspace, "channel"))
    assert {k: r["cohort_size"] for k, r in by_channel.items()} == {"ads": 2, "content": 1}  # not m3, m5
    variants = rows_by(report(any_workspace))
    for variant, row in variants.items():
        narrowed = report(any_workspace, "none", filters={"variant": variant})["total"]
        assert narrowed == {k: v for k, v in row.items() if k != "variant"}, variant


def test_the_oracle_agrees_for_every_slice(workspace: Workspace) -> None:
    load(workspace, EVENTS, SPEND)
    for by in ("variant", "none", "channel", "cohort_day", "group"):
        got = report(workspace, by)
        expected = reference_metrics(EVENTS, START, END, AS_OF, by, SPEND, experiment=EXP)
        rows = {"__total__": got["total"], **(rows_by(got) if by != "none" else {})}
        assert set(rows) == (set(expected) if by != "none" else {"__total__"}), by
        for key, values in rows.items():
            assert {k: values[k] for k in expected[key]} == pytest.approx(expected[key], nan_ok=False), (by, key)


def test_an_exposure_names_experiment_and_variant_as_fields_or_properties(workspace: Workspace) -> None:
    ts = "2026-03-01T09:00:00+08:00"
    result = ingest_batch(workspace.engine, [
        ev("p1", "experiment_exposure", ts, member_id="m1", properties={"experiment": EXP, "variant": "A"}),
        ev("p2", "experiment_exposure", ts, member_id="m2", experiment=EXP),
        ev("p3", "experiment_exposure", ts, member_id="m3", experiment=EXP, variant="A",
           properties={"variant": "B"}),
    ])
    assert result.stored == 1
    assert [(e["index"], e["reason"]) for e in result.errors] == [
        (1, "experiment_exposure needs variant (a field or properties.variant)"),
        (2, "experiment_exposure: variant and properties.variant differ")]


def test_by_variant_needs_an_experiment(workspace: Workspace) -> None:
    with pytest.raises(InvalidInput, match="need an experiment"):
        metrics_report(workspace, by="variant")
    with pytest.raises(InvalidInput, match="need an experiment"):
        metrics_report(workspace, filters={"variant": "A"})
