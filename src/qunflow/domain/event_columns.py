"""Batch validation of events, column by column: the import's fast path, same rules as parse_event.

A row is accepted here only when cheap checks over whole columns prove that parse_event would accept
it and produce exactly these values; every other row (an error, an int id, an experiment exposure,
anything unusual) goes through parse_event itself, so the reasons given for bad rows are its reasons.
The tests compare both paths on random batches (tests/unit/test_event_columns.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import repeat
from typing import Any

from qunflow.domain.events import (
    KNOWN_FIELDS,
    MAX_ID,
    MONEY_FIELDS,
    TEXT_FIELDS,
    TYPE_PATTERN,
    Event,
    _money,
    parse_event,
    parse_timestamp,
)
from qunflow.errors import InvalidInput

# The columns of a batch, in the order of Event's fields. properties is the stored JSON text.
FIELDS = ("event_id", "type", "ts", *TEXT_FIELDS, *MONEY_FIELDS, "properties")
_NONE = type(None)
_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode  # what json.dumps(...) writes


@dataclass
class EventColumns:
    """Valid events column by column: `columns[name][k]` is field `name` of the k-th valid event.

    A field that no event of the batch carries has no column. ts is an aware UTC datetime, money a
    Decimal, properties the JSON text the event log stores (None when empty).
    """

    count: int = 0
    columns: dict[str, list[Any]] = field(default_factory=dict)

    def events(self) -> list[Event]:
        """The same events as objects (for tests and small callers)."""
        rows: list[Event] = []
        for k in range(self.count):
            values = {name: column[k] for name, column in self.columns.items()}
            text = values.pop("properties", None)
            rows.append(Event(**values, properties=json.loads(text) if text else {}))
        return rows


def event_columns(batch: Sequence[Event]) -> EventColumns:
    """Events (already valid) as columns: the form the event log stores."""
    columns: dict[str, list[Any]] = {}
    for name in FIELDS:
        if name == "properties":
            values: list[Any] = [json.dumps(e.properties, ensure_ascii=False) if e.properties else None
                                 for e in batch]
        else:
            values = [getattr(e, name) for e in batch]
        if name in ("event_id", "type", "ts") or values.count(None) != len(values):
            columns[name] = values
    return EventColumns(len(batch), columns)


def _utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text_ok(value: Any) -> bool:
    """One value that _text would keep unchanged (or turn from "" into None)."""
    if value is None:
        return True
    return type(value) is str and len(value) <= MAX_ID and "\x00" not in value and _utf8(value)


def _check_text(values: list[Any], slow: bytearray) -> list[Any]:
    """Mark the rows whose value needs parse_event; return the column with "" as None."""
    types = set(map(type, values))
    if types <= {str, _NONE}:
        present = [v for v in values if v is not None] if _NONE in types else values
        joined = "".join(present)
        if not present or (max(map(len, present)) <= MAX_ID and "\x00" not in joined and _utf8(joined)):
            return [v or None for v in values] if "" in present else values
    for index, value in enumerate(values):
        if not _text_ok(value):
            slow[index] = 1
    return [v if type(v) is str and v else None for v in values]


def _money_ok(value: Any) -> Decimal | None:
    try:
        return _money("amount", value)
    except InvalidInput:
        return None


def _check_money(values: list[Any], slow: bytearray) -> list[Any]:
    """_money on each value; text and non-zero numbers are worked out once per distinct value.

    (Zero is not cached: -0.0 == 0.0, yet they are stored as -0.0000 and 0.0000.)
    """
    cache: dict[tuple[type, Any], Decimal | None] = {}
    out: list[Any] = []
    for index, value in enumerate(values):
        if value is None:
            out.append(None)
            continue
        kind = type(value)
        if kind is str or ((kind is float or kind is int) and value):
            key = (kind, value)
            if key in cache:
                number = cache[key]
            else:
                number = cache[key] = _money_ok(value)
        else:
            number = _money_ok(value)
        if number is None and value != "":
            slow[index] = 1
        out.append(number)
    return out


def properties_text(value: Any) -> tuple[bool, str | None]:
    """(True, the JSON text the event log stores for a parsed `properties` value, None when it is empty), or
    (False, ...) when parse_event must judge the value (not an object, not strict JSON, NUL, bad Unicode)."""
    if value is None or value == "" or (type(value) is dict and not value):
        return True, None
    if type(value) is not dict:
        return False, None
    try:
        text = _dumps(value)
    except (TypeError, ValueError):
        return False, None
    return "\\u0000" not in text and _utf8(text), text


def _check_properties(values: list[Any], slow: bytearray) -> list[Any]:
    out: list[Any] = []
    for index, value in enumerate(values):
        ok, text = properties_text(value)
        if not ok:
            slow[index] = 1
        out.append(text)
    return out


def _timestamp(value: Any) -> datetime | None:
    try:
        return parse_timestamp(value)
    except InvalidInput:
        return None


def _check_type(values: list[Any], slow: bytearray) -> list[Any]:
    """A valid type, other than experiment_exposure (parse_event moves its properties to fields)."""
    distinct = set(values) if set(map(type, values)) == {str} else set()
    good = {v for v in distinct if v != "experiment_exposure" and TYPE_PATTERN.fullmatch(v)}
    if not distinct or len(good) != len(distinct):
        for index, value in enumerate(values):
            if type(value) is not str or value not in good:
                slow[index] = 1
    return values


CHECKS: dict[str, Callable[[list[Any], bytearray], list[Any]]] = {
    "type": _check_type, "amount": _check_money, "margin": _check_money, "properties": _check_properties,
}


@dataclass
class RawBatch:
    """Events as read, column by column: `columns[name][k]` is field `name` of row k (None: absent).

    `row(k)` gives row k as parse_event sees it (a str: the reason the row could not be read);
    `doubtful` marks the rows the reader already knows need parse_event (unreadable, unknown fields).
    A reader can build the columns straight from its own columns, without a dict per row. With
    `ts_parsed` the ts column holds what parse_timestamp made of row(k)'s ts (Parquet's own instants).
    """

    count: int
    columns: dict[str, list[Any]]
    row: Callable[[int], Any]
    doubtful: bytearray
    ts_parsed: bool = False

    @classmethod
    def from_items(cls, items: Sequence[Any]) -> RawBatch:
        count = len(items)
        doubtful = bytearray(count)
        rows: Sequence[Any] = items
        if set(map(type, items)) - {dict}:
            rows = [item if type(item) is dict else {} for item in items]
            for index, item in enumerate(items):
                if type(item) is not dict:
                    doubtful[index] = 1
        names = set().union(*rows)
        if not KNOWN_FIELDS.issuperset(names):
            for index, row in enumerate(rows):
                if not KNOWN_FIELDS.issuperset(row):
                    doubtful[index] = 1
        columns = {name: list(map(dict.get, rows, repeat(name, count))) for name in FIELDS if name in names}
        return cls(count, columns, items.__getitem__, doubtful)


def validate_columns(items: Sequence[Any], *,
                     str_is_reason: bool = True) -> tuple[EventColumns, list[tuple[int, str]]]:
    """Validate a batch: (valid events as columns, in input order; (index, reason) per refused item).

    With str_is_reason an item that is a str is a reason already (a line of a file that could not be
    read); otherwise it is an invalid event like any other non-object.
    """
    return validate_raw(RawBatch.from_items(items), str_is_reason=str_is_reason)


def validate_raw(raw: RawBatch, *, str_is_reason: bool = True) -> tuple[EventColumns, list[tuple[int, str]]]:
    """validate_columns for a batch a reader has already put in columns."""
    count = raw.count
    slow = bytearray(raw.doubtful)  # 1: this row goes through parse_event
    fast: dict[str, list[Any]] = {}
    for name in FIELDS:
        values = raw.columns.get(name)
        if values is None:
            if name not in ("event_id", "type", "ts"):
                continue
            values = [None] * count
        if name == "ts":
            fast[name] = values if raw.ts_parsed else [_timestamp(v) for v in values]
            for index, stamp in enumerate(fast[name]):
                if stamp is None:
                    slow[index] = 1
        else:
            fast[name] = CHECKS.get(name, _check_text)(values, slow)
    for index, event_id in enumerate(fast["event_id"]):
        if event_id is None:
            slow[index] = 1
    members, visitors = fast.get("member_id"), fast.get("visitor_id")
    for index in range(count):
        if (members is None or members[index] is None) and (visitors is None or visitors[index] is None):
            slow[index] = 1
    if not any(slow):
        return EventColumns(count, fast), []
    return _merge(raw.row, fast, slow, str_is_reason)


def _merge(row: Callable[[int], Any], fast: dict[str, list[Any]], slow: bytearray,
           str_is_reason: bool) -> tuple[EventColumns, list[tuple[int, str]]]:
    """Put the rows parse_event decides on back in their places among the fast ones."""
    decided: dict[int, Event] = {}
    errors: list[tuple[int, str]] = []
    for index, flag in enumerate(slow):
        if flag:
            item = row(index)
            if str_is_reason and isinstance(item, str):  # the reader's own reason the row was refused
                errors.append((index, item))
                continue
            try:
                decided[index] = parse_event(item)
            except InvalidInput as exc:
                errors.append((index, str(exc)))
    keep = [index for index, flag in enumerate(slow) if not flag or index in decided]
    slow_columns = event_columns(list(decided.values())).columns
    position = {index: k for k, index in enumerate(decided)}
    columns: dict[str, list[Any]] = {}
    for name in FIELDS:
        mine, theirs = fast.get(name), slow_columns.get(name)
        if mine is None and theirs is None:
            continue
        values = [(mine[i] if mine is not None else None) if not slow[i]
                  else (theirs[position[i]] if theirs is not None else None) for i in keep]
        if name in ("event_id", "type", "ts") or values.count(None) != len(values):
            columns[name] = values
    return EventColumns(len(keep), columns), errors
