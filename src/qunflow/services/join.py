"""The join flow (C1-C2): landing view, gate, live code, and the platform's join updates.

Inbound handlers (registered in services.inbound) attribute each join request, join and contact to
its gate pass or entry point and record it; they send nothing themselves: the welcome has its own
handlers, and a join request is approved only after them.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, bindparam, exists, func, insert, or_, select, update

from qunflow.connectors.base import ContactAdded, JoinRequested, MemberJoined, MemberLeft
from qunflow.connectors.registry import spec_of
from qunflow.domain.consent import MARKETING, PROFILE
from qunflow.domain.entry import merge_utm
from qunflow.domain.events import Event
from qunflow.domain.gate import evaluate
from qunflow.domain.identity import OWN_LINK, candidate_rows
from qunflow.domain.routing import Placement, place
from qunflow.domain.welcome import dm_key
from qunflow.engine import outbox
from qunflow.engine.notifier import kick_staff_alerts, queue_staff_alert
from qunflow.errors import Conflict
from qunflow.i18n import t
from qunflow.services.catalog import EntryInfo, entry_info, group_slots
from qunflow.services.fraud import RawSignals, hash_signals, record_join_signals
from qunflow.services.gate_guard import coupon_eligible
from qunflow.services.invites import invite_for, revoke_full
from qunflow.services.privacy import index_name, seal
from qunflow.services.waitlist import add_to_waitlist, mark_joined, offer_seats, waitlist_link
from qunflow.store.consents import no_consent_yet, record_consent
from qunflow.store.db import commit_update, connection, transaction
from qunflow.store.eventlog import append_events, holds_event
from qunflow.store.memo import recall, remember, remembered
from qunflow.store.plain import (
    flag,
    insert_if_new,
    insert_ignore,
    read_first,
    read_plain,
    read_scalar,
    write_plain,
)
from qunflow.store.tables import (
    campaigns,
    channels,
    entry_points,
    events,
    groups,
    identities,
    inbox,
    member_merges,
    members,
    tier_moves,
)
from qunflow.workspace import Workspace

# How long an approval waits for the welcome another delivery of the same join request is sending (its call, and
# a platform's "retry after" it may wait for: engine/outbox.py send), before it approves anyway.
WELCOME_SETTLE_WAIT = 30.0


class NoRoom(Conflict):
    """Every group of the tier is full: the operator must open a new one."""


class Waitlisted(NoRoom):
    """No group with room along the fallback order: the pass is on the waitlist (services/waitlist.py)."""

    def __init__(self, message: str, member_id: str, tier: str, link: str) -> None:
        super().__init__(message)
        self.member_id = member_id
        self.tier = tier
        self.link = link  # the person's waitlist page /w/<token>


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
    qr_url: str | None = None  # a picture to scan instead of a link to follow (WeCom)
    coupon: bool = True  # False: over the day's new-member coupon cap for its device or IP (still joins)
    expires_at: datetime | None = None  # naive UTC: when the link stops working (Telegram expire_date)
    join_message: str | None = None  # what to send the bot to get in (Capabilities.joins_by_message), else None


def submit_gate(ws: Workspace, code: str, visitor_id: str, form: Mapping[str, str], *,
                locale: str = "zh", referrer_id: str | None = None, signals: RawSignals | None = None) -> Ticket:
    """Validate the gate, record the consents (profile, marketing), pick a group with room along the
    workspace's fallback order and hand out its invite link.

    `signals` (device cookie, IP, user agent, phone, e-mail) are kept as keyed hashes for the fraud checks,
    and decide whether the pass earns new-member coupons (services/gate_guard.py `coupon_eligible`).

    Raises GateErrors (what to fix, by field) or Waitlisted (no group with room in any tier the pass may
    go to: the person is on the waitlist). A pass that did not get the tier the gate chose raises an alert.
    """
    now = ws.clock()
    with ws.engine.connect() as conn:
        entry = entry_info(conn, code)
        result = evaluate(entry.gate, form, entry.target_tier, lambda ref: order_on_record(conn, ref))
    member_id = "m_" + secrets.token_hex(8)
    ticket = "t" + secrets.token_hex(7)
    hashed = hash_signals(ws, signals) if signals is not None else None
    coupon = True
    with ws.engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # two gate passes must not take the last seat twice
            conn.execute(select(groups.c.id).with_for_update())
        placement = place(group_slots(conn, now, entry.platform), result.tier, ws.settings.tier_fallback)
        group = placement.group
        properties: dict[str, Any] = {"tier": result.tier, "answers": result.answers, "no_room": group is None,
                                      "placed_tier": placement.tier if group is not None else None,
                                      "route": result.route}
        if result.first_order is not None:
            properties["first_order"] = result.first_order
        gate_event = _event(ws, f"gs-{member_id}", "gate_submitted", member_id=member_id,
                            visitor_id=visitor_id, channel=entry.channel, campaign=entry.campaign,
                            entry_point=entry.code, properties=properties)
        append_events(conn, [gate_event])  # kept even when nobody gets in: the console counts them
        # Waitlisted or not, the pass is a member: the profile and consents are kept alike (the waitlist
        # page asks for a contact separately).
        conn.execute(insert(members).values(
            id=member_id, visitor_id=visitor_id, profile=seal(ws, result.profile), tier=placement.tier,
            locale=locale[:8], entry_point_id=entry.id, group_id=group.id if group else None,
            referrer_id=referrer_id, join_ticket=ticket if group else None, created_at=now))
        index_name(ws, conn, member_id, result.profile)
        # Both decisions are kept: an unticked marketing box is a "no", not a question still open.
        record_consent(conn, member_id, PROFILE, True, "gate", now, event=False)
        record_consent(conn, member_id, MARKETING, result.marketing, "gate", now, event=False)
        if hashed is not None:
            coupon = coupon_eligible(ws, conn, hashed, now)
            record_join_signals(conn, member_id, hashed, now, coupon_eligible=coupon)
        if group is None:
            add_to_waitlist(conn, member_id, entry.id, result.tier, now)
        alerted = placement.fell_back and alert_no_room(ws, conn, placement, entry.code, member_id, now)
        group_row = conn.execute(select(groups).where(groups.c.id == group.id)).one() if group else None
    if alerted:
        kick_staff_alerts(ws)
    if group is None or group_row is None:
        raise Waitlisted(f"no group with room for {result.tier} along the fallback order: on the waitlist",
                         member_id, result.tier, waitlist_link(ws, member_id))
    invite = invite_for(ws, group_row, ticket, personal=True)
    return Ticket(member_id, placement.tier, group.key, invite.url, invite.qr_url, coupon, invite.expires_at,
                  join_message(ws, group_row.platform, invite.label))


def join_message(ws: Workspace, platform: str, label: str) -> str | None:
    """The message a person sends the bot to ask in, where the platform's links cannot carry it."""
    return f"join {label}" if ws.connector(platform).capabilities.joins_by_message else None


