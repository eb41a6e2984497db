"""The columnar fast path gives exactly what parse_event gives, row by row: values, errors, order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qunflow.domain.event_columns import EventColumns, event_columns, validate_columns
from qunflow.domain.events import MAX_MONEY, TEXT_FIELDS, Event, parse_event
from qunflow.errors import InvalidInput
from qunflow.store.eventlog import _sqlite_stamps, driver_columns

VALID = {"event_id": "e1", "type": "order", "ts": "2026-01-20T08:30:00+08:00", "member_id": "m1"}


def per_row(items: list[Any], str_is_reason: bool = True) -> tuple[list[Event], list[tuple[int, str]]]:
    """The reference: parse_event on each item, as the import did before the fast path."""
    valid: list[Event] = []
    errors: list[tuple[int, str]] = []
    for index, item in enumerate(items):
        try:
            if str_is_reason and isinstance(item, str):
                raise InvalidInput(item)
            valid.append(parse_event(item))
        except InvalidInput as exc:
            errors.append((index, str(exc)))
    return valid, errors


def stored(batch: EventColumns, postgres: bool) -> dict[str, list[Any]]:
    """What the event log would bind, with columns that hold only NULL left out (they store NULL)."""
    columns = driver_columns(batch, postgres)
    if postgres:  # Decimal("-0.0000") == Decimal("0"): compare the text the database is sent
        columns = {name: [v if not isinstance(v, Decimal) else str(v) for v in values]
                   for name, values in columns.items()}
    return {name: values for name, values in columns.items() if values.count(None) != len(values)}


def assert_same_as_per_row(items: list[Any], str_is_reason: bool = True) -> None:
    fast, errors = validate_columns(items, str_is_reason=str_is_reason)
    valid, expected_errors = per_row(items, str_is_reason)
    assert errors == expected_errors
    assert fast.count == len(valid)
    for postgres in (False, True):
        assert stored(fast, postgres) == stored(event_columns(valid), postgres)


# ---- examples ------------------------------------------------------------------------------------

def test_a_clean_batch_takes_the_fast_path_and_keeps_every_value() -> None:
    items = [{**VALID, "event_id": f"e{i}", "amount": "19.9", "channel": "ads", "properties": {"sku": "课程"}}
             for i in range(3)]
    batch, errors = validate_columns(items)
    assert errors == [] and batch.count == 3
    assert batch.columns["ts"][0] == datetime(2026, 1, 20, 0, 30, tzinfo=UTC)
    assert batch.columns["amount"] == [Decimal("19.9000")] * 3
    assert batch.columns["properties"][0] == '{"sku": "课程"}'
    assert batch.events() == [parse_event(item) for item in items]


def test_bad_rows_get_parse_events_reasons_and_keep_their_index() -> None:
    items: list[Any] = [
        VALID,
        {**VALID, "event_id": ""},                      # event_id is required
        {**VALID, "event_id": "x", "member_id": 7},     # valid: an int id becomes text (slow path)
        "not valid JSON: Expecting value",              # a line that could not be read
        {**VALID, "event_id": "y", "ts": "2026-01-20T08:30:00"},  # no offset
        {**VALID, "event_id": "z", "bogus": 1},         # unknown field
        {**VALID, "event_id": "w", "amount": float("nan")},
        {**VALID, "event_id": "v", "type": "experiment_exposure",
         "properties": {"experiment": "ex", "variant": "b"}},  # valid: fields come from properties
        [1, 2],
    ]
    batch, errors = validate_columns(items)
    assert [index for index, _ in errors] == [1, 3, 4, 5, 6, 8]
    assert errors[1] == (3, "not valid JSON: Expecting value")
    assert batch.columns["event_id"] == ["e1", "x", "v"]
    assert batch.columns["member_id"] == ["m1", "7", "m1"]
    assert batch.columns["experiment"] == [None, None, "ex"]
    assert_same_as_per_row(items)


def test_a_str_in_an_api_body_is_an_invalid_event_not_a_reason() -> None:
    batch, errors = validate_columns(["hello", VALID], str_is_reason=False)
    assert errors == [(0, "an event must be a JSON object")] and batch.count == 1


def test_negative_zero_money_is_stored_as_parse_event_stores_it() -> None:
    assert_same_as_per_row([{**VALID, "event_id": str(i), "amount": v}
                            for i, v in enumerate([0.0, -0.0, 0, "-0", "0", 0.0, -0.0])])


def test_empty_text_means_absent_on_both_paths() -> None:
    items = [{**VALID, "channel": "", "campaign": "", "visitor_id": ""}, {**VALID, "event_id": "2", "member_id": ""}]
    assert_same_as_per_row(items)
    batch, errors = validate_columns(items)
    assert batch.columns.get("channel", [None]) == [None] and errors == [(1, "member_id or visitor_id is required")]


def test_an_empty_batch_is_empty() -> None:
    batch, errors = validate_columns([])
    assert batch.count == 0 and errors == []


# ---- any batch -----------------------------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=0, max_size=12)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets)
odd = (st.none() | st.booleans() | st.integers(-10, 10**20) | st.floats() | st.just("")
       | st.just("a\x00b") | st.just("\ud800") | st.just("x" * 129) | st.just("x" * 128)
       | st.lists(st.integers(), max_size=2) | st.dictionaries(texts, st.integers(), max_size=2))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats() | texts
    | st.just("\x00") | st.just("\\u0000") | st.just("\udc80"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=6)
money = (st.decimals(min_value=-MAX_MONEY * 2, max_value=MAX_MONEY * 2, allow_nan=True).map(str)
         | st.floats() | st.integers(-10**14, 10**14) | st.sampled_from(["", "1e3", " 5", "abc", "-0", "0.00005"]))
events = st.fixed_dictionaries(
    {"event_id": texts | st.integers(0, 9) | odd,
     "type": st.sampled_from(["message", "order", "joined", "Bad", "experiment_exposure", "a" * 65, ""]) | odd,
     "ts": moments.map(lambda d: d.isoformat()) | st.sampled_from(
         ["2026-01-20T08:30:00Z", "2026-01-20", "2026-02-30T00:00:00Z", "0001-01-01T00:00:00+01:00",
          "2026-01-20T08:30:00.1234567+08:00", "2026-01-20 08:30:00+08", "20260120T083000Z"]) | odd},
    optional={**{name: st.sampled_from(["m1", "v2", "ads", "ex", "b"]) | texts | odd for name in TEXT_FIELDS},
              "amount": money, "margin": money, "properties": st.dictionaries(texts, json_values, max_size=3) | odd,
              "bogus": st.just(1)},
)
items = st.lists(events | st.sampled_from(["not valid JSON: x", 5, None]), max_size=12)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(items)
def test_any_batch_gives_what_parse_event_gives_row_by_row(batch: list[Any]) -> None:
    assert_same_as_per_row(batch)


@settings(max_examples=100)
@given(items)
def test_any_api_batch_gives_what_parse_event_gives_row_by_row(batch: list[Any]) -> None:
    assert_same_as_per_row(batch, str_is_reason=False)


@settings(max_examples=100)
@given(st.lists(st.fixed_dictionaries(
    {"event_id": texts, "type": st.just("message"), "ts": moments.map(lambda d: d.isoformat()),
     "member_id": st.sampled_from(["m1", "m2"])},
    optional={"amount": money, "properties": st.dictionaries(texts, json_values, max_size=3)}), max_size=20))
def test_mostly_valid_batches_give_what_parse_event_gives(batch: list[Any]) -> None:
    assert_same_as_per_row(batch)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(st.lists(st.datetimes(timezones=st.just(UTC)), max_size=3)
       | st.lists(st.datetimes(timezones=st.just(UTC)), min_size=100, max_size=120))  # by Arrow
def test_sqlite_timestamps_are_written_as_sqlalchemy_writes_them(stamps: list[datetime]) -> None:
    assert _sqlite_stamps(stamps) == [s.isoformat(" ", "microseconds")[:26] for s in stamps]
