"""A member's records (P8): find a member by id or phone number, and everything qunflow holds about them,
decrypted, as one JSON document (`qunflow member export`, the API and the console).

A phone number is never stored in clear: the gate keeps it in the encrypted profile and as a keyed hash
(join_signals.phone, services/fraud.py). A lookup hashes the number the same way, and also reads the
profiles of members without a hash (a phone field of a gate that recorded no signals).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, or_, select

from qunflow.domain.fraud import normalise_phone
from qunflow.errors import Conflict, InvalidInput, NotFound
from qunflow.services.fraud import phone_key
from qunflow.services.privacy import query_key, unseal
from qunflow.services.tier_moves import member_moves
from qunflow.store.consents import consents_in_force
from qunflow.store.tables import (
    consents,
    coupon_ledger,
    coupons,
    deliveries,
    enrollments,
    erasures,
    events,
    groups,
    identities,
    inbox,
    join_signals,
    member_keys,
    member_name_keys,
    member_tags,
    member_tasks,
    members,
    referral_codes,
    referrals,
    rewards,
)
from qunflow.workspace import Workspace

PHONE_FIELDS = ("phone", "mobile")


def subject_hash(ws: Workspace, member_id: str) -> str:
    """A keyed hash of a member id: what the erasure record keeps, so an erased id is recognised, not read."""
    key = hmac.new(ws.secret, b"qunflow erasures v1", hashlib.sha256).digest()
    return hmac.new(key, member_id.encode(), hashlib.sha256).hexdigest()


def _erased_at(conn: Connection, ws: Workspace, member_id: str) -> datetime | None:
    return conn.execute(select(erasures.c.erased_at).where(
        erasures.c.subject_hash == subject_hash(ws, member_id))).scalar()


def check_in_groups(ws: Workspace, member_id: str, allowed: frozenset[str] | None) -> str:
    """The member id, if the member belongs to one of the `allowed` groups (None: any); else NotFound, so a
    caller limited to groups learns nothing of members outside them."""
    if allowed is None:
        return member_id
    with ws.engine.connect() as conn:
        key = conn.execute(select(groups.c.key).join(members, members.c.group_id == groups.c.id)
                           .where(members.c.id == member_id)).scalar()
    if key not in allowed:
        raise NotFound(f"no member {member_id!r} in your groups", zh=f"你负责的群里没有成员 {member_id!r}")
    return member_id


def find_member(ws: Workspace, member_id: str | None = None, phone: str | None = None) -> str:
    """The member named by id or by phone number (exactly one of them). NotFound when there is none (an
    erased member is said to be erased), Conflict when several members have the number."""
    if (member_id is None) == (phone is None):
        raise InvalidInput("name the member by id or by --phone, not both and not neither",
                           zh="请用成员 ID 或 --phone 指定成员(二选一)")
    with ws.engine.connect() as conn:
        if member_id is not None:
            member_id = member_id.strip()
            if conn.execute(select(members.c.id).where(members.c.id == member_id)).first() is not None:
                return member_id
            erased = _erased_at(conn, ws, member_id)
            if erased is not None:
                raise NotFound(f"member {member_id} was erased on {erased:%Y-%m-%d %H:%M} UTC: nothing is held",
                               zh=f"成员 {member_id} 已于 {erased:%Y-%m-%d %H:%M} UTC 删除,不再保存任何数据")
            raise NotFound(f"no member {member_id!r} (member ids look like m_0123456789abcdef)",
                           zh=f"没有成员 {member_id!r}(成员 ID 形如 m_0123456789abcdef)")
        digits = normalise_phone(phone or "")
        if len(digits) < 6:
            raise InvalidInput("a phone number has at least 6 digits", zh="手机号至少 6 位数字")
        found = set(conn.execute(select(join_signals.c.member_id).where(
            join_signals.c.phone == phone_key(ws, digits))).scalars())
        for row in conn.execute(select(members.c.id, members.c.profile).where(members.c.profile.is_not(None))):
            profile = unseal(ws, row.profile)
            if any(normalise_phone(str(profile.get(f, ""))) == digits for f in PHONE_FIELDS if profile.get(f)):
                found.add(row.id)
        present = set(conn.execute(select(members.c.id).where(members.c.id.in_(found))).scalars()) if found else set()
    if not present:
        raise NotFound("no member has this phone number", zh="没有成员使用这个手机号")
    if len(present) > 1:
        raise Conflict(f"{len(present)} members have this phone number ({', '.join(sorted(present))}): "
                       "name the one you mean by id",
                       zh=f"{len(present)} 个成员使用这个手机号({', '.join(sorted(present))}):请用成员 ID 指定")
    return present.pop()


def plain(value: Any) -> Any:
    """A stored value as JSON: times in ISO 8601 (UTC), money as a decimal string; bytes are never shown."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _rows(conn: Connection, query: Any, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [{k: plain(v) for k, v in r._mapping.items() if k not in drop} for r in conn.execute(query)]