def order_on_record(conn: Connection, ref: str) -> bool:
    """Whether an `order` event with this id is recorded (the gate's first-order option)."""
    return conn.execute(select(events.c.seq).where(events.c.type == "order", events.c.event_id == ref)
                        .limit(1)).first() is not None


def alert_no_room(ws: Workspace, conn: Connection, placement: Placement, code: str, member_id: str | None,
                  now: Any) -> bool:
    """The inbox alert (and staff webhook post) when a pass could not go to the tier its gate chose: once per
    tier and hour. It names the tier, where the pass went and the entry point; never the person's answers.
    True when a webhook post was queued (kick it after the commit)."""
    where = placement.tier if placement.group is not None else None
    texts = {lang: t("no_room_alert", lang, tier=placement.routed, entry=code,
                     went=t("no_room_waitlist", lang) if where is None else
                     t("no_room_fallback", lang, tier=where, group=placement.group.key if placement.group else ""))
             for lang in ("zh", "en")}
    cause = f"no_room:{placement.routed}:{now:%Y%m%d%H}"
    created = insert_if_new(conn, inbox, {"kind": "alert", "cause": cause, "member_id": member_id,
                                           "title": f"{texts['zh']} / {texts['en']}", "created_at": now})
    if not created or not ws.settings.staff_webhook:
        return False
    return queue_staff_alert(conn, cause, {"text": f"{texts['zh']}\n{texts['en']}", "kind": "no_room",
                                           "tier": placement.routed, "entry_point": code,
                                           "placed_tier": where}, now)


