"""Fraud checks on referrals (issue 5, part 4): join signals from the gate, scoring, reasons in zh/en.

The gate records each new member's signals — a long-lived device cookie, the client IP, IP + user agent,
the phone number — as keyed hashes (HMAC with a key derived from the workspace secret): equal inputs
match, nothing reads back. The rewards engine calls `rescore` before it pays a reward and again for the
hourly re-scan after payment (clawback); the checks themselves are in qunflow.domain.fraud.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, or_, select, update

from qunflow.domain.fraud import FraudRules, Score, Signals, is_disposable_email, is_virtual_phone, normalise_phone
from qunflow.domain.fraud import score as score_facts
from qunflow.errors import NotFound
from qunflow.i18n import TEXTS, t
from qunflow.services.fraud_facts import gather
from qunflow.settings import Settings
from qunflow.store.plain import insert_ignore
from qunflow.store.tables import join_signals, referrals
from qunflow.workspace import Workspace


@dataclass(frozen=True)
class RawSignals:
    """What the gate saw of a visitor, before hashing. Never stored or logged as it is."""

    device: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    phone: str | None = None
    email: str | None = None


def rules_from_settings(settings: Settings) -> FraudRules:
    """The thresholds of the workspace (qunflow.toml `fraud_*`, env `QUNFLOW_FRAUD_*`)."""
    return FraudRules(burst_count=settings.fraud_burst_count, burst_minutes=settings.fraud_burst_minutes,
                      fast_conversion_minutes=settings.fraud_fast_conversion_minutes,
                      inactive_days=settings.fraud_inactive_days, soft_for_high=settings.fraud_soft_for_high,
                      virtual_phone_prefixes=tuple(settings.fraud_virtual_phone_prefixes),
                      active_types=tuple(settings.engagement_types))


def _hash(key: bytes, kind: str, value: str | None) -> str | None:
    if not value:
        return None
    return hmac.new(key, f"{kind}\n{value}".encode(), hashlib.sha256).hexdigest()


def _ip(value: str | None) -> str | None:
    """The canonical text of an IP address, or None when it is not one. IPv4-mapped IPv6 counts as IPv4; other
    IPv6 addresses by their /64 network, since phones rotate the rest (privacy addresses)."""
    try:
        address = ipaddress.ip_address((value or "").strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def hash_signals(ws: Workspace, raw: RawSignals) -> Signals:
    """Keyed hashes of what the gate saw, and whether the e-mail or phone looks disposable."""
    key = ws.signal_key
    ip = _ip(raw.ip)
    agent = " ".join((raw.user_agent or "").split())[:500]
    phone = normalise_phone(raw.phone or "")
    rules = rules_from_settings(ws.settings)
    disposable = bool(raw.email and is_disposable_email(raw.email)) or bool(phone and is_virtual_phone(phone, rules))
    return Signals(device=_hash(key, "device", (raw.device or "").strip()), ip=_hash(key, "ip", ip),
                   ip_ua=_hash(key, "ip_ua", f"{ip}\n{agent}" if ip and agent else None),
                   phone=_hash(key, "phone", phone if len(phone) >= 6 else None), disposable=disposable)


def phone_key(ws: Workspace, phone: str) -> str | None:
    """The keyed hash the gate stored for this phone number (join_signals.phone), to find a member by it."""
    digits = normalise_phone(phone)
    return _hash(ws.signal_key, "phone", digits if len(digits) >= 6 else None)


def record_join_signals(conn: Connection, member_id: str, signals: Signals, now: datetime, *,
                        coupon_eligible: bool = True) -> None:
    """Store a new member's (hashed) signals in the caller's transaction; the first record stays.
    `coupon_eligible`: False when the pass was over the new-member coupon cap (services/gate_guard.py)."""
    insert_ignore(conn, join_signals, [{"member_id": member_id, "device": signals.device, "ip": signals.ip,
                                        "ip_ua": signals.ip_ua, "phone": signals.phone,
                                        "disposable": signals.disposable, "recorded_at": now,
                                        "coupon_eligible": coupon_eligible}])


def score_referrals(conn: Connection, referral_ids: list[int], now: datetime,
                    rules: FraudRules | None = None) -> dict[int, Score]:
    """Score referrals without storing anything (for the console and the CLI). Without `rules`, the
    default thresholds (callers with a workspace pass `rules_from_settings(ws.settings)`)."""
    rules = rules or FraudRules()
    return {f.referral_id: score_facts(f, rules) for f in gather(conn, referral_ids, now, rules)}


def score_referral(conn: Connection, referral_id: int, now: datetime, rules: FraudRules | None = None) -> Score | None:
    return score_referrals(conn, [referral_id], now, rules).get(referral_id)


def rescore(conn: Connection, referral_ids: list[int], now: datetime,
            rules: FraudRules | None = None) -> dict[int, str]:
    """Score referrals and store each one's level, reasons and time; returns id -> level."""
    scores = score_referrals(conn, list(referral_ids), now, rules)
    _store(conn, scores, now)
    return {rid: s.level for rid, s in scores.items()}


