"""A plain-Python reading of METRICS.md, used only by tests as an oracle for the SQL engines.

Written from the definitions, one metric at a time, without regard for speed.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

ENGAGEMENT = {"message", "task_completed", "checkin", "reaction", "poll_vote", "order", "booking", "signup",
              "download", "coupon_redeemed"}
CONVERSION = {"order", "booking"}
DAY = timedelta(days=1)


def _ts(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["ts"]).astimezone(UTC)


def _week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else float(num) / float(den)


def reference_report(events: list[dict[str, Any]], start: date, end: date, as_of: date, by: str,
                     tz: str = "Asia/Shanghai", experiment: str | None = None) -> dict[str, Any]:
    zone = ZoneInfo(tz)
    cutoff = datetime.combine(as_of + DAY, time(0), zone).astimezone(UTC)

    def day(e: dict[str, Any]) -> date:
        return _ts(e).astimezone(zone).date()

    # Re-sent event ids are no-ops: the first one counts.
    seen: set[str] = set()
    log = []
    for order, e in enumerate(events):
        if e["event_id"] not in seen:
            seen.add(e["event_id"])
            log.append({**e, "_order": order})
    log = [e for e in log if day(e) <= as_of]
    log.sort(key=lambda e: (_ts(e), e["_order"]))

    joins: dict[str, dict[str, Any]] = {}
    for e in log:
        if e["type"] == "joined" and e.get("member_id") and e["member_id"] not in joins:
            joins[e["member_id"]] = e

    links: dict[str, str] = {}
    for e in log:  # sorted by (ts, arrival): the earliest event that carries both ids
        if e.get("visitor_id") and e.get("member_id") and e["visitor_id"] not in links:
            links[e["visitor_id"]] = e["member_id"]

    def person(e: dict[str, Any]) -> str:
        return e.get("member_id") or links.get(e.get("visitor_id") or "") or f"visitor:{e.get('visitor_id')}"

    # Experiments: a person's first exposure gives their variant; behaviour counts from then on.
    exposure: dict[str, dict[str, Any]] = {}
    for e in log:
        props = e.get("properties") or {}
        if (experiment is not None and e["type"] == "experiment_exposure"
                and (e.get("experiment") or props.get("experiment")) == experiment and person(e) not in exposure):
            exposure[person(e)] = {"ts": _ts(e), "variant": e.get("variant") or props.get("variant")}

    def exposed(who: str) -> bool:
        return experiment is None or who in exposure

    def after_exposure(who: str, e: dict[str, Any]) -> bool:
        return experiment is None or _ts(e) >= exposure[who]["ts"]

    def member_dim(e: dict[str, Any]) -> Any:
        if by == "variant":
            return exposure[person(e)]["variant"]
        return {"none": None, "channel": e.get("channel"), "campaign": e.get("campaign"),
                "entry_point": e.get("entry_point"), "group": e.get("group"),
                "tier": (e.get("properties") or {}).get("tier"), "cohort_day": day(e).isoformat(),
                "cohort_week": _week(day(e))}[by]

    cohort = {m: j for m, j in joins.items() if start <= day(j) <= end and exposed(m)}
    stats: dict[Any, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    seconds: dict[Any, list[float]] = defaultdict(list)
    by_member: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in log:
        if e.get("member_id") and exposed(e["member_id"]) and after_exposure(e["member_id"], e):
            by_member[e["member_id"]].append(e)  # a member's behaviour (from exposure on, in an experiment)

    for member, join in cohort.items():
        keys = [member_dim(join), "__total__"]
        jts, jday = _ts(join), day(join)
        mine = by_member[member]
        active_days = {day(e) for e in mine if e["type"] in ENGAGEMENT}
        conversions = [e for e in mine if e["type"] in CONVERSION and _ts(e) >= jts]
        in30 = [e for e in conversions if _ts(e) < jts + 30 * DAY]
        in90 = [e for e in conversions if _ts(e) < jts + 90 * DAY]
        mature30, mature90 = jts + 30 * DAY <= cutoff, jts + 90 * DAY <= cutoff
        invites = sum(1 for e in mine if e["type"] == "invite_sent" and jts <= _ts(e) < jts + 30 * DAY)
        referred = sum(1 for other, oj in joins.items() if other != member and oj.get("referrer_id") == member
                       and jts <= _ts(oj) < jts + 30 * DAY and after_exposure(member, oj))
        task = any(e["type"] == "task_completed" and day(e) in (jday, jday + DAY) for e in mine)
        for key in keys:
            s = stats[key]
            s["cohort_size"] += 1
            for n in (1, 7, 14, 30):
                if jday + n * DAY <= as_of:
                    s[f"eligible_{n}"] += 1
                    s[f"retained_{n}"] += (jday + n * DAY) in active_days
            if jday + DAY <= as_of:
                s["task_d1"] += task
            if in30:
                s["converted"] += 1
                seconds[key].append((min(_ts(e) for e in in30) - jts).total_seconds())
            elif not mature30:
                s["in_progress"] += 1
            if mature30:
                s["mature_30"] += 1
                s["converted_mature"] += bool(in30)
                s["revenue_30"] += sum(Decimal(str(e.get("amount") or 0)) for e in in30)
                s["margin_30"] += sum(Decimal(str(e.get("margin") or 0)) for e in in30)
                s["invites_30"] += invites
                s["referred_30"] += referred
            if mature90:
                s["mature_90"] += 1
                s["revenue_90"] += sum(Decimal(str(e.get("amount") or 0)) for e in in90)
                s["margin_90"] += sum(Decimal(str(e.get("margin") or 0)) for e in in90)

    # M3: current members as of the as-of day: everyone joined by then, not only the cohort.
    for member, join in joins.items():
        if not exposed(member):
            continue
        whole = [e for e in log if e.get("member_id") == member]  # joins and leaves are state, not behaviour
        last_join = max(_ts(e) for e in whole if e["type"] == "joined")
        if any(e["type"] == "left" and _ts(e) > last_join for e in whole):
            continue
        key = member_dim(join)  # by group too: the first join's group (an acquisition attribute), as every slice
        active_days = {day(e) for e in by_member[member] if e["type"] in ENGAGEMENT}
        for k in (key, "__total__"):
            stats[k]["current_members"] += 1
            for w in (7, 14, 30):
                stats[k][f"active_{w}"] += any(as_of - (w - 1) * DAY <= d <= as_of for d in active_days)

    # M1: people with a landing view in the period (in an experiment: at or after their exposure).
    first_view: dict[str, dict[str, Any]] = {}
    for e in log:
        who = person(e)
        if (e["type"] == "landing_view" and start <= day(e) <= end and who not in first_view
                and exposed(who) and after_exposure(who, e)):
            first_view[who] = e
    for who, view in first_view.items():
        landing_key = {"cohort_day": day(view).isoformat(), "cohort_week": _week(day(view))}.get(by)
        key = landing_key if by in ("cohort_day", "cohort_week") else member_dim(view)
        vts = _ts(view)
        mature = vts + 7 * DAY <= cutoff
        joined = any(e["type"] == "joined" and person(e) == who and vts <= _ts(e) < vts + 7 * DAY for e in log)
        for k in (key, "__total__"):
            stats[k]["landing_visitors"] += 1
            stats[k]["landing_mature"] += mature
            stats[k]["landing_joined"] += mature and joined
    return {"stats": stats, "seconds": seconds}


def reference_metrics(events: list[dict[str, Any]], start: date, end: date, as_of: date, by: str,
                      spend: list[tuple[str, date, Decimal]] = (), tz: str = "Asia/Shanghai",
                      experiment: str | None = None) -> dict[Any, dict]:
    """Metric values per slice value (the total under '__total__')."""
    raw = reference_report(events, start, end, as_of, by, tz, experiment)
    spend_by: dict[Any, Decimal] = defaultdict(Decimal)
    for channel, d, amount in spend:
        if start <= d <= end and d <= as_of:  # spend, like events, only up to the as-of day
            spend_by[channel] += amount
            spend_by["__total__"] += amount
    spend_keys = set(spend_by) if by == "channel" and experiment is None else set()
    keys = set(raw["stats"]) | spend_keys | {"__total__"}
    out = {}
    for key in keys:
        s = raw["stats"][key]
        has_spend = (by == "channel" or key == "__total__") and experiment is None
        money = spend_by.get(key, Decimal(0)) if has_spend else None
        values = {
            "landing_visitors": s["landing_visitors"],
            "join_conversion": _ratio(s["landing_joined"], s["landing_mature"]),
            "cohort_size": s["cohort_size"],
            **{f"retention_d{n}": _ratio(s[f"retained_{n}"], s[f"eligible_{n}"]) for n in (1, 7, 14, 30)},
            "task_completion_d1": _ratio(s["task_d1"], s["eligible_1"]),
            "current_members": s["current_members"],
            **{f"active_ratio_{w}d": _ratio(s[f"active_{w}"], s["current_members"]) for w in (7, 14, 30)},
            "invites_per_member": _ratio(s["invites_30"], s["mature_30"]),
            "k_factor": _ratio(s["referred_30"], s["mature_30"]),
            "converted": s["converted"], "in_progress": s["in_progress"],
            "conversion_rate": _ratio(s["converted_mature"], s["mature_30"]),
            "median_seconds_to_conversion": statistics.median(raw["seconds"][key]) if raw["seconds"][key] else None,
            "revenue_per_member": _ratio(s["revenue_30"], s["mature_30"]),
            "margin_per_member": _ratio(s["margin_30"], s["mature_30"]),
            "ltv_90_revenue": _ratio(s["revenue_90"], s["mature_90"]),
            "ltv_90_margin": _ratio(s["margin_90"], s["mature_90"]),
            "spend": float(money) if money is not None else None,
            # Unknown spend: no cost; an organic channel's spend of 0: a cost of 0.
            "cost_per_join": _ratio(money, s["cohort_size"]) if money is not None else None,
            "cost_per_acquisition": _ratio(money, s["converted"]) if money is not None else None,
        }
        out[key] = values
    return out
