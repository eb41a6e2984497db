"""Tracked invite links (C2): one per entry point and group, or one per gate pass (one person, one link).

A label rides on each link and comes back on the join: the entry point's code, or the gate pass's
ticket. Links are kept in `invite_links`, so a landing page hands out the same entry link every time
and a used-up or full group's links can be revoked. Where the platform enforces an expiry (Telegram
expire_date), a link is made with the connector's lifetime, is never handed out once expired (a fresh
one is made), and `revoke_expired` (a loop of `qunflow serve`) revokes it on the platform.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, select, update

from qunflow.connectors.base import ExpiresInvites, InviteLink
from qunflow.errors import InvalidInput, PlatformError, RateLimited
from qunflow.store.plain import insert_if_new
from qunflow.store.tables import groups, invite_links
from qunflow.workspace import Workspace


def _stored(conn: Connection, platform: str, group_id: int, label: str) -> Any:
    return conn.execute(select(invite_links).where(
        invite_links.c.platform == platform, invite_links.c.group_id == group_id, invite_links.c.label == label,
        invite_links.c.revoked_at.is_(None))).first()


def _as_link(row: Any) -> InviteLink:
    return InviteLink(row.url, row.label, row.join_request, qr_url=row.qr_url, handle=row.handle,
                      expires_at=row.expires_at)


log = logging.getLogger("qunflow")

# A link this close to its expiry is not handed out: the person needs time to open it (and a join request
# made just before the expiry still reaches us).
HAND_OUT_MARGIN = timedelta(minutes=2)
EXPIRY_SWEEP_SECONDS = 60.0


def _expired(row: Any, now: datetime) -> bool:
    return row.expires_at is not None and row.expires_at <= now + HAND_OUT_MARGIN


def invite_for(ws: Workspace, group: Any, label: str, *, personal: bool) -> InviteLink:
    """The link into `group` carrying `label`, made once. `personal`: for one gate pass, so the link admits
    one person where the platform can say so (a single-use link, or a join request we check)."""
    connector = ws.connector(group.platform)
    caps = connector.capabilities
    if len(label) > caps.invite_label_max:
        raise InvalidInput(f"{label!r} is longer than the {caps.invite_label_max} characters {group.platform} "
                           "carries on an invite link: use a shorter entry point code",
                           zh=f"{label!r} 超过了 {group.platform} 邀请链接能携带的 {caps.invite_label_max} 个字符:"
                              "请使用更短的入口代码")
    now = ws.clock()
    with ws.engine.connect() as conn:
        found = _stored(conn, group.platform, group.id, label)
    if found is not None and not _expired(found, now):
        return _as_link(found)
    if found is not None:  # expired (or about to): retire it now rather than wait for the sweep
        _retire(ws, group, found)
    lifetime = (cast(ExpiresInvites, connector).invite_lifetime(personal) if caps.expiring_invites else None)
    # Links ask to join where the platform has requests, so the welcome goes out before approval; where a
    # DM is possible only in a join request's window, a gate pass's link asks too (its label is then the
    # per-person state that a forwarded copy cannot claim twice). Elsewhere a pass's link is single-use.
    join_request = caps.join_requests and (not personal or caps.dm_policy == "join_request_window")
    link = connector.create_invite(group.external_id, label, join_request=join_request,
                                   single_use=personal and not join_request and caps.single_use_invites,
                                   expires_at=None if lifetime is None else now + lifetime)
    with ws.engine.begin() as conn:
        made = insert_if_new(conn, invite_links, {
            "platform": group.platform, "group_id": group.id, "label": label, "url": link.url,
            "qr_url": link.qr_url, "handle": link.handle, "join_request": link.join_request,
            "created_at": ws.clock(), "expires_at": link.expires_at})
        if not made:  # another request made one at the same moment: use that, drop ours
            connector.revoke_invite(group.external_id, link)
            return _as_link(_stored(conn, group.platform, group.id, label))
    return link


def revoke(ws: Workspace, group_id: int, label: str) -> bool:
    """Revoke a link (used up, or its group is full); False when there was none."""
    with ws.engine.connect() as conn:
        group = conn.execute(select(groups).where(groups.c.id == group_id)).one()
        row = _stored(conn, group.platform, group_id, label)
    if row is None:
        return False
    ws.connector(group.platform).revoke_invite(group.external_id, _as_link(row))
    with ws.engine.begin() as conn:
        conn.execute(update(invite_links).where(invite_links.c.id == row.id).values(revoked_at=ws.clock()))
    return True


def revoke_full(ws: Workspace, group_id: int) -> int:
    """Revoke every entry link of a group that is full, so no one else comes in over its capacity."""
    with ws.engine.connect() as conn:
        labels = list(conn.execute(select(invite_links.c.label).where(
            invite_links.c.group_id == group_id, invite_links.c.revoked_at.is_(None))).scalars())
    return sum(revoke(ws, group_id, label) for label in labels)


def _retire(ws: Workspace, group: Any, row: Any) -> bool:
    """Revoke an expired link on the platform and mark it revoked. Telegram already refuses an expired link,
    so a platform error (the bot lost its rights, the link is unknown) still retires it here; a rate limit
    leaves it for the next sweep. False when it was left."""
    try:
        ws.connector(group.platform).revoke_invite(group.external_id, _as_link(row))
    except RateLimited:
        return False
    except PlatformError as exc:
        log.warning("could not revoke the expired invite link %s of group %s: %s", row.label, group.key, exc)
    with ws.engine.begin() as conn:
        conn.execute(update(invite_links).where(invite_links.c.id == row.id, invite_links.c.revoked_at.is_(None))
                     .values(revoked_at=ws.clock()))
    return True


def revoke_expired(ws: Workspace, *, limit: int = 200) -> int:
    """Revoke the links whose expiry has passed (run every EXPIRY_SWEEP_SECONDS by `qunflow serve`); how many."""
    now = ws.clock()
    with ws.engine.connect() as conn:
        rows = conn.execute(select(invite_links, groups.c.platform.label("group_platform"), groups.c.external_id,
                                   groups.c.key).join(groups, groups.c.id == invite_links.c.group_id)
                            .where(invite_links.c.revoked_at.is_(None), invite_links.c.expires_at.is_not(None),
                                   invite_links.c.expires_at <= now)
                            .order_by(invite_links.c.expires_at).limit(limit)).all()
    done = 0
    for row in rows:
        group = _GroupRef(row.group_platform, row.external_id, row.key)
        done += _retire(ws, group, row)
    return done


@dataclass(frozen=True)
class _GroupRef:
    """The parts of a group row `_retire` reads."""

    platform: str
    external_id: str
    key: str


@dataclass(frozen=True)
class ReferralOffer:
    """What the landing page of a referral link says: who invited (a masked display name) and the reward."""

    inviter: str | None  # e.g. "李**"; None: say "a friend"
    rewards: tuple[str, ...]  # the coupons an invitee is promised, by name (e.g. "新人券 ¥10")


def mask_name(name: str) -> str:
    """The first character of the name the inviter gave (称呼), the rest masked: a stranger sees who invited
    them without learning their full name (privacy by default, docs/privacy.md)."""
    name = name.strip()
    return name[:1] + "*" * min(max(len(name) - 1, 1), 3) if name else ""


def referral_offer(ws: Workspace, referrer_id: str | None, campaign: str | None) -> ReferralOffer | None:
    """The inviter and the invitee rewards of the reward programs in force for this campaign; None for a
    landing without a (known) referrer."""
    from qunflow.services.privacy import unseal
    from qunflow.services.rewards import active_programs
    from qunflow.store.tables import members

    if not referrer_id:
        return None
    with ws.engine.connect() as conn:
        row = conn.execute(select(members.c.profile).where(members.c.id == referrer_id)).first()
        if row is None:
            return None
        programs = active_programs(conn)
    try:
        name = str(unseal(ws, row.profile).get("name") or "")
    except Exception:  # an unreadable profile (a key rotated away): say "a friend"
        name = ""
    rewards: list[str] = []
    for _version, program in programs:
        if program.campaign and program.campaign != campaign:
            continue
        for rule in program.rules:
            for role in ("invitee", "team"):
                key = getattr(rule, role)
                if key and program.coupons[key].name not in rewards:
                    rewards.append(program.coupons[key].name)
    return ReferralOffer(mask_name(name) or None, tuple(rewards))
