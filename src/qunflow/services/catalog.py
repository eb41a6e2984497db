"""Set-up records: channels, campaigns, gates, groups and entry points (C1, C2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from qunflow.connectors.base import Connector, fix_text
from qunflow.connectors.registry import spec_of
from qunflow.domain.entry import CHANNEL_KINDS, TIERS, UTM_KEYS, check_choice, check_code, check_key
from qunflow.domain.gate import SEED_GATE_JSON, Gate, gate_from_json
from qunflow.domain.routing import GroupSlot
from qunflow.errors import Conflict, InvalidInput, NotFound, PlatformError
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


# The Chinese of the record kinds the messages below name (console words, i18n.py and console_setup.html).
ZH_WORDS = {"channel": "渠道", "campaign": "活动", "gate": "入群问卷", "group": "群", "entry point": "入口",
            "entry": "入口"}


def _insert(ws: Workspace, table: Any, what: str, what_zh: str, **values: Any) -> int:
    try:
        with ws.engine.begin() as conn:
            key = conn.execute(insert(table).values(created_at=utcnow(), **values)).inserted_primary_key
            return int(key[0])  # type: ignore[index]
    except IntegrityError as exc:
        raise Conflict(f"{what} exists already", zh=f"{what_zh} 已存在") from exc


def _id_of(conn: Connection, table: Any, key: str, what: str, *, open_only: bool = False) -> int:
    """The row id of a key; with open_only, an archived record is refused (nothing new may point at it)."""
    found = conn.execute(select(table.c.id, *_archived(table)).where(table.c.key == key)).first()
    if found is None:
        raise NotFound(f"no {what} {key!r}", zh=f"找不到{ZH_WORDS[what]} {key!r}")
    if open_only and len(found) > 1 and found[1] is not None:
        raise InvalidInput(f"{what} {key!r} is archived: choose an open one",
                           zh=f"{ZH_WORDS[what]} {key!r} 已归档:请选择未归档的{ZH_WORDS[what]}")
    return int(found[0])


def _archived(table: Any) -> list[Any]:
    return [table.c.archived_at] if "archived_at" in table.c else []


def add_channel(ws: Workspace, key: str, kind: str, name: str | None = None) -> int:
    check_key("channel", key)
    check_choice("channel kind", kind, CHANNEL_KINDS)
    return _insert(ws, channels, f"channel {key!r}", f"渠道 {key!r}", key=key, kind=kind, name=name or key)


def add_campaign(ws: Workspace, key: str, channel: str, name: str | None = None) -> int:
    check_key("campaign", key)
    with ws.engine.connect() as conn:
        channel_id = _id_of(conn, channels, channel, "channel", open_only=True)
    return _insert(ws, campaigns, f"campaign {key!r}", f"活动 {key!r}", key=key, channel_id=channel_id,
                   name=name or key)


def add_gate(ws: Workspace, key: str, definition: dict[str, Any] | None = None, name: str | None = None) -> int:
    check_key("gate", key)
    definition = definition or SEED_GATE_JSON
    gate_from_json(key, definition)  # validate before storing
    return _insert(ws, gates, f"gate {key!r}", f"入群问卷 {key!r}", key=key, name=name or key, definition=definition)


def add_group(ws: Workspace, key: str, tier: str, capacity: int, *, platform: str = "sandbox",
              external_id: str | None = None, name: str | None = None) -> int:
    check_key("group", key)
    check_choice("tier", tier, TIERS)
    if not 1 <= capacity <= 100_000:
        raise InvalidInput("capacity must be between 1 and 100000", zh="容量须在 1 到 100000 之间")
    connector = connected(ws, platform)
    most = connector.capabilities.group_capacity_max
    if most is not None and capacity > most:
        raise InvalidInput(f"a {platform} group holds at most {most} members: use --capacity {most} or less",
                           zh=f"{platform} 群最多 {most} 人:容量请设为 {most} 或更小")
    if external_id is None:
        create = getattr(connector, "create_group", None)  # a platform qunflow can make chats on (the sandbox)
        if create is None:
            raise InvalidInput(f"a {platform} group needs its external id (the platform's chat id)",
                               zh=f"{platform} 群需要填写外部 ID(平台上的群聊 ID)")
        external_id = create(name or key, f"chat-{key}")
    problems = connector.check_group(external_id)
    if problems:
        raise InvalidInput(f"qunflow cannot run {platform} chat {external_id} yet: " + " ".join(problems),
                           zh=f"qunflow 暂时无法管理 {platform} 群聊 {external_id}:"
                              + " ".join(fix_text(p, "zh") for p in problems))
    made = _insert(ws, groups, f"group {key!r} (or its external id)", f"群 {key!r}(或它的外部 ID)", key=key, tier=tier,
                   capacity=capacity, platform=platform, external_id=external_id, name=name or key,
                   member_count=0, active=True)
    from qunflow.services.group_welcome import sync_quietly

    sync_quietly(ws, [platform])  # a platform-side group welcome template (WeCom), made with the first group
    return made


def connected(ws: Workspace, platform: str) -> Connector:
    """The connector of a platform this workspace has set up, or a clear error saying how to set it up."""
    spec_of(platform)  # an unknown platform names the known ones
    if platform not in ws.connected_platforms():
        raise InvalidInput(f"{platform} is not connected: run `qunflow connect {platform} --help` first",
                           zh=f"{platform} 尚未连接:请先运行 `qunflow connect {platform} --help`")
    return ws.connector(platform)


def add_entry_point(ws: Workspace, code: str, channel: str, *, target_tier: str = "newbie",
                    gate: str | None = None, campaign: str | None = None, platform: str = "sandbox",
                    utm: dict[str, str] | None = None, name: str | None = None) -> int:
    check_code(code)
    check_choice("tier", target_tier, TIERS)
    most = connected(ws, platform).capabilities.invite_label_max
    if len(code) > most:
        raise InvalidInput(f"entry point code {code!r} is longer than the {most} characters a {platform} invite "
                           "carries back on the join: choose a shorter code",
                           zh=f"入口代码 {code!r} 超过了 {platform} 邀请链接在入群时能带回的 {most} 个字符:"
                              "请换一个更短的代码")
    utm = utm or {}
    bad = set(utm) - set(UTM_KEYS)
    if bad:
        raise InvalidInput(f"unknown UTM parameter(s): {', '.join(sorted(bad))}",
                           zh=f"未知的 UTM 参数:{', '.join(sorted(bad))}")
    with ws.engine.connect() as conn:
        values: dict[str, Any] = {"channel_id": _id_of(conn, channels, channel, "channel", open_only=True)}
        values["gate_id"] = _id_of(conn, gates, gate, "gate") if gate else None
        values["campaign_id"] = _id_of(conn, campaigns, campaign, "campaign", open_only=True) if campaign else None
    utm = {"utm_source": channel, **utm}
    return _insert(ws, entry_points, f"entry point {code!r}", f"入口 {code!r}", code=code, name=name or code,
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
    archived: bool = False


class EntryClosed(NotFound):
    """The entry point was archived: its landing page says it is closed (410), joins already on their way still
    count."""

    http_status = 410


def entry_info(conn: Connection, code: str, *, archived_ok: bool = False) -> EntryInfo:
    """An entry point by its code. An archived one raises EntryClosed unless archived_ok (a join on its
    invite link that was handed out before it closed)."""
    query = (select(entry_points, channels.c.key.label("channel_key"), channels.c.kind.label("kind"),
                    campaigns.c.key.label("campaign_key"), gates.c.key.label("gate_key"),
                    gates.c.definition)
             .join(channels, channels.c.id == entry_points.c.channel_id)
             .outerjoin(campaigns, campaigns.c.id == entry_points.c.campaign_id)
             .outerjoin(gates, gates.c.id == entry_points.c.gate_id)
             .where(entry_points.c.code == code))
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no entry point {code!r}", zh=f"找不到入口 {code!r}")
    if row.archived_at is not None and not archived_ok:
        raise EntryClosed(f"entry point {code!r} is closed (archived)", zh=f"入口 {code!r} 已关闭(已归档)")
    gate = gate_from_json(row.gate_key, row.definition) if row.gate_key else None
    return EntryInfo(row.id, row.code, row.name, row.channel_key, row.kind, row.campaign_key,
                     row.target_tier, row.platform, dict(row.utm or {}), gate, row.archived_at is not None)


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


def list_entry_points(ws: Workspace, *, include_archived: bool = False) -> list[dict[str, Any]]:
    """Entry points with their channel, campaign, gate, tier and UTM defaults; open ones unless include_archived."""
    query = (select(entry_points.c.code, entry_points.c.name, channels.c.key.label("channel"),
                    campaigns.c.key.label("campaign"), entry_points.c.target_tier, gates.c.key.label("gate"),
                    entry_points.c.platform, entry_points.c.utm, entry_points.c.archived_at)
             .join(channels, channels.c.id == entry_points.c.channel_id)
             .outerjoin(campaigns, campaigns.c.id == entry_points.c.campaign_id)
             .outerjoin(gates, gates.c.id == entry_points.c.gate_id).order_by(entry_points.c.code))
    if not include_archived:
        query = query.where(entry_points.c.archived_at.is_(None))
    with ws.engine.connect() as conn:
        return [{**r._mapping, "utm": dict(r.utm or {}), "archived": r.archived_at is not None}
                for r in conn.execute(query)]


def list_groups(ws: Workspace, *, include_archived: bool = True) -> list[dict[str, Any]]:
    """Groups by tier with members and room; archived ones too unless include_archived is False (their members
    still count in the numbers)."""
    query = select(groups).order_by(groups.c.tier, groups.c.id)
    if not include_archived:
        query = query.where(groups.c.archived_at.is_(None))
    with ws.engine.connect() as conn:
        slots = {s.id: s for s in group_slots(conn, ws.clock())}
        rows = conn.execute(query).all()
    return [{"key": r.key, "name": r.name, "platform": r.platform, "tier": r.tier, "external_id": r.external_id,
             "capacity": r.capacity, "members": r.member_count, "room": slots[r.id].room,
             "active": r.active, "archived": r.archived_at is not None} for r in rows]


def list_channels(ws: Workspace, *, include_archived: bool = False) -> list[dict[str, Any]]:
    """Channels with how many open campaigns and entry points each has."""
    open_entries = (select(entry_points.c.channel_id, func.count().label("n"))
                    .where(entry_points.c.archived_at.is_(None)).group_by(entry_points.c.channel_id).subquery())
    open_campaigns = (select(campaigns.c.channel_id, func.count().label("n"))
                      .where(campaigns.c.archived_at.is_(None)).group_by(campaigns.c.channel_id).subquery())
    query = (select(channels.c.key, channels.c.name, channels.c.kind, channels.c.archived_at,
                    func.coalesce(open_entries.c.n, 0).label("entry_points"),
                    func.coalesce(open_campaigns.c.n, 0).label("campaigns"))
             .outerjoin(open_entries, open_entries.c.channel_id == channels.c.id)
             .outerjoin(open_campaigns, open_campaigns.c.channel_id == channels.c.id).order_by(channels.c.key))
    if not include_archived:
        query = query.where(channels.c.archived_at.is_(None))
    with ws.engine.connect() as conn:
        return [{"key": r.key, "name": r.name, "kind": r.kind, "campaigns": int(r.campaigns),
                 "entry_points": int(r.entry_points), "archived": r.archived_at is not None}
                for r in conn.execute(query)]


def list_campaigns(ws: Workspace, *, include_archived: bool = False) -> list[dict[str, Any]]:
    """Campaigns with their channel."""
    query = (select(campaigns.c.key, campaigns.c.name, channels.c.key.label("channel"), campaigns.c.archived_at)
             .join(channels, channels.c.id == campaigns.c.channel_id).order_by(campaigns.c.key))
    if not include_archived:
        query = query.where(campaigns.c.archived_at.is_(None))
    with ws.engine.connect() as conn:
        return [{"key": r.key, "name": r.name, "channel": r.channel, "archived": r.archived_at is not None}
                for r in conn.execute(query)]


def list_gates(ws: Workspace) -> list[str]:
    with ws.engine.connect() as conn:
        return list(conn.execute(select(gates.c.key).order_by(gates.c.key)).scalars())


# --- edit and archive: records are archived, never deleted, so events keep their references -------------------

def _open_row(conn: Connection, table: Any, column: Any, key: str, what: str) -> Any:
    row = conn.execute(select(table).where(column == key)).first()
    if row is None:
        raise NotFound(f"no {what} {key!r}", zh=f"找不到{ZH_WORDS[what]} {key!r}")
    if row.archived_at is not None:
        raise Conflict(f"{what} {key!r} is archived", zh=f"{ZH_WORDS[what]} {key!r} 已归档")
    return row


def _update(ws: Workspace, table: Any, row_id: int, values: dict[str, Any]) -> None:
    if values:
        with ws.engine.begin() as conn:
            conn.execute(update(table).where(table.c.id == row_id).values(**values))


def _name(name: str | None) -> dict[str, Any]:
    if name is None:
        return {}
    if not name.strip() or len(name) > 200:
        raise InvalidInput("a name must have 1 to 200 characters", zh="名称须为 1 到 200 个字符")
    return {"name": name.strip()}


def edit_channel(ws: Workspace, key: str, *, name: str | None = None, kind: str | None = None) -> None:
    """Rename a channel or change its kind (its key, which events carry, stays)."""
    values = _name(name)
    if kind is not None:
        check_choice("channel kind", kind, CHANNEL_KINDS)
        values["kind"] = kind
    with ws.engine.connect() as conn:
        row = _open_row(conn, channels, channels.c.key, key, "channel")
    _update(ws, channels, row.id, values)


def edit_campaign(ws: Workspace, key: str, *, name: str | None = None) -> None:
    """Rename a campaign (its key and channel, which events carry, stay)."""
    with ws.engine.connect() as conn:
        row = _open_row(conn, campaigns, campaigns.c.key, key, "campaign")
    _update(ws, campaigns, row.id, _name(name))


def edit_group(ws: Workspace, key: str, *, name: str | None = None, capacity: int | None = None,
               tier: str | None = None) -> None:
    """Change a group's name, capacity or tier. A capacity under its member count leaves it full, not emptied."""
    values = _name(name)
    with ws.engine.connect() as conn:
        row = _open_row(conn, groups, groups.c.key, key, "group")
    if tier is not None:
        check_choice("tier", tier, TIERS)
        values["tier"] = tier
    if capacity is not None:
        if not 1 <= capacity <= 100_000:
            raise InvalidInput("capacity must be between 1 and 100000", zh="容量须在 1 到 100000 之间")
        most = connected(ws, row.platform).capabilities.group_capacity_max
        if most is not None and capacity > most:
            raise InvalidInput(f"a {row.platform} group holds at most {most} members: use --capacity {most} or less",
                               zh=f"{row.platform} 群最多 {most} 人:容量请设为 {most} 或更小")
        values["capacity"] = capacity
    _update(ws, groups, row.id, values)


