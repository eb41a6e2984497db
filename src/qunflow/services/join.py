"""The join flow (C1-C2): landing view, gate, live code, and the platform's join updates."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import Connection, insert, select, update

from qunflow.connectors.base import JoinRequested, MemberJoined, MemberLeft, MessagePosted, Update
from qunflow.domain.entry import merge_utm
from qunflow.domain.events import Event
from qunflow.domain.gate import CONSENT_PURPOSE, CONSENT_TEXT_VERSION, evaluate
from qunflow.domain.routing import choose_group
from qunflow.errors import Conflict
from qunflow.services.catalog import EntryInfo, entry_info, group_slots
from qunflow.services.fraud import RawSignals, hash_signals, record_join_signals
from qunflow.services.platforms import connector_for
from qunflow.services.privacy import seal
from qunflow.store.eventlog import append_events
from qunflow.store.tables import consents, entry_points, groups, identities, members
from qunflow.workspace import Workspace


class NoRoom(Conflict):
    """Every group of the tier is full: the operator must open a new one."""


def _event(ws: Workspace, event_id: str, kind: str, **fields: object) -> Event:
    return Event(event_id=event_id, type=kind, ts=ws.clock().replace(tzinfo=UTC), **fields)  # type: ignore[arg-type]


def record_landing(ws: Workspace, code: str, visitor_id: str, query: Mapping[str, str],
                   referrer_id: str | None = None) -> EntryInfo:
    """A person opened /j/{code}: record `landing_view` with the visit's UTM parameters."""
    with ws.engine.begin() as conn:
        entry = entry_info(conn, code)
        utm = merge_utm(entry.utm, query)
        append_events(conn, [_event(ws, f"lv-{uuid.uuid4().hex}", "landing_view", visitor_id=visitor_id,
                                    channel=entry.channel, campaign=entry.campaign, entry_point=entry.code,
                                    referrer_id=referrer_id, properties=utm)])
    return entry


@dataclass(frozen=True)
class Ticket:
    """A gate pass: the member, their tier and group, and the tracked invite link to use."""

    member_id: str
    tier: str
    group: str
    invite_url: str


def submit_gate(ws: Workspace, code: str, visitor_id: str, form: Mapping[str, str], *,
                locale: str = "zh", referrer_id: str | None = None, signals: RawSignals | None = None) -> Ticket:
    """Validate the gate, record consent, pick a group with room and hand out its invite link.

    `signals` (device cookie, IP, user agent, phone, e-mail) are kept as keyed hashes for the fraud checks.

    Raises GateErrors (what to fix, by field) or NoRoom (the tier is full).
    """
    now = ws.clock()
    with ws.engine.connect() as conn:
        entry = entry_info(conn, code)
    result = evaluate(entry.gate, form, entry.target_tier)
    member_id = "m_" + secrets.token_hex(8)
    ticket = "t" + secrets.token_hex(7)
    hashed = hash_signals(ws, signals) if signals is not None else None
    with ws.engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # two gate passes must not take the last seat twice
            conn.execute(select(groups.c.id).with_for_update())
        group = choose_group(group_slots(conn, now, entry.platform), result.tier)
        gate_event = _event(ws, f"gs-{member_id}", "gate_submitted", member_id=member_id,
                            visitor_id=visitor_id, channel=entry.channel, campaign=entry.campaign,
                            entry_point=entry.code, properties={"tier": result.tier,
                                                                "answers": result.answers,
                                                                "no_room": group is None})
        append_events(conn, [gate_event])  # kept even when nobody gets in: the console counts them
        if group is not None:
            conn.execute(insert(members).values(
                id=member_id, visitor_id=visitor_id, profile=seal(ws, result.profile), tier=result.tier,
                locale=locale[:8], entry_point_id=entry.id, group_id=group.id, referrer_id=referrer_id,
                join_ticket=ticket, created_at=now))
            conn.execute(insert(consents).values(member_id=member_id, purpose=CONSENT_PURPOSE,
                                                 text_version=CONSENT_TEXT_VERSION, granted=True,
                                                 recorded_at=now))
            if hashed is not None:
                record_join_signals(conn, member_id, hashed, now)
            external_id = conn.execute(select(groups.c.external_id)
                                       .where(groups.c.id == group.id)).scalar_one()
    if group is None:
        raise NoRoom(f"every {result.tier} group is full")
    invite = connector_for(ws, entry.platform).create_invite(external_id, ticket)
    return Ticket(member_id, result.tier, group.key, invite.url)


