"""The event: one fact in the append-only log (METRICS.md "Basics"), and its validation."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from qunflow.errors import InvalidInput

# Types the product itself writes or reads; any other well-formed type is accepted too.
CORE_TYPES = frozenset({
    "landing_view", "gate_submitted", "joined", "left", "welcome_sent", "task_assigned",
    "task_completed", "message", "checkin", "reaction", "poll_vote", "order", "booking",
    "signup", "download", "refund", "coupon_issued", "coupon_redeemed", "invite_sent",
    "experiment_exposure", "consent_changed",  # consent_changed: P8 records; no metric reads it
    "level_changed",  # services/levels.py: a member's engagement level moved (properties from, to, score)
})
TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
TEXT_FIELDS = ("member_id", "visitor_id", "channel", "campaign", "entry_point", "group",
               "referrer_id", "currency", "experiment", "variant")
MONEY_FIELDS = ("amount", "margin")
KNOWN_FIELDS = frozenset(("event_id", "type", "ts", "properties", *TEXT_FIELDS, *MONEY_FIELDS))
MAX_ID = 128
MAX_MONEY = Decimal("1e13")
MONEY_STEP = Decimal("0.0001")  # money is kept to four decimals
NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # how json.dumps writes a NUL character


# Treat an Event as immutable. It is not declared frozen because a frozen dataclass's __init__
# costs about 1.5 µs more per event, a tenth of the whole import path (bench/bench_ingest.py).
@dataclass(slots=True)
class Event:
    event_id: str
    type: str
    ts: datetime  # aware, UTC
    member_id: str | None = None
    visitor_id: str | None = None
    channel: str | None = None
    campaign: str | None = None
    entry_point: str | None = None
    group: str | None = None
    referrer_id: str | None = None
    amount: Decimal | None = None
    margin: Decimal | None = None
    currency: str | None = None
    experiment: str | None = None
    variant: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        """Column values for the event table (ts as naive UTC, the storage convention)."""
        row = {name: getattr(self, name) for name in ("event_id", "type", *TEXT_FIELDS,
                                                      *MONEY_FIELDS, "properties")}
        row["ts"] = self.ts.replace(tzinfo=None)
        row["group_key"] = row.pop("group")
        return row


def parse_timestamp(value: Any) -> datetime:
    """RFC 3339 with an offset ('Z' allowed), returned in UTC."""
    if not isinstance(value, str):
        raise InvalidInput("ts must be an RFC 3339 string such as 2026-01-20T08:30:00+08:00",
                           zh="ts 须为 RFC 3339 字符串,例如 2026-01-20T08:30:00+08:00")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"ts {value!r} is not RFC 3339", zh=f"ts {value!r} 不是 RFC 3339 格式") from exc
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidInput(f"ts {value!r} has no UTC offset; add Z or +08:00",
                           zh=f"ts {value!r} 缺少 UTC 偏移:请加上 Z 或 +08:00")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise InvalidInput(f"ts {value!r} is out of range in UTC", zh=f"ts {value!r} 换算成 UTC 后超出范围") from None


def _storable(name: str, text: str) -> str:
    """Text every store can hold: no NUL (PostgreSQL refuses it), valid UTF-8 (no lone surrogates)."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{name} is not valid Unicode text", zh=f"{name} 不是有效的 Unicode 文本") from None
    if "\x00" in text:
        raise InvalidInput(f"{name} must not contain NUL characters", zh=f"{name} 不能包含 NUL 字符")
    return text


def _text(name: str, value: Any, limit: int = MAX_ID) -> str | None:
    if type(value) is not str:  # the common case is a str; ints are accepted as ids
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{name} must be a string", zh=f"{name} 须为字符串")
        value = str(value)
    if not value:
        return None
    if len(value) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters", zh=f"{name} 超过 {limit} 个字符")
    return _storable(name, value)


