"""The pitfall doctor: audit a workspace against SPEC.md's P1-P8 in the seed's set-up order.

Reads the catalog, the applied documents, the event log and the outbox; changes nothing. Each check is a
small function returning findings; `diagnose` runs them all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from qunflow.domain.doctor import (
    ORDER_SILENCE_DAYS,
    TIER_LOW_SHARE,
    WELCOME_WINDOW_MS,
    Finding,
    costly_channels,
    in_order,
    p99,
)
from qunflow.domain.entry import TIERS
from qunflow.domain.gate import gate_from_json
from qunflow.domain.routing import room_by_tier
from qunflow.domain.welcome import KEY as WELCOME_KEY
from qunflow.services.catalog import group_slots
from qunflow.services.playbooks import active_playbooks
from qunflow.services.rewards import active_programs
from qunflow.store.tables import (
    channels,
    consents,
    deliveries,
    entry_points,
    events,
    gates,
    groups,
    keyword_rule_sets,
    playbooks,
    users,
)
from qunflow.workspace import Workspace

RECENT_DAYS = 28  # joins and welcomes of the last four weeks are audited
CALENDAR_TIERS = ("newbie", "interest", "core")  # the layered groups the seed's calendar posts to (not broadcast)


def _channel_entry_points(conn: Connection, now: datetime, ws: Workspace) -> list[Finding]:
    open_channels = conn.execute(select(channels.c.key, channels.c.id).where(channels.c.archived_at.is_(None))
                                 .order_by(channels.c.key)).all()
    with_entry = set(conn.execute(select(entry_points.c.channel_id)
                                  .where(entry_points.c.archived_at.is_(None))).scalars())
    return [Finding("channel_without_entry_point", "warning",
                    f"channel {row.key} has no entry point of its own: its joins cannot be told apart",
                    f"qunflow entry add {row.key}-main --channel {row.key}", {"channel": row.key})
            for row in open_channels if row.id not in with_entry]


def _joins_without_channel(conn: Connection, now: datetime, ws: Workspace) -> list[Finding]:
    since = now - timedelta(days=RECENT_DAYS)
    count = conn.execute(select(func.count()).select_from(events).where(
        (events.c.type == "joined") & (events.c.ts >= since) & events.c.channel.is_(None))).scalar_one()
    if not count:
        return []
    return [Finding("joins_without_channel", "warning",
                    f"{count} joins in the last {RECENT_DAYS} days came with no channel (source unknown)",
                    "/console/setup", {"joins": int(count), "days": RECENT_DAYS})]


def _welcome(conn: Connection, now: datetime, ws: Workspace) -> list[Finding]:
    out = []
    applied = conn.execute(select(playbooks.c.version).where(
        (playbooks.c.key == WELCOME_KEY) & playbooks.c.enabled)).first()
    if applied is None:
        out.append(Finding("welcome_not_applied", "error",
                           "no welcome is applied: new members get only the built-in default DM",
                           "qunflow apply --shipped"))
    since = now - timedelta(days=RECENT_DAYS)
    rows = conn.execute(select(events.c.properties).where((events.c.type == "welcome_sent")
                                                          & (events.c.ts >= since))).scalars()
    worst = p99([float(p["latency_ms"]) for p in rows if isinstance(p, dict) and "latency_ms" in p])
    if worst is not None and worst > WELCOME_WINDOW_MS:
        out.append(Finding("welcome_slow", "error",
                           f"the welcome DM's p99 is {worst / 1000:.0f} s after the join, over the platforms' "
                           f"{WELCOME_WINDOW_MS // 60000}-minute window", "/console/sends",
                           {"p99_seconds": round(worst / 1000, 1)}))
    return out


def _tiers(conn: Connection, now: datetime, ws: Workspace) -> list[Finding]:
    out = []
    have = set(conn.execute(select(groups.c.tier).where(groups.c.active & groups.c.archived_at.is_(None))).scalars())
    reach: dict[str, set[str]] = {}
    for row in conn.execute(select(entry_points.c.code, entry_points.c.target_tier, gates.c.key, gates.c.definition)
                            .select_from(entry_points.outerjoin(gates, entry_points.c.gate_id == gates.c.id))
                            .where(entry_points.c.archived_at.is_(None))):
        tiers = {row.target_tier}
        if row.key is not None:
            tiers |= gate_from_json(row.key, row.definition).tiers()
        for tier in tiers:
            reach.setdefault(tier, set()).add(row.code)
    for tier in TIERS:
        if tier in reach and tier not in have:
            codes = sorted(reach[tier])
            out.append(Finding("tier_without_group", "error",
                               f"entry points {', '.join(codes)} can route people to tier {tier}, which has no "
                               "active group", f"qunflow group add {tier}-1 --tier {tier} --capacity 500",
                               {"tier": tier}))
    for room in room_by_tier(group_slots(conn, now)):
        if room.groups and room.capacity and room.room < room.capacity * TIER_LOW_SHARE:
            out.append(Finding("tier_filling", "warning",
                               f"tier {room.tier} has {room.room} of {room.capacity} seats left",
                               f"qunflow group add {room.tier}-{room.groups + 1} --tier {room.tier} --capacity "
                               f"{max(100, room.capacity // max(1, room.groups))}", {"tier": room.tier}))
    return out


def _calendar(conn: Connection, now: datetime, ws: Workspace) -> list[Finding]:
    have = set(conn.execute(select(groups.c.tier).where(groups.c.active & groups.c.archived_at.is_(None))).scalars())
    covered: set[str] = set()
    for _key, _version, playbook in active_playbooks(conn):
        if playbook.trigger.on == "schedule":
            covered |= set(playbook.trigger.tiers or TIERS)
    return [Finding("tier_without_calendar", "warning",
                    f"tier {tier} has groups but no content calendar (no scheduled playbook posts to it)",
                    "qunflow apply --shipped", {"tier": tier})
            for tier in CALENDAR_TIERS if tier in have and tier not in covered]


def _keywords(conn: Connection, now: datetime, ws: Workspace) -> list[Finding]:
    on = conn.execute(select(func.count()).select_from(keyword_rule_sets)
                      .where(keyword_rule_sets.c.enabled)).scalar_one()
    return [] if on else [Finding("no_keyword_rules", "warning",
                                  "no keyword rules: questions in the groups get no auto-reply and staff no alert",
                                  "qunflow apply --shipped")]


def _orders(conn: Connection, now: datetime, ws: Workspace) -> list[Finding]:
    joined = conn.execute(select(func.count()).select_from(events).where(events.c.type == "joined")).scalar_one()
    if not joined:
        return []  # nobody has joined yet: no orders are expected
    since = now - timedelta(days=ORDER_SILENCE_DAYS)
    orders = conn.execute(select(func.count()).select_from(events).where(
        events.c.type.in_(ws.settings.conversion_types) & (events.c.ts >= since))).scalar_one()
    return [] if orders else [Finding(
        "no_orders", "warning", f"no order events in the last {ORDER_SILENCE_DAYS} days: conversion and rewards "
        "after orders cannot be measured", "qunflow events import orders.jsonl", {"days": ORDER_SILENCE_DAYS})]


def _access(conn: Connection, now: datetime, ws: Workspace) -> list[Finding]:
    count = conn.execute(select(func.count()).select_from(users)).scalar_one()
    return [] if count else [Finding("no_console_user", "warning",
                                     "no console user: nobody can sign in to the console, and nobody's access is "
                                     "managed", "qunflow user add NAME --role owner")]


def _consent(conn: Connection, now: datetime, ws: Workspace) -> list[Finding]:
    """Marketing DMs sent in the last four weeks to members whose newest marketing consent (at the time) was
    not a grant."""
    since = now - timedelta(days=RECENT_DAYS)
    newest = (select(consents.c.member_id, func.max(consents.c.id).label("id"))
              .where(consents.c.purpose == "marketing").group_by(consents.c.member_id).subquery())
    granted = (select(consents.c.member_id).select_from(newest.join(consents, consents.c.id == newest.c.id))
               .where(consents.c.granted))
    count = conn.execute(select(func.count(func.distinct(deliveries.c.member_id))).where(and_(
        deliveries.c.marketing, deliveries.c.private, deliveries.c.status == "sent",
        deliveries.c.created_at >= since, deliveries.c.member_id.is_not(None),
        deliveries.c.member_id.not_in(granted)))).scalar_one()
    return [] if not count else [Finding(
        "marketing_without_consent", "error",
        f"{count} members got marketing DMs without a marketing consent in force", "/console/sends",
        {"members": int(count)})]


def _rewards(conn: Connection, now: datetime, ws: Workspace) -> list[Finding]:
    out = []
    for _version, program in active_programs(conn):
        capped = any(cap is not None for cap in (program.budget.total, program.budget.per_day)) or all(
            r.budget.total is not None or r.budget.per_day is not None for r in program.rules)
        if not capped:
            out.append(Finding("reward_without_budget_cap", "error",
                               f"reward program {program.key} has no budget cap (no total, no per-day limit)",
                               f"add budget: {{total: ..., per_day: ...}} to {program.key} and run qunflow apply",
                               {"program": program.key}))
        if not any(r.qualify == "first_order" for r in program.rules):
            out.append(Finding("reward_before_order", "warning",
                               f"reward program {program.key} pays every reward before the invitee's first order "
                               "(no quality reward): an invite to a fake account earns as much as a real one",
                               f"add a rule with qualify: first_order to {program.key} and run qunflow apply",
                               {"program": program.key}))
    return out


CHECKS: tuple[Callable[[Connection, datetime, Workspace], list[Finding]], ...] = (
    _channel_entry_points, _joins_without_channel, _welcome, _tiers, _calendar, _keywords, _orders, _access,
    _consent, _rewards)


def _costly(ws: Workspace, now: datetime, channel_rows: list[dict[str, Any]] | None) -> list[Finding]:
    from qunflow.services.metrics import metrics_report

    if channel_rows is not None:
        return _costly_of(channel_rows)
    as_of = now.replace(tzinfo=UTC).astimezone(ws.settings.zone).date()  # the clock is naive UTC
    report = metrics_report(ws, start=as_of - timedelta(days=55), end=as_of, as_of=as_of, by="channel")
    return _costly_of(report["rows"])


def _costly_of(rows: list[dict[str, Any]]) -> list[Finding]:
    # Paid channels only: an organic channel's CPA is 0 (nothing spent), no yardstick for what a paid one costs.
    paid = {row["channel"]: (row["spend"], row["converted"]) for row in rows
            if row.get("channel") and row.get("cost_per_acquisition") is not None and row.get("spend")}
    return [Finding("costly_channel", "info",
                    f"channel {channel}'s cost per acquisition (¥{cost:,.0f}) is over 3x the other channels' "
                    f"median (¥{median:,.0f}): the seed's week 4 says cut or fix costly channels",
                    f"/console?channel={channel}", {"channel": channel, "cpa": round(cost, 2),
                                                    "median": round(median, 2)})
            for channel, cost, median in costly_channels(paid)]


def diagnose(ws: Workspace, channel_rows: list[dict[str, Any]] | None = None) -> list[Finding]:
    """Every finding, in the seed's set-up order. `channel_rows`: a by-channel metrics report's rows the
    caller already has (the dashboard's, unfiltered), for the costly-channel check; else the last 8 weeks'."""
    now = ws.clock()
    with ws.engine.connect() as conn:
        findings = [finding for check in CHECKS for finding in check(conn, now, ws)]
    findings += _costly(ws, now, channel_rows)
    findings += _experiment_srm(ws)
    return in_order(findings)


def _experiment_srm(ws: Workspace) -> list[Finding]:
    """Experiments whose exposures do not match their planned split (the sample-ratio check): their numbers
    cannot be trusted until the cause (a broken assignment, a variant that fails to send) is found."""
    from qunflow.services.experiments import experiment_results, list_experiments

    out = []
    for item in list_experiments(ws):
        report = experiment_results(ws, item["experiment"], ship_first=False)
        if report.get("srm_flagged"):
            name = item["experiment"]
            out.append(Finding("experiment_srm", "error",
                               f"experiment {name}: its exposures do not match the planned split (SRM p = "
                               f"{report['srm_p_value']:.2g}); its result cannot be trusted",
                               f"/console/experiments/{name}", {"experiment": name}))
    return out


def doctor_report(ws: Workspace, channel_rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON contract: {"findings": [{"pitfall", "severity", "message", "fix", "check", "week", "params"}]}."""
    return {"findings": [f.as_json() for f in diagnose(ws, channel_rows)]}