UNSET = ""  # for edit_entry_point's campaign and gate: remove it


def edit_entry_point(ws: Workspace, code: str, *, name: str | None = None, channel: str | None = None,
                     campaign: str | None = None, gate: str | None = None, target_tier: str | None = None,
                     utm: dict[str, str] | None = None) -> None:
    """Change an entry point: None leaves a field as it is; campaign or gate UNSET ("") removes it; utm entries
    are merged into the defaults, an empty value removes one. Its code (the invite code on every printed QR)
    stays. Landing copy is edited with the entry point's landing settings, not here."""
    values = _name(name)
    if target_tier is not None:
        check_choice("tier", target_tier, TIERS)
        values["target_tier"] = target_tier
    with ws.engine.connect() as conn:
        row = _open_row(conn, entry_points, entry_points.c.code, code, "entry point")
        if channel is not None:
            values["channel_id"] = _id_of(conn, channels, channel, "channel", open_only=True)
        if campaign is not None:
            values["campaign_id"] = _id_of(conn, campaigns, campaign, "campaign", open_only=True) if campaign else None
        if gate is not None:
            values["gate_id"] = _id_of(conn, gates, gate, "gate") if gate else None
    utm = dict(utm or {})
    bad = set(utm) - set(UTM_KEYS)
    if bad:
        raise InvalidInput(f"unknown UTM parameter(s): {', '.join(sorted(bad))} (known: {', '.join(UTM_KEYS)})",
                           zh=f"未知的 UTM 参数:{', '.join(sorted(bad))}(可用:{', '.join(UTM_KEYS)})")
    if channel is not None and "utm_source" not in utm:  # the default source follows the channel it named
        with ws.engine.connect() as conn:
            old = conn.execute(select(channels.c.key).where(channels.c.id == row.channel_id)).scalar()
        if (row.utm or {}).get("utm_source") == old:
            utm["utm_source"] = channel
    if utm:
        merged = {**dict(row.utm or {}), **{k: v[:200] for k, v in utm.items()}}
        values["utm"] = {k: v for k, v in merged.items() if v}
    _update(ws, entry_points, row.id, values)


