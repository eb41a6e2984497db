"""The waitlist (issue 12, "no visitor lost"): passes with no group along the fallback order wait here.

A waitlisted pass is a member without a group: the gate's profile and consents are kept as for any pass,
and the person may leave a contact (with its own `waitlist` consent) on their personal waitlist page
`/w/<token>`. When a seat opens (a member leaves, a group is added, `qunflow waitlist offer`), the oldest
waiting are given a group and a personal invite link: their page shows it, and a `tag_added` event
(`waitlist_invited`) starts the shipped playbook `waitlist_invite` that tells staff to reach out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from qunflow.domain.consent import WAITLIST
from qunflow.domain.events import Event
from qunflow.domain.routing import GroupSlot, place
from qunflow.errors import InvalidInput, NotFound
from qunflow.services.catalog import group_slots
from qunflow.services.invites import invite_for
from qunflow.services.privacy import member_from_token, member_link_token, store_profile, unseal
from qunflow.store.consents import has_consent, record_consent
from qunflow.store.eventlog import append_events
from qunflow.store.plain import write_plain
from qunflow.store.tables import entry_points, groups, members, waitlist
from qunflow.workspace import Workspace

INVITED_TAG = "waitlist_invited"
MAX_CONTACT = 100


def add_to_waitlist(conn: Connection, member_id: str, entry_point_id: int | None, tier: str, now: Any) -> None:
    """Put a pass's member on the waitlist (in the gate's transaction)."""
    conn.execute(insert(waitlist).values(member_id=member_id, entry_point_id=entry_point_id, tier=tier,
                                         status="waiting", created_at=now))


def leave_contact(ws: Workspace, token: str, contact: str, agreed: bool) -> None:
    """Keep a contact (phone, WeChat id, e-mail...) to say when a seat opens; the box must be ticked."""
    member_id = member_from_token(ws, token)
    contact = contact.strip()
    if not agreed:
        raise InvalidInput("tick the box to agree that we contact you about a seat",
                           zh="请勾选同意,以便有空位时我们联系你")
    if not 3 <= len(contact) <= MAX_CONTACT:
        raise InvalidInput(f"a contact has 3 to {MAX_CONTACT} characters",
                           zh=f"联系方式须为 3 到 {MAX_CONTACT} 个字符")
    now = ws.clock()
    with ws.engine.begin() as conn:
        row = conn.execute(select(members.c.profile).join(waitlist, waitlist.c.member_id == members.c.id)
                           .where(members.c.id == member_id)).first()
        if row is None:
            raise NotFound("this waitlist link is not known", zh="无法识别这个候补名单链接")
        profile = {**unseal(ws, row.profile), "contact": contact}
        store_profile(ws, conn, member_id, profile)
        record_consent(conn, member_id, WAITLIST, True, "gate", now)


@dataclass(frozen=True)
class WaitlistStatus:
    member_id: str
    tier: str
    status: str  # waiting, invited, joined
    contact_left: bool
    group: str | None = None
    invite_url: str | None = None
    qr_url: str | None = None


def status_of(ws: Workspace, token: str) -> WaitlistStatus:
    """A waitlisted person's page: still waiting (with their place), or their invite once a seat opened."""
    member_id = member_from_token(ws, token)
    offer_seats(ws)
    with ws.engine.connect() as conn:
        row = conn.execute(select(waitlist, members.c.join_ticket)
                           .join(members, members.c.id == waitlist.c.member_id)
                           .where(waitlist.c.member_id == member_id)).first()
        if row is None:
            raise NotFound("this waitlist link is not known", zh="无法识别这个候补名单链接")
        contact = has_consent(conn, member_id, WAITLIST)
        group = conn.execute(select(groups).where(groups.c.id == row.group_id)).first() if row.group_id else None
    if row.status == "invited" and group is not None:
        link = invite_for(ws, group, row.join_ticket, personal=True)
        return WaitlistStatus(member_id, row.tier, row.status, contact, group.key, link.url, link.qr_url)
    return WaitlistStatus(member_id, row.tier, row.status, contact, group.key if group is not None else None)