def export_member(ws: Workspace, member_id: str) -> dict[str, Any]:
    """Everything held about one member, decrypted (profile, message texts), as a JSON-ready document."""
    with ws.engine.connect() as conn:
        row = conn.execute(select(members).where(members.c.id == member_id)).first()
        if row is None:
            raise NotFound(f"no member {member_id!r}", zh=f"没有成员 {member_id!r}")
        member = {k: plain(v) for k, v in row._mapping.items() if k != "profile"}
        member["profile"] = unseal(ws, row.profile)
        own_events = events.c.member_id == member_id
        if row.visitor_id:
            own_events = or_(own_events, events.c.visitor_id == row.visitor_id)
        held_coupons = _rows(conn, select(coupons).where(coupons.c.member_id == member_id).order_by(coupons.c.id))
        for coupon in held_coupons:
            coupon["ledger"] = _rows(conn, select(coupon_ledger).where(coupon_ledger.c.coupon_id == coupon["id"])
                                     .order_by(coupon_ledger.c.id), drop=("coupon_id",))
        sends = []
        for send in conn.execute(select(deliveries).where(deliveries.c.member_id == member_id)
                                 .order_by(deliveries.c.id)):
            item = {k: plain(v) for k, v in send._mapping.items() if k != "body"}
            item["text"] = ws.fernet.decrypt(send.body).decode() if send.body else None
            sends.append(item)
        document = {
            "member": member,
            "identities": _rows(conn, select(identities).where(identities.c.member_id == member_id)),
            "consents": _rows(conn, select(consents).where(consents.c.member_id == member_id).order_by(consents.c.id)),
            "consents_in_force": consents_in_force(conn, member_id),
            "events": _rows(conn, select(events).where(own_events).order_by(events.c.seq)),
            "enrollments": _rows(conn, select(enrollments).where(enrollments.c.subject == member_id)
                                 .order_by(enrollments.c.id)),
            "tasks": _rows(conn, select(member_tasks).where(member_tasks.c.member_id == member_id)),
            "tags": _rows(conn, select(member_tags).where(member_tags.c.member_id == member_id)),
            "coupons": held_coupons,
            "rewards": _rows(conn, select(rewards).where(rewards.c.member_id == member_id).order_by(rewards.c.id)),
            "referrals": {
                "as_inviter": _rows(conn, select(referrals).where(referrals.c.inviter_id == member_id)),
                "as_invitee": _rows(conn, select(referrals).where(referrals.c.invitee_id == member_id)),
                "code": _rows(conn, select(referral_codes).where(referral_codes.c.member_id == member_id))},
            "join_signals": _rows(conn, select(join_signals).where(join_signals.c.member_id == member_id)),
            "inbox": _rows(conn, select(inbox).where(inbox.c.member_id == member_id).order_by(inbox.c.id)),
            "sends": sends,
        }
        platform_ids = [(i["platform"], i["external_user_id"]) for i in document["identities"]]
    document["platform_records"] = {
        "sandbox": [{k: plain(v) if not isinstance(v, list) else [plain(x) for x in v]
                     for k, v in ws.sandbox.records_of(user_id).items()}
                    for platform, user_id in platform_ids if platform == "sandbox"]}
    document["notes"] = ("join_signals are keyed hashes (they cannot be read back); messages on WeCom or Telegram "
                         "themselves are held by that platform, not by qunflow")
    document["exported_at"] = ws.clock().isoformat()
    return document