def entry_invite(ws: Workspace, code: str) -> tuple[EntryInfo, Any, Any]:
    """A gate-less entry point's own link, into the first group with room of its tier or, failing that, along the
    fallback order: (entry, group, link).
    The join attributes to the entry point by its code; the welcome asks for consent."""
    with ws.engine.connect() as conn:
        entry = entry_info(conn, code)
        placement = place(group_slots(conn, ws.clock(), entry.platform), entry.target_tier, ws.settings.tier_fallback)
        group = placement.group
        row = conn.execute(select(groups).where(groups.c.id == group.id)).one() if group else None
    if placement.fell_back:
        with ws.engine.begin() as conn:
            alerted = alert_no_room(ws, conn, placement, entry.code, None, ws.clock())
        if alerted:
            kick_staff_alerts(ws)
    if group is None or row is None:
        raise NoRoom(f"every {entry.target_tier} group is full, and every tier along tier_fallback",
                     zh=f"「{entry.target_tier}」层级的群都已满员,tier_fallback 中的各层级也都已满")
    return entry, row, invite_for(ws, row, entry.code, personal=False)


# --- inbound handlers (services.inbound) ----------------------------------------------------------

# The join path's lookups, built once: building a statement costs several times what SQLite takes to run
# it, and a join request runs about twenty of them (bench/bench_connectors.py).
# The columns the update's handlers read (text and integers: a read on the driver's cursor, store/plain.py).
_GROUP_BY_CHAT = select(groups.c.id, groups.c.key, groups.c.name, groups.c.platform, groups.c.external_id,
                        groups.c.tier, groups.c.capacity, groups.c.member_count).where(
    groups.c.platform == bindparam("platform"), groups.c.external_id == bindparam("external_id"))
_MEMBER_OF_USER = select(identities.c.member_id).where(identities.c.platform == bindparam("platform"),
                                                       identities.c.external_user_id == bindparam("user_id"))
_TICKET_OF_USER = (select(members.c.id, members.c.join_ticket, members.c.entry_point_id)
                   .join(identities, identities.c.member_id == members.c.id)
                   .where(identities.c.platform == bindparam("platform"),
                          identities.c.external_user_id == bindparam("user_id")))
# What a join event carries about its member (text and integers only: read on the driver's cursor).
_MEMBER_TO_RECORD = select(members.c.id, members.c.visitor_id, members.c.tier, members.c.entry_point_id,
                           members.c.referrer_id).where(members.c.id == bindparam("member_id"))
# A tier move's own link (services/tier_moves.py): its label, while the move is open, admits its member.
_OPEN_MOVE_LABEL = select(tier_moves.c.id).where(tier_moves.c.open_key == bindparam("member_id"),
                                                 tier_moves.c.label == bindparam("label"))
# What a join event carries about its entry point (an archived one too: its link was handed out before).
_ATTRIBUTES = (entry_points.c.code, channels.c.key.label("channel"), campaigns.c.key.label("campaign"))
_WITH_CHANNEL = (entry_points.join(channels, channels.c.id == entry_points.c.channel_id)
                 .outerjoin(campaigns, campaigns.c.id == entry_points.c.campaign_id))
_ENTRY_ATTRIBUTES = select(*_ATTRIBUTES).select_from(_WITH_CHANNEL).where(entry_points.c.id == bindparam("entry_id"))
# The entry point an invite label names, with what a join through it records (the join then reads it no more:
# channel_id is never NULL, so the inner join drops no entry point).
_ENTRY_BY_CODE = (select(entry_points.c.id, entry_points.c.target_tier, *_ATTRIBUTES).select_from(_WITH_CHANNEL)
                  .where(entry_points.c.code == bindparam("code")))
