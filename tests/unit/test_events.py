"""Event validation: what the event log accepts, and the reason it gives when it refuses."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qunflow.domain.events import MAX_MONEY, TEXT_FIELDS, event_to_json, parse_event
from qunflow.errors import InvalidInput

VALID = {"event_id": "e1", "type": "order", "ts": "2026-01-20T08:30:00+08:00", "member_id": "m1"}


def test_timestamps_with_an_offset_are_stored_in_utc() -> None:
    event = parse_event(VALID)
    assert event.ts == datetime(2026, 1, 20, 0, 30, tzinfo=UTC) and event.ts.utcoffset() == timedelta(0)
    assert parse_event({**VALID, "ts": "2026-01-20T00:30:00Z"}).ts == event.ts
    assert parse_event({**VALID, "ts": "2026-01-19T19:30:00-05:00"}).ts == event.ts


@pytest.mark.parametrize("change, reason", [
    ({"ts": "2026-01-20T08:30:00"}, "has no UTC offset"),
    ({"ts": "20/01/2026"}, "is not RFC 3339"),
    ({"ts": 1737333000}, "ts must be an RFC 3339 string"),
    ({"ts": None}, "ts must be an RFC 3339 string"),
    ({"ts": "0001-01-01T00:00:00+01:00"}, "out of range in UTC"),
    ({"ts": "9999-12-31T23:59:59-01:00"}, "out of range in UTC"),
    ({"event_id": ""}, "event_id is required"),
    ({"event_id": None}, "event_id is required"),
    ({"event_id": ["e1"]}, "event_id must be a string"),
    ({"event_id": True}, "event_id must be a string"),
    ({"event_id": "e" * 129}, "event_id is longer than 128 characters"),
    ({"type": "Order"}, "type is required"),
    ({"type": "order\n"}, "type is required"),
    ({"type": "1st"}, "type is required"),
    ({"type": "o" * 65}, "type is required"),
    ({"type": None}, "type is required"),
    ({"member_id": None}, "member_id or visitor_id is required"),
    ({"member_id": ""}, "member_id or visitor_id is required"),
    ({"member_id": "m" * 129}, "member_id is longer than 128 characters"),
    ({"member_id": "m\x00"}, "member_id must not contain NUL characters"),
    ({"channel": "ads\ud800"}, "channel is not valid Unicode text"),
    ({"channel": {"name": "ads"}}, "channel must be a string"),
    ({"amount": "ten"}, "amount must be a number, got 'ten'"),
    ({"amount": float("nan")}, "amount must be a finite number"),
    ({"amount": "Infinity"}, "amount must be a finite number below 1e13"),
    ({"amount": "1e13"}, "amount must be a finite number below 1e13"),
    ({"margin": True}, "margin must be a number"),
    ({"margin": [1]}, "margin must be a number"),
    ({"properties": [1, 2]}, "properties must be a JSON object"),
    ({"properties": "{}"}, "properties must be a JSON object"),
    ({"properties": {"score": float("nan")}}, "properties is not storable as JSON"),
    ({"properties": {"note": "a\x00b"}}, "properties must not contain NUL characters"),
    ({"properties": {"note": "\udfff"}}, "properties is not valid Unicode text"),
    ({"colour": "red", "size": 3}, "unknown field(s): colour, size"),
])
def test_each_invalid_event_names_its_problem(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(reason)):
        parse_event({**VALID, **change})


@pytest.mark.parametrize("raw", [None, [], "e1", 42, [VALID]])
def test_an_event_must_be_a_json_object(raw: Any) -> None:
    with pytest.raises(InvalidInput, match="an event must be a JSON object"):
        parse_event(raw)


def test_a_visitor_alone_is_enough_for_a_landing_view() -> None:
    event = parse_event({"event_id": "l1", "type": "landing_view", "ts": "2026-01-20T08:30:00Z",
                         "visitor_id": "v1"})
    assert event.member_id is None and event.visitor_id == "v1"


def test_any_well_formed_type_is_accepted_not_only_the_core_ones() -> None:
    assert parse_event({**VALID, "type": "shop.refund_v2"}).type == "shop.refund_v2"


def test_numeric_ids_become_text_and_empty_text_means_absent() -> None:
    event = parse_event({**VALID, "event_id": 17, "member_id": 42, "channel": "", "campaign": None})
    assert (event.event_id, event.member_id, event.channel, event.campaign) == ("17", "42", None, None)


def test_empty_money_and_properties_mean_absent() -> None:
    event = parse_event({**VALID, "amount": "", "margin": None, "properties": ""})
    assert (event.amount, event.margin, event.properties) == (None, None, {})


def test_money_is_kept_to_four_decimals() -> None:
    event = parse_event({**VALID, "amount": 19.99, "margin": "3.14159"})
    assert event.amount == Decimal("19.9900") and event.margin == Decimal("3.1416")
    assert parse_event({**VALID, "amount": "-0.00004"}).amount == Decimal("0.0000")


def test_money_just_below_the_limit_is_accepted() -> None:
    assert parse_event({**VALID, "amount": "9999999999999.9999"}).amount == Decimal("9999999999999.9999")


def test_properties_keep_their_json_values() -> None:
    props = {"sku": "课程-A", "qty": 2, "tags": ["vip", None], "nested": {"ok": True}}
    assert parse_event({**VALID, "properties": props}).properties == props


# ---- properties that hold for every input --------------------------------------------------------

texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1), timezones=offsets)
money = st.decimals(min_value=-MAX_MONEY + 1, max_value=MAX_MONEY - 1, places=4, allow_nan=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=8)
valid_events = st.fixed_dictionaries(
    {"event_id": texts, "type": st.from_regex(r"[a-z][a-z0-9_.]{0,63}", fullmatch=True),
     "ts": moments.map(lambda d: d.isoformat())},
    optional={**{name: texts for name in TEXT_FIELDS}, "amount": money.map(str), "margin": money,
              "properties": st.dictionaries(texts, json_values, max_size=4)},
).filter(lambda raw: "member_id" in raw or "visitor_id" in raw)


@given(valid_events)
def test_any_valid_event_survives_a_round_trip(raw: dict[str, Any]) -> None:
    event = parse_event(raw)
    assert parse_event(event_to_json(event)) == event


@given(moments)
def test_any_offset_is_converted_to_the_same_instant_in_utc(moment: datetime) -> None:
    event = parse_event({**VALID, "ts": moment.isoformat()})
    assert event.ts == moment and event.ts.tzinfo is UTC


@given(st.decimals(min_value=-MAX_MONEY + 1, max_value=MAX_MONEY - 1, allow_nan=False, allow_infinity=False))
def test_any_amount_below_the_limit_is_rounded_to_four_decimals(amount: Decimal) -> None:
    stored = parse_event({**VALID, "amount": str(amount)}).amount
    assert stored is not None and stored.as_tuple().exponent == -4
    assert abs(stored - amount) <= Decimal("0.00005")


@given(st.dictionaries(
    st.sampled_from(["ts", "type", "event_id", "amount", "member_id", "properties"]),
    st.none() | st.booleans() | st.floats() | st.text(max_size=5) | st.lists(st.integers())))
def test_any_input_is_either_an_event_or_a_reason(raw: dict[str, Any]) -> None:
    try:
        event = parse_event(raw)
    except InvalidInput as exc:
        assert str(exc)
    else:
        assert event.event_id and event.ts.tzinfo is UTC