TIMELINE_LIMIT = 500  # newest events shown on a record; message events are counted per day, never shown


def member_record(ws: Workspace, member_id: str, *, with_profile: bool) -> dict[str, Any]:
    """One member's record: profile (decrypted only `with_profile`), identities, linked keys, consent history,
    timeline (message events as counts per day, no content), group and tier, tier moves, referrer and invitees,
    open inbox items."""
    with ws.engine.connect() as conn:
        row = conn.execute(select(members, groups.c.key.label("group_key"))
                           .outerjoin(groups, groups.c.id == members.c.group_id)
                           .where(members.c.id == member_id)).first()
        if row is None:
            raise NotFound(f"no member {member_id!r}", zh=f"没有成员 {member_id!r}")
        own_events = events.c.member_id == member_id
        if row.visitor_id:
            own_events = or_(own_events, events.c.visitor_id == row.visitor_id)
        recent = conn.execute(select(events).where(own_events).order_by(events.c.seq.desc())
                              .limit(TIMELINE_LIMIT)).all()
        timeline: list[dict[str, Any]] = []
        messages: dict[str, dict[str, Any]] = {}
        for event in reversed(recent):
            if event.type == "message":
                day = event.ts.date().isoformat()
                if day not in messages:
                    messages[day] = {"type": "message", "ts": plain(event.ts), "count": 0,
                                     "group": event.group_key}
                    timeline.append(messages[day])
                messages[day]["count"] += 1
                continue
            timeline.append({"type": event.type, "ts": plain(event.ts), "event_id": event.event_id,
                             "channel": event.channel, "group": event.group_key, "amount": plain(event.amount),
                             "currency": event.currency, "experiment": event.experiment,
                             "variant": event.variant})
        keys = [{"kind": k.kind, "key": k.key if k.kind == "external_id" else "(hashed)",
                 "linked_at": plain(k.linked_at)}
                for k in conn.execute(select(member_keys).where(member_keys.c.member_id == member_id)
                                      .order_by(member_keys.c.id))]
        record = {
            "member_id": member_id,
            "profile": unseal(ws, row.profile) if with_profile else None,
            "profile_shown": with_profile,
            "locale": row.locale, "tier": row.tier, "group": row.group_key,
            "created_at": plain(row.created_at), "joined_at": plain(row.joined_at),
            "referrer_id": row.referrer_id,
            "invitees": list(conn.execute(select(referrals.c.invitee_id).where(referrals.c.inviter_id == member_id)
                                          .order_by(referrals.c.id)).scalars()),
            "identities": _rows(conn, select(identities.c.platform, identities.c.external_user_id,
                                             identities.c.created_at, identities.c.unreachable_at)
                                .where(identities.c.member_id == member_id).order_by(identities.c.id)),
            "keys": keys,
            "consents": _rows(conn, select(consents.c.purpose, consents.c.granted, consents.c.text_version,
                                           consents.c.recorded_at, consents.c.source)
                              .where(consents.c.member_id == member_id).order_by(consents.c.id)),
            "consents_in_force": consents_in_force(conn, member_id),
            "timeline": timeline,
            "timeline_complete": len(recent) < TIMELINE_LIMIT,
            "tier_moves": [{k: plain(v) for k, v in move.items()} for move in member_moves(conn, member_id)],
            "inbox": _rows(conn, select(inbox.c.id, inbox.c.kind, inbox.c.title, inbox.c.assignee, inbox.c.due_at,
                                        inbox.c.created_at)
                           .where(inbox.c.member_id == member_id, inbox.c.done_at.is_(None))
                           .order_by(inbox.c.id)),
        }
    return record