def archive_entry_point(ws: Workspace, code: str) -> None:
    """Close an entry point: its landing page answers 410 "closed"; joins on links already handed out count."""
    with ws.engine.connect() as conn:
        row = _open_row(conn, entry_points, entry_points.c.code, code, "entry point")
    _update(ws, entry_points, row.id, {"archived_at": utcnow()})


def archive_group(ws: Workspace, key: str) -> int:
    """Retire a group: the live code sends nobody new to it, and its open invite links are revoked (as when it
    fills); its members and their history stay. Returns the number of links revoked."""
    from qunflow.services.invites import revoke_full

    with ws.engine.connect() as conn:
        row = _open_row(conn, groups, groups.c.key, key, "group")
    _update(ws, groups, row.id, {"archived_at": utcnow(), "active": False})
    try:
        return revoke_full(ws, row.id)
    except PlatformError as exc:  # archived all the same: the live code no longer offers it
        raise PlatformError(f"group {key!r} is archived, but the platform refused to revoke its invite links "
                            f"({exc}): revoke them in the platform's own app",
                            zh=f"群 {key!r} 已归档,但平台拒绝作废它的邀请链接({exc.text('zh')}):"
                               "请在平台自己的应用里作废") from exc


def _open_entry_codes(conn: Connection, column: Any, row_id: int) -> list[str]:
    return list(conn.execute(select(entry_points.c.code).where(column == row_id, entry_points.c.archived_at.is_(None))
                             .order_by(entry_points.c.code)).scalars())


