"""Set-up records: channels, campaigns, gates, groups and entry points (C1, C2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select
from sqlalchemy.exc import IntegrityError

from qunflow.connectors.base import Connector
from qunflow.connectors.registry import spec_of
from qunflow.domain.entry import CHANNEL_KINDS, TIERS, UTM_KEYS, check_choice, check_code, check_key
from qunflow.domain.gate import SEED_GATE_JSON, Gate, gate_from_json
from qunflow.domain.routing import GroupSlot
from qunflow.errors import Conflict, InvalidInput, NotFound
from qunflow.store.eventlog import utcnow
from qunflow.store.tables import campaigns, channels, entry_points, gates, groups, members
from qunflow.workspace import Workspace

# Capacity counts joins, and holds a seat only once a join has started on the platform (a join request),
# for JOIN_HOLD: a gate pass alone holds nothing, so anonymous passes cannot fill a tier (issue 11). Recent
# passes still steer the live code (PASS_STEERS), so a burst spreads over the groups. The price: when more
# people pass than there are seats, a group's links are revoked as it fills (services/join.py
# `on_member_joined`) and a late one passes the gate again; joins racing for the last seat can take a group
# one or two over capacity, so keep capacity a little under a platform's hard cap.
JOIN_HOLD = timedelta(minutes=10)
PASS_STEERS = timedelta(minutes=15)  # a pass not joined yet steers the live code this long (domain/routing.py)


def _insert(ws: Workspace, table: Any, what: str, **values: Any) -> int:
    try:
        with ws.engine.begin() as conn:
            key = conn.execute(insert(table).values(created_at=utcnow(), **values)).inserted_primary_key
            return int(key[0])  # type: ignore[index]
    except IntegrityError as exc:
        raise Conflict(f"{what} exists already") from exc


def _id_of(conn: Connection, table: Any, key: str, what: str) -> int:
    found = conn.execute(select(table.c.id).where(table.c.key == key)).scalar()
    if found is None:
        raise NotFound(f"no {what} {key!r}")
    return int(found)


def add_channel(ws: Workspace, key: str, kind: str, name: str | None = None) -> int:
    check_key("channel", key)
    check_choice("channel kind", kind, CHANNEL_KINDS)
    return _insert(ws, channels, f"channel {key!r}", key=key, kind=kind, name=name or key)


def add_campaign(ws: Workspace, key: str, channel: str, name: str | None = None) -> int:
    check_key("campaign", key)
    with ws.engine.connect() as conn:
        channel_id = _id_of(conn, channels, channel, "channel")
    return _insert(ws, campaigns, f"campaign {key!r}", key=key, channel_id=channel_id, name=name or key)


def add_gate(ws: Workspace, key: str, definition: dict[str, Any] | None = None, name: str | None = None) -> int:
    check_key("gate", key)
    definition = definition or SEED_GATE_JSON
    gate_from_json(key, definition)  # validate before storing
    return _insert(ws, gates, f"gate {key!r}", key=key, name=name or key, definition=definition)


def add_group(ws: Workspace, key: str, tier: str, capacity: int, *, platform: str = "sandbox",
              external_id: str | None = None, name: str | None = None) -> int:
    check_key("group", key)
    check_choice("tier", tier, TIERS)
    if not 1 <= capacity <= 100_000:
        raise InvalidInput("capacity must be between 1 and 100000")
    connector = connected(ws, platform)
    most = connector.capabilities.group_capacity_max
    if most is not None and capacity > most:
        raise InvalidInput(f"a {platform} group holds at most {most} members: use --capacity {most} or less")
    if external_id is None:
        create = getattr(connector, "create_group", None)  # a platform qunflow can make chats on (the sandbox)
        if create is None:
            raise InvalidInput(f"a {platform} group needs its external id (the platform's chat id)")
        external_id = create(name or key, f"chat-{key}")
    problems = connector.check_group(external_id)
    if problems:
        raise InvalidInput(f"qunflow cannot run {platform} chat {external_id} yet: " + " ".join(problems))
    made = _insert(ws, groups, f"group {key!r} (or its external id)", key=key, tier=tier,
                   capacity=capacity, platform=platform, external_id=external_id, name=name or key,
                   member_count=0, active=True)
    from qunflow.services.group_welcome import sync_quietly

    sync_quietly(ws, [platform])  # a platform-side group welcome template (WeCom), made with the first group
    return made


def connected(ws: Workspace, platform: str) -> Connector:
    """The connector of a platform this workspace has set up, or a clear error saying how to set it up."""
    spec_of(platform)  # an unknown platform names the known ones
    if platform not in ws.connected_platforms():
        raise InvalidInput(f"{platform} is not connected: run `qunflow connect {platform} --help` first")
    return ws.connector(platform)


def add_entry_point(ws: Workspace, code: str, channel: str, *, target_tier: str = "newbie",
                    gate: str | None = None, campaign: str | None = None, platform: str = "sandbox",
                    utm: dict[str, str] | None = None, name: str | None = None) -> int:
    check_code(code)
    check_choice("tier", target_tier, TIERS)
    most = connected(ws, platform).capabilities.invite_label_max
    if len(code) > most:
        raise InvalidInput(f"entry point code {code!r} is longer than the {most} characters a {platform} invite "
                           "carries back on the join: choose a shorter code")
    utm = utm or {}
    bad = set(utm) - set(UTM_KEYS)
    if bad:
        raise InvalidInput(f"unknown UTM parameter(s): {', '.join(sorted(bad))}")
    with ws.engine.connect() as conn:
        values: dict[str, Any] = {"channel_id": _id_of(conn, channels, channel, "channel")}
        values["gate_id"] = _id_of(conn, gates, gate, "gate") if gate else None
        values["campaign_id"] = _id_of(conn, campaigns, campaign, "campaign") if campaign else None
    utm = {"utm_source": channel, **utm}
    return _insert(ws, entry_points, f"entry point {code!r}", code=code, name=name or code,
                   target_tier=target_tier, platform=platform, utm=utm, **values)


@dataclass(frozen=True)
class EntryInfo:
    id: int
    code: str
    name: str
    channel: str
    channel_kind: str
    campaign: str | None
    target_tier: str
    platform: str
    utm: dict[str, str]
    gate: Gate | None


def entry_info(conn: Connection, code: str) -> EntryInfo:
    query = (select(entry_points, channels.c.key.label("channel_key"), channels.c.kind.label("kind"),
                    campaigns.c.key.label("campaign_key"), gates.c.key.label("gate_key"),
                    gates.c.definition)
             .join(channels, channels.c.id == entry_points.c.channel_id)
             .outerjoin(campaigns, campaigns.c.id == entry_points.c.campaign_id)
             .outerjoin(gates, gates.c.id == entry_points.c.gate_id)
             .where(entry_points.c.code == code))
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no entry point {code!r}")
    gate = gate_from_json(row.gate_key, row.definition) if row.gate_key else None
    return EntryInfo(row.id, row.code, row.name, row.channel_key, row.kind, row.campaign_key,
                     row.target_tier, row.platform, dict(row.utm or {}), gate)


def group_slots(conn: Connection, now: datetime, platform: str | None = None) -> list[GroupSlot]:
    """Groups with their occupancy (members, plus seats held by join requests of the last JOIN_HOLD) and the
    recent gate passes still on their way in."""
    waiting = and_(members.c.joined_at.is_(None), members.c.group_id.is_not(None))
    held = (select(members.c.group_id, func.count().label("n"))
            .where(waiting, members.c.join_started_at > now - JOIN_HOLD)
            .group_by(members.c.group_id).subquery())
    passes = (select(members.c.group_id, func.count().label("n"))
              .where(waiting, members.c.join_started_at.is_(None), members.c.created_at > now - PASS_STEERS)
              .group_by(members.c.group_id).subquery())
    query = (select(groups.c.id, groups.c.key, groups.c.tier, groups.c.capacity, groups.c.active,
                    (groups.c.member_count + func.coalesce(held.c.n, 0)).label("occupied"),
                    func.coalesce(passes.c.n, 0).label("pending"))
             .outerjoin(held, held.c.group_id == groups.c.id).outerjoin(passes, passes.c.group_id == groups.c.id)
             .order_by(groups.c.id))
    if platform:
        query = query.where(groups.c.platform == platform)
    return [GroupSlot(r.id, r.key, r.tier, r.capacity, int(r.occupied), bool(r.active), int(r.pending))
            for r in conn.execute(query)]


def list_entry_points(ws: Workspace) -> list[dict[str, Any]]:
    query = (select(entry_points.c.code, entry_points.c.name, channels.c.key.label("channel"),
                    entry_points.c.target_tier, gates.c.key.label("gate"), entry_points.c.platform)
             .join(channels, channels.c.id == entry_points.c.channel_id)
             .outerjoin(gates, gates.c.id == entry_points.c.gate_id).order_by(entry_points.c.code))
    with ws.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def list_groups(ws: Workspace) -> list[dict[str, Any]]:
    with ws.engine.connect() as conn:
        slots = {s.id: s for s in group_slots(conn, ws.clock())}
        rows = conn.execute(select(groups).order_by(groups.c.tier, groups.c.id)).all()
    return [{"key": r.key, "name": r.name, "platform": r.platform, "tier": r.tier,
             "capacity": r.capacity, "members": r.member_count, "room": slots[r.id].room,
             "active": r.active} for r in rows]