# A gate pass's member by its ticket, and the platforms that member is known on.
_TICKET_HOLDER = (select(members.c.id, members.c.entry_point_id, members.c.tier)
                  .where(members.c.join_ticket == bindparam("label")))
_PLATFORMS_OF = select(identities.c.platform).where(identities.c.member_id == bindparam("holder"))
_NEW_MEMBER = insert(members)  # the values come as parameters: compiled once per set of columns
_NEW_IDENTITY = insert(identities)
_HOLD_SEAT = (update(members).where(members.c.id == bindparam("mid"), members.c.joined_at.is_(None))
              .values(join_started_at=bindparam("at")))
# The first join's time is kept (a member who left and came back joined first then).
_FIRST_JOINED = func.coalesce(members.c.joined_at, bindparam("joined", type_=members.c.joined_at.type))
_SET_JOINED = update(members).where(members.c.id == bindparam("mid")).values(joined_at=_FIRST_JOINED,
                                                                             group_id=bindparam("gid"))
_SET_JOINED_AT = update(members).where(members.c.id == bindparam("mid")).values(joined_at=_FIRST_JOINED)
_COUNT_IN = (update(groups).where(groups.c.id == bindparam("gid"))
             .values(member_count=groups.c.member_count + 1).returning(groups.c.member_count))
_LAST_JOIN_OR_LEAVE = (select(events.c.type)
                       .where(events.c.member_id == bindparam("member_id"), events.c.group_key == bindparam("group"),
                              or_(events.c.type == "joined", events.c.type == "left"))  # no IN: read_plain
                       .order_by(events.c.seq.desc()).limit(1))
_OFFERED_MOVE = and_(tier_moves.c.open_key == bindparam("member_id"), tier_moves.c.status == "offered")
_HAS_OFFER = select(tier_moves.c.id).where(_OFFERED_MOVE)
# Where a join is recorded: that read, and whether the member has an offered tier move, which the join may complete
# next in the same transaction (services/tier_moves.py complete_offered): one statement.
_JOIN_STATE = select(_LAST_JOIN_OR_LEAVE.scalar_subquery().label("last"),
                     flag(exists().where(_OFFERED_MOVE)).label("offered"))


# What the lookups below remember within one inbound update (store/memo.py), by key; services/join_request_read.py
# reads a join request's in one statement and remembers them under the same keys.
def group_key(platform: str, external_id: str) -> tuple[str, ...]:
    return ("group", platform, external_id)


def member_key(platform: str, user_id: str) -> tuple[str, ...]:
    return ("member", platform, user_id)


def holder_key(label: str) -> tuple[str, ...]:
    return ("ticket_holder", label)


def _offer_key(member_id: str) -> tuple[str, ...]:
    return ("offered_move", member_id)


def has_offered_move(conn: Connection, member_id: str) -> bool:
    """Whether the member has an offered tier move: as this update read it where their join was recorded
    (_in_group_noting_offer), else read now."""
    return bool(remembered(_offer_key(member_id),
                           lambda: read_first(conn, _HAS_OFFER, {"member_id": member_id}) is not None))


def remember_entry(code: str, entry: Any) -> None:
    """What _entry_by_code found for `code` (None: no entry point), and the join's attributes when found."""
    remember(("entry", code), entry)
    if entry is not None:
        remember(("entry_attributes", entry.id), entry)


def group_row(conn: Connection, platform: str, external_id: str) -> Any:
    """The managed group behind a platform's chat id, or None (not a group qunflow manages). Within one
    inbound update, read once (store/memo.py): its member_count is then the count before the update."""
    return remembered(group_key(platform, external_id), lambda: read_first(
        conn, _GROUP_BY_CHAT, {"platform": platform, "external_id": external_id}))


def member_of_user(conn: Connection, platform: str, user_id: str) -> str | None:
    return remembered(member_key(platform, user_id), lambda: read_scalar(
        conn, _MEMBER_OF_USER, {"platform": platform, "user_id": user_id}), remember_none=False)


def _entry_by_code(conn: Connection, code: str) -> Any:
    """The entry point an invite label names (its id, target tier and what a join through it records), or None."""
    def read() -> Any:
        entry = read_first(conn, _ENTRY_BY_CODE, {"code": code})
        remember_entry(code, entry)
        return entry

    return remembered(("entry", code), read)