def _money(name: str, value: Any) -> Decimal | None:
    if value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be a number", zh=f"{name} 须为数字")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{name} must be a finite number", zh=f"{name} 须为有限的数字")
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidInput(f"{name} must be a number, got {value!r}", zh=f"{name} 须为数字,收到的是 {value!r}") from exc
    if not number.is_finite() or abs(number) >= MAX_MONEY:
        raise InvalidInput(f"{name} must be a finite number below 1e13", zh=f"{name} 须为小于 1e13 的有限数字")
    return number.quantize(MONEY_STEP)


def _properties(value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput("properties must be a JSON object", zh="properties 须为 JSON 对象")
    if not value:
        return {}
    try:  # what the event log will store: strict JSON (no NaN), valid UTF-8, no NUL
        stored = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"properties is not storable as JSON: {exc}", zh=f"properties 无法存为 JSON:{exc}") from None
    if NUL_ESCAPE.search(stored):
        raise InvalidInput("properties must not contain NUL characters", zh="properties 不能包含 NUL 字符")
    _storable("properties", stored)
    return dict(value)


def parse_event(raw: Any) -> Event:
    """Validate one incoming event; raises InvalidInput naming the first problem."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("an event must be a JSON object", zh="事件须为 JSON 对象")
    if not KNOWN_FIELDS.issuperset(raw):
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(set(raw) - KNOWN_FIELDS))}",
                           zh=f"未知字段:{', '.join(sorted(set(raw) - KNOWN_FIELDS))}")
    get = raw.get
    value = get("event_id")
    event_id = None if value is None else _text("event_id", value)
    if not event_id:
        raise InvalidInput("event_id is required", zh="event_id 必填")
    kind = get("type")
    if type(kind) is not str or not TYPE_PATTERN.fullmatch(kind):
        raise InvalidInput("type is required: lower-case letters, digits, '_' or '.', e.g. joined",
                           zh="type 必填:只能用小写字母、数字、“_”或“.”,例如 joined")
    ts = parse_timestamp(get("ts"))
    fields: dict[str, Any] = {}  # only the optional fields present: most events carry three or four
    for name in TEXT_FIELDS:
        value = get(name)
        if value is not None:
            fields[name] = _text(name, value)
    if fields.get("member_id") is None and fields.get("visitor_id") is None:
        raise InvalidInput("member_id or visitor_id is required", zh="member_id 和 visitor_id 至少要有一个")
    for name in MONEY_FIELDS:
        value = get(name)
        if value is not None:
            fields[name] = _money(name, value)
    value = get("properties")
    if value is not None:
        fields["properties"] = _properties(value)
    if kind == "experiment_exposure":
        _exposure(fields)
    return Event(event_id, kind, ts, **fields)


def _exposure(fields: dict[str, Any]) -> None:
    """An exposure names its experiment and variant, as fields or (METRICS.md) as properties; stored as fields."""
    properties = fields.get("properties") or {}
    for name in ("experiment", "variant"):
        if fields.get(name) is None and properties.get(name) not in (None, ""):
            value = properties[name]
            if type(value) is not str:
                raise InvalidInput(f"experiment_exposure: properties.{name} must be text",
                                   zh=f"experiment_exposure:properties.{name} 须为文本")
            fields[name] = _text(name, value)
        if not fields.get(name):
            raise InvalidInput(f"experiment_exposure needs {name} (a field or properties.{name})",
                               zh=f"experiment_exposure 需要 {name}(作为字段或 properties.{name})")
        if fields.get(name) != properties.get(name, fields[name]):
            raise InvalidInput(f"experiment_exposure: {name} and properties.{name} differ",
                               zh=f"experiment_exposure:{name} 与 properties.{name} 不一致")


def event_to_json(event: Event) -> dict[str, Any]:
    """The wire form of an event (what the API and import accept back)."""
    out: dict[str, Any] = {"event_id": event.event_id, "type": event.type,
                           "ts": event.ts.isoformat().replace("+00:00", "Z")}
    for name in TEXT_FIELDS:
        value = getattr(event, name)
        if value is not None:
            out[name] = value
    for name in MONEY_FIELDS:
        value = getattr(event, name)
        if value is not None:  # a decimal string: a float loses cents above about 1e11
            out[name] = str(value)
    if event.properties:
        out["properties"] = event.properties
    return out
