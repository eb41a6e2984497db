"""Identity resolution (issue 13): which member an incoming event names, by one documented rule.

An event from a shop or CRM may name its member by the top-level fields `member_id`, `external_id` (the
shop's own customer id), `phone` (matched through its keyed hash) or `coupon` (the code redeemed). The
first of these, in that order, that names a known member wins (docs/members.md):

    member_id > external_id > phone > coupon

An event naming nobody is kept as *unattributed*: it gets a visitor id `unattributed:<field>` and no
member, so no metric counts it for a member, and the dashboard counts it. The phone never stays on the
event: it is dropped once looked up; the external id and coupon code are kept in `properties`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

IDENTITY_FIELDS = ("external_id", "phone", "coupon")
PRECEDENCE = ("member_id", *IDENTITY_FIELDS)
UNATTRIBUTED_PREFIX = "unattributed:"
# A merge candidate's reason when a gate pass (a per-person link) is used on a second platform.
OWN_LINK = "own_link"
MAX_KEY = 128


@dataclass(frozen=True)
class Found:
    """What the lookups found for one event: the member each field names (None: nobody, or absent)."""

    member_id: str | None = None
    external_id: str | None = None
    phone: str | None = None
    coupon: str | None = None


@dataclass(frozen=True)
class Resolution:
    member_id: str | None  # None: unattributed
    rule: str | None  # the field that decided: member_id, external_id, phone, coupon
    links: tuple[str, ...]  # identity fields to link to member_id from now on (external_id, phone)


def carries_identity(item: Any) -> bool:
    return isinstance(item, Mapping) and any(item.get(name) not in (None, "") for name in IDENTITY_FIELDS)


def identity_text(name: str, value: Any) -> str | None:
    """An identity field's value as text, or None when absent; ValueError names what is wrong."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{name} must be a string")
    text = str(value).strip()
    if len(text) > MAX_KEY or "\x00" in text:
        raise ValueError(f"{name} must be at most {MAX_KEY} characters, without NUL")
    return text or None


def resolve(given: Mapping[str, str | None], found: Found) -> Resolution:
    """Apply the precedence rule. `given` holds the event's own fields; `found` what each one names.

    An explicit member_id always wins (even one qunflow does not know yet: it may arrive later); then it
    links the event's external id and phone to that member, unless they already name someone.
    """
    member_id = given.get("member_id")
    if member_id:
        links = tuple(name for name in ("external_id", "phone")
                      if given.get(name) and getattr(found, name) is None)
        return Resolution(member_id, "member_id", links)
    for name in IDENTITY_FIELDS:
        named = getattr(found, name)
        if given.get(name) and named:
            return Resolution(named, name, ())
    return Resolution(None, None, ())


def rewrite(item: Mapping[str, Any], resolution: Resolution, given: Mapping[str, str | None]) -> dict[str, Any]:
    """The event as stored: identity fields gone from the top level, member_id set (or an unattributed
    visitor id), external id and coupon kept in properties with the rule that decided. No phone."""
    out = {k: v for k, v in item.items() if k not in IDENTITY_FIELDS}
    properties = out.get("properties")
    if properties is None or properties == "" or isinstance(properties, Mapping):  # else parse_event refuses it
        kept = dict(properties or {})
        for name in ("external_id", "coupon"):
            if given.get(name):
                kept.setdefault(name, given[name])
        kept["resolved_by"] = resolution.rule or "none"
        out["properties"] = kept
    if resolution.member_id:
        out["member_id"] = resolution.member_id
    elif not out.get("visitor_id"):
        tried = next(name for name in IDENTITY_FIELDS if given.get(name))
        out["visitor_id"] = UNATTRIBUTED_PREFIX + tried
    return out


def candidate_rows(pairs: list[tuple[str, str, str]], now: datetime) -> list[dict[str, Any]]:
    """(a, b, reason) as member_merges rows: the earlier-sorting id is kept (the operator may swap)."""
    return [{"keep_id": min(a, b), "merged_id": max(a, b), "reason": reason, "status": "candidate",
             "found_at": now} for a, b, reason in pairs if a != b]
