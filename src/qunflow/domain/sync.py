"""Outbound sync to a CRM or warehouse (docs/sync.md): subscriptions, the payload, the signature, the retry rule.

Pure: the service (services/sync.py) reads the event log and posts; here are the rules it follows. The payload
carries ids and a documented list of fields per event type, never a name, phone or message text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

# A subscription's event names -> the event type qunflow records. The names are accepted as aliases.
EVENT_NAMES = {
    "joined": "joined", "member_joined": "joined",
    "order": "order", "order_attributed": "order",  # an order that names a member (unattributed ones are not sent)
    "level_changed": "level_changed",
    "tier_moved": "tier_moved",
    "consent_changed": "consent_changed",
}
# The fields each type's payload may carry in `properties` (from the event's columns or its properties);
# anything else an event holds stays home. Adding a field here is a documented change (docs/sync.md).
FIELDS: dict[str, tuple[str, ...]] = {
    "joined": ("channel", "campaign", "entry_point", "group", "referrer_id", "tier", "platform", "attribution"),
    "order": ("amount", "currency", "channel", "campaign", "group", "order_id"),
    "level_changed": ("from", "to", "score"),
    "tier_moved": ("rule", "from_group", "from_tier", "to_group", "to_tier", "group", "leave_old"),
    "consent_changed": ("purpose", "granted", "source"),
}
SIGNATURE_HEADER = "X-Qunflow-Signature"
TIMESTAMP_HEADER = "X-Qunflow-Timestamp"
EVENT_ID_HEADER = "X-Qunflow-Event-Id"
EVENT_TYPE_HEADER = "X-Qunflow-Event-Type"
FIRST_WAIT = timedelta(seconds=30)  # after the first failure; doubled after each further one
LONGEST_WAIT = timedelta(hours=1)
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")


class SyncTarget(BaseModel):
    """`[qunflow.sync.<name>]` in qunflow.toml: where to post which events, signed with the secret that the
    environment variable `secret_env` holds (the secret itself is never in the file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    events: list[str] = Field(min_length=1)
    secret_env: str
    attempts: int = Field(default=8, ge=1, le=20)  # failed posts before a delivery is a dead letter
    workspace: str = ""  # names this install in every payload; empty: the host of public_url
    # A new subscription receives the subscribed events already in the log (true), or only those recorded
    # after the worker first saw it (false).
    backfill: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parsed = urlsplit(value.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{value!r} must be an http(s) URL such as https://crm.example.com/qunflow")
        return value.strip()

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in EVENT_NAMES]
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r}: use {', '.join(sorted(EVENT_NAMES))}")
        return value

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not ENV_NAME.fullmatch(value):
            raise ValueError(f"{value!r} must name an environment variable (A-Z, 0-9, _), e.g. QUNFLOW_CRM_SECRET; "
                             "the secret itself never goes in the settings file")
        return value

    @property
    def types(self) -> tuple[str, ...]:
        """The recorded event types this subscription receives."""
        return tuple(sorted({EVENT_NAMES[name] for name in self.events}))


def payload(event: dict[str, Any], workspace: str, external_id: str | None) -> dict[str, Any]:
    """The documented body for one event row (its table columns, `group` for group_key): ids and FIELDS only."""
    props = event.get("properties") or {}
    columns = {**event, "group": event.get("group_key", event.get("group"))}
    kept: dict[str, Any] = {}
    for name in FIELDS.get(event["type"], ()):
        value = columns.get(name)
        if value is None:
            value = props.get(name)
        if value is not None:
            kept[name] = _plain(value)
    member: dict[str, Any] = {"id": event["member_id"]}
    if external_id is not None:
        member["external_id"] = external_id
    return {"id": event["event_id"], "type": event["type"], "ts": _stamp(event["ts"]), "workspace": workspace,
            "member": member, "properties": kept}


def _plain(value: Any) -> Any:
    """JSON's own types: money as a string of its digits (never a float), numbers and flags as they are."""
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _stamp(value: datetime) -> str:
    """RFC 3339 UTC with a Z; the log stores naive UTC."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat(timespec="microseconds").replace("+00:00", "Z")


def body(document: dict[str, Any]) -> bytes:
    """The exact bytes posted (and signed): compact JSON, UTF-8, keys in order."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, timestamp: int, raw: bytes) -> str:
    """`v1=` and the hex HMAC-SHA256 of `<timestamp>.<body>` under the subscription's secret."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def headers(secret: str, timestamp: int, raw: bytes, event_id: str, event_type: str) -> dict[str, str]:
    return {SIGNATURE_HEADER: signature(secret, timestamp, raw), TIMESTAMP_HEADER: str(timestamp),
            EVENT_ID_HEADER: event_id, EVENT_TYPE_HEADER: event_type}


def verify(secret: str, timestamp: str, raw: bytes, header: str, now: float, tolerance: float = 300.0) -> bool:
    """What a receiver checks: the signature matches (compared in constant time) and the timestamp is recent."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(now - stamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, stamp, raw), header)


def wait_after(failures: int) -> timedelta:
    """The wait after the n-th failed post: 30 s, 1, 2, 4 ... minutes, at most an hour."""
    return min(FIRST_WAIT * 2 ** max(failures - 1, 0), LONGEST_WAIT)


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A Retry-After header (seconds, or an HTTP date) as a wait from `now` (naive UTC), at most an hour."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        wait = timedelta(seconds=int(value))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        wait = when.astimezone(UTC).replace(tzinfo=None) - now
    return max(min(wait, LONGEST_WAIT), timedelta(0))