def _slots(conn: Connection, now: Any) -> list[GroupSlot]:
    """Groups with their room, less the seats offered to invited waitlisters who have not joined yet."""
    offered: dict[int, int] = dict(conn.execute(select(waitlist.c.group_id, func.count())
                                .join(members, members.c.id == waitlist.c.member_id)
                                .where(waitlist.c.status == "invited", members.c.joined_at.is_(None))
                                .group_by(waitlist.c.group_id)).all())
    return [GroupSlot(s.id, s.key, s.tier, s.capacity, s.occupied + int(offered.get(s.id, 0)), s.active, s.pending)
            for s in group_slots(conn, now)]


def offer_seats(ws: Workspace, limit: int = 200) -> int:
    """Give the oldest waiting people a group along the fallback order, while seats are free; returns how many."""
    now = ws.clock()
    order = ws.settings.tier_fallback
    invited = 0
    with ws.engine.begin() as conn:
        waiting = conn.execute(select(waitlist.c.id, waitlist.c.member_id, waitlist.c.tier, waitlist.c.entry_point_id,
                                      entry_points.c.code, entry_points.c.platform)
                               .outerjoin(entry_points, entry_points.c.id == waitlist.c.entry_point_id)
                               .where(waitlist.c.status == "waiting").order_by(waitlist.c.created_at, waitlist.c.id)
                               .limit(limit)).all()
        if not waiting:
            return 0
        if conn.dialect.name == "postgresql":  # the same seat is not offered twice by two processes
            conn.execute(select(groups.c.id).with_for_update())
        slots = _slots(conn, now)
        platforms = dict(conn.execute(select(groups.c.id, groups.c.platform)).all())
        for row in waiting:  # a group on the platform of the entry point they came through
            mine = [s for s in slots if row.platform is None or platforms.get(s.id) == row.platform]
            placement = place(mine, row.tier, order)
            if placement.group is None:
                continue
            group = placement.group
            ticket = "t" + secrets.token_hex(7)
            conn.execute(update(members).where(members.c.id == row.member_id)
                         .values(group_id=group.id, tier=placement.tier, join_ticket=ticket))
            conn.execute(update(waitlist).where(waitlist.c.id == row.id)
                         .values(status="invited", group_id=group.id, invited_at=now))
            append_events(conn, [Event(event_id=f"wl-{row.member_id}", type="tag_added", ts=now.replace(tzinfo=UTC),
                                       member_id=row.member_id, entry_point=row.code, group=group.key,
                                       properties={"tag": INVITED_TAG, "tier": placement.tier})])
            slots = [GroupSlot(s.id, s.key, s.tier, s.capacity, s.occupied + (s.id == group.id), s.active, s.pending)
                     for s in slots]
            invited += 1
    return invited


# Built once: every join runs it.
_OFF_THE_LIST = (update(waitlist).where(waitlist.c.member_id == bindparam("wl_member"), waitlist.c.status != "joined")
                 .values(status="joined"))


def mark_joined(ws: Workspace, conn: Connection, member_id: str) -> None:
    """An invited waitlister joined (services/join.py): off the list, and the contact is dropped (its
    consent said: only to tell them about a seat)."""
    done = write_plain(conn, _OFF_THE_LIST, {"wl_member": member_id})
    if done:
        profile = unseal(ws, conn.execute(select(members.c.profile).where(members.c.id == member_id)).scalar())
        if profile.pop("contact", None) is not None:
            store_profile(ws, conn, member_id, profile)


def waitlist_overview(ws: Workspace) -> dict[str, Any]:
    """Counts by status and tier, and the waiting people by member id (console, CLI); no profile field."""
    with ws.engine.connect() as conn:
        counts = [dict(r._mapping) for r in conn.execute(
            select(waitlist.c.status, waitlist.c.tier, func.count().label("n"))
            .group_by(waitlist.c.status, waitlist.c.tier).order_by(waitlist.c.status, waitlist.c.tier))]
        waiting = [dict(r._mapping) for r in conn.execute(
            select(waitlist.c.member_id, waitlist.c.tier, waitlist.c.status, waitlist.c.created_at,
                   waitlist.c.invited_at).order_by(waitlist.c.created_at.desc()).limit(200))]
    return {"counts": counts, "people": waiting}


def waitlist_link(ws: Workspace, member_id: str) -> str:
    return f"{ws.settings.public_url.rstrip('/')}/w/{member_link_token(ws, member_id)}"


__all__ = ["INVITED_TAG", "add_to_waitlist", "leave_contact", "mark_joined", "offer_seats", "status_of",
           "waitlist_overview"]