class _Ticket(NamedTuple):
    """A member's row as _TICKET_OF_USER reads it."""

    id: str
    join_ticket: str | None
    entry_point_id: int | None


class _MemberToRecord(NamedTuple):
    """A member's row as _MEMBER_TO_RECORD reads it."""

    id: str
    visitor_id: str | None
    tier: str | None
    entry_point_id: int | None
    referrer_id: str | None


class ToWelcome(NamedTuple):
    """The member's fields the welcome reads (services/welcome.py `_TO_WELCOME`)."""

    locale: str
    profile: Any
    tier: str | None
    entry_point: str | None  # its code


@dataclass(frozen=True)
class Resolved:
    member_id: str
    # invite_label (a gate pass), entry_point, known_identity, forwarded_link, own_link (a gate pass used on a
    # second platform), unattributed
    attribution: str
    new: bool  # a member made for this join


def resolve(conn: Connection, platform: str, user_id: str, label: str | None, at: Any,
            tier: str | None, group_id: int | None, *, made_with: Mapping[str, Any] | None = None) -> Resolved:
    """The member behind a join, request or contact, made once per person and platform.

    A gate pass's ticket belongs to the first person who uses it: a stranger on a forwarded link becomes
    a member of their own (attribution `forwarded_link`), never merged into the pass's member. The pass
    used on a second platform (its member is known on another one) may be the same person or a stranger:
    a member of their own with the pass's entry point (attribution `own_link`), and the pair a merge
    candidate for an operator to decide (services/merges.py).

    `made_with`: more columns of a member made now (the seat they hold, when they joined), in the same INSERT.
    What the update's next handlers read about a member made now is remembered as written (store/memo.py).
    """
    known = member_of_user(conn, platform, user_id)
    if known is not None:  # e.g. the join that follows an approved request: attributed as the request was
        _id, ticket, entry_id = _ticket_of_user(conn, platform, user_id)
        entry = _entry_by_code(conn, label) if label and label != ticket else None
        attribution = ("invite_label" if label and label == ticket else
                       "entry_point" if entry is not None and entry.id == entry_id else
                       "tier_move" if label and _open_move(conn, known, label) else
                       OWN_LINK if label and entry is None and _own_link(conn, known, label) else "known_identity")
        return Resolved(known, attribution, False)
    member = None
    attribution = "unattributed"
    entry = None
    pass_holder = None  # the gate pass's member, when this person may be them on a second platform
    if label:
        member = remembered(holder_key(label), lambda: read_first(conn, _TICKET_HOLDER, {"label": label}))
        if member is not None:
            platforms = {row.platform for row in read_plain(conn, _PLATFORMS_OF, {"holder": member.id})}
            if not platforms:
                attribution = "invite_label"
            elif platform in platforms:
                member, attribution = None, "forwarded_link"
            else:
                pass_holder, member, attribution = member, None, OWN_LINK
        else:
            entry = _entry_by_code(conn, label)
            attribution = "entry_point" if entry is not None else "unattributed"
    if member is None:
        member_id = "m_" + secrets.token_hex(8)
        if pass_holder is not None:  # they came through the pass's entry point, whoever they are
            entry_id, entry_tier = pass_holder.entry_point_id, pass_holder.tier
        else:
            entry_id, entry_tier = (entry.id, entry.target_tier) if entry else (None, None)
        row = {"id": member_id, "tier": tier or entry_tier, "locale": "zh", "group_id": group_id,
               "entry_point_id": entry_id, "created_at": at}
        write_plain(conn, _NEW_MEMBER, {**row, **(made_with or {})})
        if pass_holder is None:  # what the welcome reads next (services/welcome.py), known without a read
            remember(("to_welcome", member_id), ToWelcome("zh", None, tier or entry_tier, label if entry else None))
        remember(("made", member_id), _MemberToRecord(member_id, None, tier or entry_tier, entry_id, None))
        remember(("ticket", platform, user_id), _Ticket(member_id, None, entry_id))
        no_consent_yet(member_id)
    else:
        member_id = member.id
        remember(("ticket", platform, user_id), _Ticket(member_id, label, member.entry_point_id))
    write_plain(conn, _NEW_IDENTITY, {"member_id": member_id, "platform": platform, "external_user_id": user_id,
                                      "created_at": at})
    remember(("member", platform, user_id), member_id)
    if pass_holder is not None:
        insert_ignore(conn, member_merges, candidate_rows([(pass_holder.id, member_id, OWN_LINK)], at))
    return Resolved(member_id, attribution, member is None)


