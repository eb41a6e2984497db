"""Event validation: what the event log accepts, and the reason it gives when it refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qunflow.domain.events import event_to_json, parse_event
from qunflow.errors import InvalidInput

VALID = {"event_id": "e1", "type": "order", "ts": "2026-01-20T08:30:00+08:00", "member_id": "m1"}


def test_timestamps_with_an_offset_are_stored_in_utc() -> None:
    event = parse_event(VALID)
    assert event.ts == datetime(2026, 1, 20, 0, 30, tzinfo=UTC)
    assert parse_event({**VALID, "ts": "2026-01-20T00:30:00Z"}).ts == event.ts


@pytest.mark.parametrize("change, reason", [
    ({"ts": "2026-01-20T08:30:00"}, "no UTC offset"),
    ({"ts": "20/01/2026"}, "not RFC 3339"),
    ({"ts": 1737333000}, "RFC 3339 string"),
    ({"event_id": ""}, "event_id is required"),
    ({"type": "Order"}, "type is required"),
    ({"member_id": None}, "member_id or visitor_id is required"),
    ({"amount": "ten"}, "amount must be a number"),
    ({"amount": float("nan")}, "finite"),
    ({"amount": True}, "amount must be a number"),
    ({"properties": [1, 2]}, "properties must be a JSON object"),
    ({"colour": "red"}, "unknown field(s): colour"),
    ({"member_id": "m" * 129}, "longer than 128"),
])
def test_each_invalid_event_names_its_problem(change: dict, reason: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidInput, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_event({**VALID, **change})


def test_a_visitor_alone_is_enough_for_a_landing_view() -> None:
    event = parse_event({"event_id": "l1", "type": "landing_view", "ts": "2026-01-20T08:30:00Z", "visitor_id": "v1"})
    assert event.member_id is None and event.visitor_id == "v1"


def test_money_is_kept_to_four_decimals() -> None:
    assert parse_event({**VALID, "amount": 19.99, "margin": "3.14159"}).margin == Decimal("3.1416")


ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40)
events = st.fixed_dictionaries(
    {"event_id": ids, "type": st.from_regex(r"[a-z][a-z0-9_.]{0,20}", fullmatch=True),
     "ts": st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1),
                        timezones=st.sampled_from([UTC])).map(lambda d: d.isoformat()),
     "member_id": ids},
    optional={"channel": ids, "group": ids, "amount": st.decimals(-10**9, 10**9, places=4).map(str),
              "properties": st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)})


@given(events)
def test_any_valid_event_survives_a_round_trip(raw: dict) -> None:  # type: ignore[type-arg]
    event = parse_event(raw)
    again = parse_event(event_to_json(event))
    assert again == event