def archive_campaign(ws: Workspace, key: str) -> None:
    """Archive a campaign; refused while open entry points still carry it."""
    with ws.engine.connect() as conn:
        row = _open_row(conn, campaigns, campaigns.c.key, key, "campaign")
        still = _open_entry_codes(conn, entry_points.c.campaign_id, row.id)
    if still:
        raise Conflict(f"campaign {key!r} still has open entry points ({', '.join(still)}): archive them or move "
                       "them to another campaign first",
                       zh=f"活动 {key!r} 仍有未归档的入口({', '.join(still)}):请先归档这些入口,或把它们移到其他活动")
    _update(ws, campaigns, row.id, {"archived_at": utcnow()})


def archive_channel(ws: Workspace, key: str) -> None:
    """Archive a channel; refused while it has open entry points or campaigns."""
    with ws.engine.connect() as conn:
        row = _open_row(conn, channels, channels.c.key, key, "channel")
        still = _open_entry_codes(conn, entry_points.c.channel_id, row.id)
        still_campaigns = list(conn.execute(select(campaigns.c.key).where(
            campaigns.c.channel_id == row.id, campaigns.c.archived_at.is_(None)).order_by(campaigns.c.key)).scalars())
    if still or still_campaigns:
        parts = ([f"entry points {', '.join(still)}"] if still else []) + \
            ([f"campaigns {', '.join(still_campaigns)}"] if still_campaigns else [])
        parts_zh = ([f"入口 {', '.join(still)}"] if still else []) + \
            ([f"活动 {', '.join(still_campaigns)}"] if still_campaigns else [])
        raise Conflict(f"channel {key!r} still has open {' and '.join(parts)}: archive them first",
                       zh=f"渠道 {key!r} 仍有未归档的{'和'.join(parts_zh)}:请先归档它们")
    _update(ws, channels, row.id, {"archived_at": utcnow()})