def _open_move(conn: Connection, member_id: str, label: str) -> bool:
    return conn.execute(_OPEN_MOVE_LABEL, {"member_id": member_id, "label": label}).first() is not None


def on_join_request(ws: Workspace, item: Any) -> None:
    """Someone asked to join through a link: note who it is (the welcome and the approval come next)."""
    assert isinstance(item, JoinRequested)
    with transaction(ws.engine) as conn:
        group = group_row(conn, item.platform, item.group_id)
        if group is None:
            return
        # a seat is held from now (services/catalog.py JOIN_HOLD): a member made now holds it from their INSERT
        resolved = resolve(conn, item.platform, item.user_id, item.invite_label, item.at, group.tier, group.id,
                           made_with={"join_started_at": item.at})
        if not resolved.new:
            write_plain(conn, _HOLD_SEAT, {"mid": resolved.member_id, "at": item.at})
        append_events(conn, [Event(
            event_id=f"jr-{item.platform}-{item.group_id}-{item.user_id}-{item.at:%Y%m%d%H%M%S}",
            type="join_requested", ts=item.at.replace(tzinfo=UTC), member_id=resolved.member_id, group=group.key,
            properties={"platform": item.platform, "attribution": resolved.attribution})])


def known_request(ws: Workspace, item: JoinRequested) -> bool:
    """A request that came through one of our links, by its rightful owner: it is approved."""
    if not item.invite_label:  # no link of ours: nothing to read
        return False
    with connection(ws.engine) as conn:
        return known_request_in(conn, item)


def known_request_in(conn: Connection, item: JoinRequested) -> bool:
    """known_request on the caller's connection."""
    return _known(conn, item) is not None


def _known(conn: Connection, item: JoinRequested) -> str | None:
    """known_request's member (None: not a request qunflow approves)."""
    if not item.invite_label:
        return None
    # no identity: not a group qunflow manages (the join handler skipped it)
    row = _ticket_of_user(conn, item.platform, item.user_id)
    if row is None:
        return None
    if (row.join_ticket == item.invite_label or _entry_by_code(conn, item.invite_label) is not None
            or _open_move(conn, row.id, item.invite_label) or _own_link(conn, row.id, item.invite_label)):
        return str(row.id)
    return None


def _own_link(conn: Connection, member_id: str, label: str) -> bool:
    """`label` is the gate pass of a member paired with `member_id` as "own link" (resolve: the pass used on a
    second platform): the request came through a link qunflow handed out, so it is let in like the pass's."""
    holder = conn.execute(select(members.c.id).where(members.c.join_ticket == label)).scalar()
    if holder is None:
        return False
    pair = select(member_merges.c.id).where(member_merges.c.reason == OWN_LINK, or_(
        and_(member_merges.c.keep_id == holder, member_merges.c.merged_id == member_id),
        and_(member_merges.c.keep_id == member_id, member_merges.c.merged_id == holder)))
    return conn.execute(pair).first() is not None