SEARCH_LIMIT = 20


def search_members(ws: Workspace, query: str, allowed: frozenset[str] | None = None,
                   limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
    """Members matching `query` as a member id, an external id, a phone number (by its keyed hash), a coupon
    code, or part of a name (the profile is encrypted: a name is found through its blind index, the keyed
    hashes of its parts, services/privacy.index_name). Each: member_id, name, group, tier, matched_by."""
    text = query.strip()
    if not text:
        raise InvalidInput("type a name, phone number, external id or coupon code to search",
                           zh="请输入姓名、手机号、外部 ID 或券码来搜索")
    if len(text) > 128:
        raise InvalidInput("a search is at most 128 characters", zh="搜索内容最多 128 个字符")
    found: dict[str, str] = {}
    with ws.engine.connect() as conn:
        def add(ids: Any, how: str) -> None:
            for member in ids:
                found.setdefault(member, how)
        add(conn.execute(select(members.c.id).where(members.c.id == text)).scalars(), "member_id")
        add(conn.execute(select(member_keys.c.member_id).where(member_keys.c.kind == "external_id",
                                                               member_keys.c.key == text)).scalars(), "external_id")
        digits = normalise_phone(text)
        if len(digits) >= 6 and re.fullmatch(r"[\d\s+()-]+", text):
            hashed = phone_key(ws, digits)
            add(conn.execute(select(member_keys.c.member_id).where(member_keys.c.kind == "phone",
                                                                   member_keys.c.key == hashed)).scalars(), "phone")
            add(conn.execute(select(join_signals.c.member_id).where(join_signals.c.phone == hashed)).scalars(),
                "phone")
        code = text.upper().replace("-", "").replace(" ", "")
        add(conn.execute(select(coupons.c.member_id).where(coupons.c.code == code)).scalars(), "coupon")
        key = query_key(ws, text)
        if len(found) < limit and key is not None:  # the blind index: newest entries first
            add(conn.execute(select(member_name_keys.c.member_id).where(member_name_keys.c.key == key)
                             .order_by(member_name_keys.c.id.desc()).limit(limit - len(found))).scalars(), "name")
        rows = conn.execute(select(members.c.id, members.c.profile, members.c.tier, groups.c.key.label("group_key"))
                            .outerjoin(groups, groups.c.id == members.c.group_id)
                            .where(members.c.id.in_(list(found)))).all() if found else []
    out = []
    for hit in rows:
        if allowed is not None and hit.group_key not in allowed:
            continue
        out.append({"member_id": hit.id, "name": unseal(ws, hit.profile).get("name") if hit.profile else None,
                    "group": hit.group_key, "tier": hit.tier, "matched_by": found[hit.id]})
    order = list(found)
    return sorted(out, key=lambda item: order.index(item["member_id"]))[:limit]


def member_labels(ws: Workspace, member_ids: list[str], *, with_name: bool) -> dict[str, dict[str, Any]]:
    """name (only `with_name`), group and tier of each member, for lists such as the inbox (a page at a time)."""
    ids = sorted({m for m in member_ids if m})
    if not ids:
        return {}
    with ws.engine.connect() as conn:
        rows = conn.execute(select(members.c.id, members.c.profile, members.c.tier, groups.c.key.label("group_key"))
                            .outerjoin(groups, groups.c.id == members.c.group_id).where(members.c.id.in_(ids))).all()
    return {r.id: {"name": unseal(ws, r.profile).get("name") if with_name and r.profile else None,
                   "group": r.group_key, "tier": r.tier} for r in rows}