def restore(ws: Workspace, kind: str, key: str) -> None:
    """Undo an archive (kind: channel, campaign, entry or group); refused while what it hangs on stays archived."""
    tables = {"channel": (channels, channels.c.key), "campaign": (campaigns, campaigns.c.key),
              "entry": (entry_points, entry_points.c.code), "group": (groups, groups.c.key)}
    if kind not in tables:
        raise InvalidInput(f"unknown set-up record {kind!r} (channel, campaign, entry, group)",
                           zh=f"未知的设置记录类型 {kind!r}(可用:channel、campaign、entry、group)")
    table, column = tables[kind]
    with ws.engine.connect() as conn:
        row = conn.execute(select(table).where(column == key)).first()
        if row is None:
            raise NotFound(f"no {kind} {key!r}", zh=f"找不到{ZH_WORDS[kind]} {key!r}")
        if row.archived_at is None:
            raise Conflict(f"{kind} {key!r} is not archived", zh=f"{ZH_WORDS[kind]} {key!r} 未归档")
        parents = [(channels, row.channel_id, "channel")] if kind in ("campaign", "entry") else []
        if kind == "entry" and row.campaign_id is not None:
            parents.append((campaigns, row.campaign_id, "campaign"))
        for parent, parent_id, what in parents:
            found = conn.execute(select(parent.c.key, parent.c.archived_at).where(parent.c.id == parent_id)).one()
            if found.archived_at is not None:
                raise Conflict(f"its {what} {found.key!r} is archived: restore that first",
                               zh=f"它所属的{ZH_WORDS[what]} {found.key!r} 已归档:请先恢复它")
    _update(ws, table, row.id, {"archived_at": None, **({"active": True} if kind == "group" else {})})