def approve_request(ws: Workspace, item: Any) -> None:
    """Approve a request on our own link once the welcome went out; others stay pending (they got the gate
    link instead). Runs after the welcome handler (services.inbound)."""
    assert isinstance(item, JoinRequested)
    with connection(ws.engine) as conn:
        member_id = _known(conn, item)
        # Approved and recorded before: a repeat of the update after a crash.
        if member_id is None or _joined_already(conn, item, member_id):
            return
    commit_update()  # the welcome's result is recorded before the approval
    welcome_key = dm_key(member_id)
    if outbox.known_in_update(welcome_key):
        # Another delivery of this request recorded the welcome and may be sending it now: an approval ends
        # the private chat the request opened (Telegram), so it waits for that send to settle first.
        outbox.wait_settled(ws, welcome_key, up_to=WELCOME_SETTLE_WAIT)
    ws.connector(item.platform).approve_join(item.group_id, item.user_id)
    # Approved means in: the join is recorded now, whether or not the platform's own member update
    # follows (Telegram sends one only to an admin bot that asked for it); that update is then a repeat.
    # A tier move's own link asks to join (Telegram): approved means moved, in the same transaction.
    from qunflow.services.tier_moves import after_completion, complete_offered

    joined = MemberJoined(item.platform, ws.clock(), item.group_id, item.user_id, item.display_name,
                          item.invite_label)
    with transaction(ws.engine) as conn:
        recorded = _record_member_joined(ws, conn, joined)
        done = None if recorded is None else complete_offered(conn, ws.clock(), joined, recorded.group,
                                                              recorded.member_id)
    _after_join(ws, recorded)
    if done is not None:
        after_completion(ws, done, joined)


def _joined_already(conn: Connection, item: JoinRequested, member_id: str) -> bool:
    if recall(("made", member_id)) is not None:  # made by this update: only its own approval, next, lets them in
        return False
    group = group_row(conn, item.platform, item.group_id)
    return group is not None and _in_group(conn, member_id, group.key)


def _in_group(conn: Connection, member_id: str, group_key: str) -> bool:
    """Whether the member's last join or leave of this group is a join (a repeat of it is no new join)."""
    # Never remembered (store/memo.py): a platform call in between (an approval) may make the join
    # arrive as an update of its own, handled before the call returns. The events the update holds back are
    # written first only when one is a join or leave of the member (the read cannot see the others).
    return read_scalar(conn, _LAST_JOIN_OR_LEAVE, {"member_id": member_id, "group": group_key},
                       sees_held=holds_event(conn, member_id, ("joined", "left"))) == "joined"


def _in_group_noting_offer(conn: Connection, member_id: str, group_key: str) -> bool:
    """_in_group, in the statement that also reads whether the member has an offered tier move (remembered for
    has_offered_move)."""
    [state] = read_plain(conn, _JOIN_STATE, {"member_id": member_id, "group": group_key},
                         sees_held=holds_event(conn, member_id, ("joined", "left")))
    remember(_offer_key(member_id), bool(state.offered))
    return bool(state.last == "joined")


def _ticket_of_user(conn: Connection, platform: str, user_id: str) -> Any:
    """(member id, join ticket, entry point id) of the member behind a platform user, or None."""
    return remembered(("ticket", platform, user_id), lambda: read_first(
        conn, _TICKET_OF_USER, {"platform": platform, "user_id": user_id}), remember_none=False)


def on_member_joined(ws: Workspace, item: Any) -> None:
    """Attribute the join to its gate pass or entry point (or record that it could not be) and record it,
    unless the person is in the group already (an approved request recorded it)."""
    assert isinstance(item, MemberJoined)
    with transaction(ws.engine) as conn:
        recorded = _record_member_joined(ws, conn, item)
    _after_join(ws, recorded)


@dataclass(frozen=True)
class Recorded:
    """A join into a managed group, as `_record_member_joined` found it."""

    group: Any
    member_id: str
    new: bool  # recorded now (False: the person was in the group already)
    full: bool  # the group reached its capacity with this join


