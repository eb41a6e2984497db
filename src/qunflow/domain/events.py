"""The event: one fact in the append-only log (METRICS.md "Basics"), and its validation."""

from __future__ import annotations

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
    "experiment_exposure",
})
TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
TEXT_FIELDS = ("member_id", "visitor_id", "channel", "campaign", "entry_point", "group",
               "referrer_id", "currency", "experiment", "variant")
MONEY_FIELDS = ("amount", "margin")
KNOWN_FIELDS = frozenset(("event_id", "type", "ts", "properties", *TEXT_FIELDS, *MONEY_FIELDS))
MAX_ID = 128
MAX_MONEY = Decimal("1e13")


@dataclass(frozen=True, slots=True)
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
        raise InvalidInput("ts must be an RFC 3339 string such as 2026-01-20T08:30:00+08:00")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"ts {value!r} is not RFC 3339") from exc
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidInput(f"ts {value!r} has no UTC offset; add Z or +08:00")
    return parsed.astimezone(UTC)


def _text(raw: Mapping[str, Any], name: str, limit: int = MAX_ID) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if type(value) is str:  # the common case, checked first: this runs ten times per event
        if len(value) > limit:
            raise InvalidInput(f"{name} is longer than {limit} characters")
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be a string")
    text = str(value)
    if len(text) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters")
    return text


def _money(raw: Mapping[str, Any], name: str) -> Decimal | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{name} must be a finite number")
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidInput(f"{name} must be a number, got {value!r}") from exc
    if not number.is_finite() or abs(number) >= MAX_MONEY:
        raise InvalidInput(f"{name} must be a finite number below 1e13")
    return number.quantize(Decimal("0.0001"))


def parse_event(raw: Any) -> Event:
    """Validate one incoming event; raises InvalidInput naming the first problem."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("an event must be a JSON object")
    if not KNOWN_FIELDS.issuperset(raw):
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(set(raw) - KNOWN_FIELDS))}")
    event_id = _text(raw, "event_id")
    if not event_id:
        raise InvalidInput("event_id is required")
    kind = raw.get("type")
    if not isinstance(kind, str) or not TYPE_PATTERN.match(kind):
        raise InvalidInput("type is required: lower-case letters, digits, '_' or '.', e.g. joined")
    ts = parse_timestamp(raw.get("ts"))
    texts = {name: _text(raw, name) if name in raw else None for name in TEXT_FIELDS}
    if texts["member_id"] is None and texts["visitor_id"] is None:
        raise InvalidInput("member_id or visitor_id is required")
    properties = raw.get("properties") or {}
    if not isinstance(properties, Mapping):
        raise InvalidInput("properties must be a JSON object")
    return Event(
        event_id=event_id, type=kind, ts=ts,
        amount=_money(raw, "amount") if "amount" in raw else None,
        margin=_money(raw, "margin") if "margin" in raw else None,
        properties=dict(properties), **texts,  # type: ignore[arg-type]
    )


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
        if value is not None:
            out[name] = float(value)
    if event.properties:
        out["properties"] = event.properties
    return out