def _store(conn: Connection, scores: dict[int, Score], now: datetime) -> None:
    if scores:
        conn.execute(update(referrals).where(referrals.c.id == bindparam("rid"))
                     .values(fraud_level=bindparam("level"), fraud_reasons=bindparam("reasons"), scored_at=now),
                     [{"rid": rid, "level": s.level, "reasons": s.reasons} for rid, s in scores.items()])


def check(ws: Workspace, referral_ids: list[int] | None = None, *, member_id: str | None = None,
          store: bool = False, limit: int = 200) -> list[dict[str, Any]]:
    """Score chosen referrals for a person (the CLI): by id, those of a member (as inviter or invitee), or the
    latest `limit`. Stores the result only with `store` (as the engine does before paying)."""
    r = referrals.c
    with ws.engine.begin() as conn:
        query = select(r.id, r.inviter_id, r.invitee_id, r.joined_at).order_by(r.joined_at.desc(), r.id.desc())
        if referral_ids:
            query = query.where(r.id.in_(referral_ids))
        elif member_id:
            query = query.where(or_(r.inviter_id == member_id, r.invitee_id == member_id))
        rows = conn.execute(query.limit(limit if not referral_ids else None)).all()
        missing = sorted(set(referral_ids or []) - {row.id for row in rows})
        if missing:
            raise NotFound(f"no referral {', '.join(map(str, missing))}",
                           zh=f"没有邀请记录 {', '.join(map(str, missing))}")
        if member_id and not rows:
            raise NotFound(f"member {member_id} has no referrals, as inviter or invitee",
                           zh=f"成员 {member_id} 没有邀请记录(无论作为邀请人还是被邀请人)")
        ids = [row.id for row in rows]
        rules = rules_from_settings(ws.settings)
        scores = score_referrals(conn, ids, ws.clock(), rules)
        if store:
            _store(conn, scores, ws.clock())
    return [{"id": row.id, "inviter_id": row.inviter_id, "invitee_id": row.invitee_id, "joined_at": row.joined_at,
             "level": scores[row.id].level, "reasons": scores[row.id].reasons} for row in rows]


def why_text(reason: dict[str, Any], lang: str) -> str | None:
    """The sentence for a reason as scored here (with its numbers), or None when there is none for it."""
    code = str(reason.get("code"))
    key = f"fraud_why_{code}_{reason['match']}" if reason.get("match") else f"fraud_why_{code}"
    if key not in TEXTS:
        return None
    numbers = {k: v for k, v in reason.items() if k not in ("code", "severity", "detail", "match", "referral_id")}
    try:
        return TEXTS[key].get(lang, TEXTS[key]["en"]).format(**numbers)
    except (KeyError, IndexError, ValueError):
        return None  # stored by something else, without the numbers the sentence needs


def reason_text(reason: dict[str, Any], lang: str) -> str:
    """A reason for the reviewer, in Chinese or English: the sentence, else the reason's short name, else
    its stored detail or code."""
    found = why_text(reason, lang)
    if found is not None:
        return found
    code = str(reason.get("code"))
    if f"fraud_{code}" in TEXTS:
        return t(f"fraud_{code}", lang)
    return str(reason.get("detail") or code)


__all__ = ["RawSignals", "check", "hash_signals", "reason_text", "record_join_signals", "rescore",
           "rules_from_settings", "score_referral", "score_referrals", "why_text"]