def _record_member_joined(ws: Workspace, conn: Connection, item: MemberJoined) -> Recorded | None:
    """In the caller's transaction: the member behind the join, and the join recorded unless they are in the
    group already. None: not a group qunflow manages."""
    group = group_row(conn, item.platform, item.group_id)
    if group is None:
        return None
    known = member_of_user(conn, item.platform, item.user_id)
    if known is not None and _in_group_noting_offer(conn, known, group.key):  # a repeat: how they came in is
        return Recorded(group, known, False, False)                          # not read again
    resolved = resolve(conn, item.platform, item.user_id, item.invite_label, item.at, group.tier, group.id,
                       made_with={"joined_at": item.at})  # made now: in the group from its INSERT
    made = recall(("made", resolved.member_id))  # made by this update: known as written
    member = made or read_first(conn, _MEMBER_TO_RECORD, {"member_id": resolved.member_id})
    if not resolved.new:  # held for the commit where it can be: nothing reads it back
        write_plain(conn, _SET_JOINED, {"mid": member.id, "joined": item.at, "gid": group.id}, hold=True)
    count = write_plain(conn, _COUNT_IN, {"gid": group.id})
    if made is None:  # only a gate pass's member can be on the waitlist, never one a join made
        mark_joined(ws, conn, member.id)
    _record_join(conn, item, member, group, resolved)
    return Recorded(group, member.id, True, count >= group.capacity)


def _after_join(ws: Workspace, recorded: Recorded | None) -> None:
    if recorded is not None and recorded.full:  # nobody else comes in over the capacity through a link
        revoke_full(ws, recorded.group.id)     # handed out earlier


def on_contact_added(ws: Workspace, item: Any) -> None:
    """A person added a staff account through a 联系我 code: their entry into the private domain, a join."""
    assert isinstance(item, ContactAdded)
    with transaction(ws.engine) as conn:
        resolved = resolve(conn, item.platform, item.user_id, item.invite_label, item.at, None, None,
                           made_with={"joined_at": item.at})
        member = recall(("made", resolved.member_id)) or read_first(conn, _MEMBER_TO_RECORD,
                                                                    {"member_id": resolved.member_id})
        if not resolved.new:
            write_plain(conn, _SET_JOINED_AT, {"mid": member.id, "joined": item.at})
        _record_join(conn, item, member, None, resolved, staff=item.staff_id)


def _record_join(conn: Connection, item: Any, member: Any, group: Any, resolved: Resolved,
                 staff: str | None = None) -> None:
    entry = remembered(("entry_attributes", member.entry_point_id), lambda: read_first(
        conn, _ENTRY_ATTRIBUTES, {"entry_id": member.entry_point_id})) if member.entry_point_id else None
    where = group.external_id if group is not None else f"contact:{staff}"
    attribution = resolved.attribution
    silent = not spec_of(item.platform).capabilities.reports_invite_on_join
    if attribution == "unattributed" and not item.invite_label and silent:
        attribution = "not_reported"  # the platform never says which invite was used (Discord)
    properties: dict[str, Any] = {"tier": group.tier if group is not None else member.tier,
                                  "platform": item.platform, "attribution": attribution}
    if staff is not None:
        properties["staff"] = staff
    append_events(conn, [Event(
        event_id=f"jn-{item.platform}-{where}-{item.user_id}-{item.at:%Y%m%d%H%M%S%f}",
        type="joined", ts=item.at.replace(tzinfo=UTC), member_id=member.id,
        visitor_id=member.visitor_id, channel=entry.channel if entry else None,
        campaign=entry.campaign if entry else None, entry_point=entry.code if entry else None,
        group=group.key if group is not None else None, referrer_id=member.referrer_id, properties=properties)])


def on_member_left(ws: Workspace, item: Any) -> None:
    assert isinstance(item, MemberLeft)
    with transaction(ws.engine) as conn:
        group = group_row(conn, item.platform, item.group_id)
        member_id = member_of_user(conn, item.platform, item.user_id)
        if group is None or member_id is None:
            return
        # Left already: a repeat (a removal qunflow made and recorded, which the platform reports too).
        if conn.execute(_LAST_JOIN_OR_LEAVE, {"member_id": member_id, "group": group.key}).scalar() == "left":
            return
        conn.execute(update(groups).where(groups.c.id == group.id, groups.c.member_count > 0)
                     .values(member_count=groups.c.member_count - 1))
        append_events(conn, [Event(
            event_id=f"lf-{item.platform}-{item.group_id}-{item.user_id}-{item.at:%Y%m%d%H%M%S%f}",
            type="left", ts=item.at.replace(tzinfo=UTC), member_id=member_id, group=group.key)])
    offer_seats(ws)  # a seat opened: the oldest on the waitlist get it