def handle_inbound(ws: Workspace, platform: str, headers: Mapping[str, str], body: bytes) -> None:
    """Entry for a platform's webhook call: verify, parse, act on each update."""
    for item in connector_for(ws, platform).receive("POST", {}, headers, body).updates:
        handle_update(ws, item)


def handle_update(ws: Workspace, item: Update) -> None:
    if isinstance(item, MemberJoined):
        on_member_joined(ws, item)
    elif isinstance(item, JoinRequested):
        # The gate already ran on our landing page: a request on a tracked link is approved.
        connector_for(ws, item.platform).approve_join(item.group_id, item.user_id)
    elif isinstance(item, MemberLeft):
        on_member_left(ws, item)
    elif isinstance(item, MessagePosted):
        from qunflow.services.welcome import on_message

        on_message(ws, item)


def _group_row(conn: Connection, platform: str, external_id: str) -> Any:
    return conn.execute(select(groups).where(groups.c.platform == platform,
                                             groups.c.external_id == external_id)).first()


def member_of_user(conn: Connection, platform: str, user_id: str) -> str | None:
    return conn.execute(select(identities.c.member_id).where(
        identities.c.platform == platform, identities.c.external_user_id == user_id)).scalar()


def _resolve_member(conn: Connection, item: MemberJoined, group: Any) -> tuple[Any, str, bool]:
    """The member behind a join: by gate pass (invite label), by known identity, or new.

    Returns the member row, how the join was attributed, and whether the identity is new.
    """
    member = None
    if item.invite_label:
        member = conn.execute(select(members).where(members.c.join_ticket == item.invite_label)).first()
    attribution = "invite_label" if member is not None else "unattributed"
    known = member_of_user(conn, item.platform, item.user_id)
    if member is None and known:
        member = conn.execute(select(members).where(members.c.id == known)).first()
        attribution = "known_identity"
    if member is None:
        member_id = "m_" + secrets.token_hex(8)
        conn.execute(insert(members).values(id=member_id, tier=group.tier, locale="zh", group_id=group.id,
                                            created_at=item.at))
        member = conn.execute(select(members).where(members.c.id == member_id)).one()
    return member, attribution, known is None


def on_member_joined(ws: Workspace, item: MemberJoined) -> None:
    """Attribute the join to its gate pass (or record that it could not be), then welcome."""
    with ws.engine.begin() as conn:
        group = _group_row(conn, item.platform, item.group_id)
        if group is None:
            return  # not a group qunflow manages
        member, attribution, new_identity = _resolve_member(conn, item, group)
        if new_identity:
            conn.execute(insert(identities).values(member_id=member.id, platform=item.platform,
                                                   external_user_id=item.user_id, created_at=item.at))
        first_join = member.joined_at is None
        conn.execute(update(members).where(members.c.id == member.id)
                     .values(joined_at=member.joined_at or item.at, group_id=group.id))
        conn.execute(update(groups).where(groups.c.id == group.id)
                     .values(member_count=groups.c.member_count + 1))
        entry = None
        if member.entry_point_id:
            entry = entry_info(conn, conn.execute(select(entry_points.c.code).where(
                entry_points.c.id == member.entry_point_id)).scalar_one())
        joined = Event(
            event_id=f"jn-{item.platform}-{item.group_id}-{item.user_id}-{item.at:%Y%m%d%H%M%S%f}",
            type="joined", ts=item.at.replace(tzinfo=UTC), member_id=member.id,
            visitor_id=member.visitor_id, channel=entry.channel if entry else None,
            campaign=entry.campaign if entry else None, entry_point=entry.code if entry else None,
            group=group.key, referrer_id=member.referrer_id,
            properties={"tier": group.tier, "platform": item.platform, "attribution": attribution})
        append_events(conn, [joined])
    if first_join:
        from qunflow.services.welcome import welcome

        welcome(ws, member.id, group, item)


def on_member_left(ws: Workspace, item: MemberLeft) -> None:
    with ws.engine.begin() as conn:
        group = _group_row(conn, item.platform, item.group_id)
        member_id = member_of_user(conn, item.platform, item.user_id)
        if group is None or member_id is None:
            return
        conn.execute(update(groups).where(groups.c.id == group.id, groups.c.member_count > 0)
                     .values(member_count=groups.c.member_count - 1))
        append_events(conn, [Event(
            event_id=f"lf-{item.platform}-{item.group_id}-{item.user_id}-{item.at:%Y%m%d%H%M%S%f}",
            type="left", ts=item.at.replace(tzinfo=UTC), member_id=member_id, group=group.key)])
