"""A seeded generator of a realistic community's event log, vectorised for benchmarks (numpy, pyarrow).

Channels differ in landing-to-join rate, activity and buying; activity decays after the join;
some members refer others; orders carry amount and margin; some visitors never join; some members
leave, and a quarter of those join again (so M3's last-join rule is exercised).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa

CHANNELS = (  # key, share of members, join rate from landing, daily activity on day 1, buy rate
    ("douyin-ads", 0.40, 0.30, 0.35, 0.04),
    ("xhs-notes", 0.30, 0.50, 0.55, 0.08),
    ("website", 0.20, 0.55, 0.65, 0.15),
    ("expo", 0.10, 0.70, 0.70, 0.20),
)
ACTIVITY_DAYS = tuple(range(1, 31))
START = datetime(2026, 1, 1, tzinfo=UTC)
SPAN_DAYS = 120


def generate(members: int, seed: int = 7) -> pa.Table:
    """About 10 events per member, as an Arrow table in the event-log wire shape (ts in UTC)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    keys = np.array([c[0] for c in CHANNELS])
    channel = rng.choice(len(CHANNELS), size=members, p=[c[1] for c in CHANNELS])
    join_rate = np.array([c[2] for c in CHANNELS])[channel]
    activity = np.array([c[3] for c in CHANNELS])[channel]
    buy = np.array([c[4] for c in CHANNELS])[channel]
    start_us = int(START.timestamp() * 1_000_000)
    join = start_us + rng.integers(0, SPAN_DAYS * 86_400_000_000, size=members)
    day_us = 86_400_000_000
    ids = np.arange(members)
    member = np.char.add("m", ids.astype(str))
    tier = rng.choice(np.array(["newbie", "interest", "core", "broadcast"]), size=members, p=[0.4, 0.3, 0.2, 0.1])
    group = np.char.add(np.char.add(keys[channel], "-"), (ids % 5).astype(str))
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("type", "ts", "member_id", "visitor_id", "channel",
                                                             "group", "referrer_id", "amount", "margin",
                                                             "properties")}

    def add(mask: np.ndarray, kind: str, ts: np.ndarray, *, visitor: bool = False, joined: bool = False,
            amount: np.ndarray | None = None) -> None:
        n = int(mask.sum())
        columns["type"].append(np.full(n, kind))
        columns["ts"].append(ts[mask])
        columns["member_id"].append(member[mask] if kind != "landing_view" else np.full(n, None, dtype=object))
        columns["visitor_id"].append(np.char.add("v", ids[mask].astype(str)) if visitor else np.full(n, None))
        columns["channel"].append(keys[channel][mask] if (joined or kind == "landing_view")
                                  else np.full(n, None, dtype=object))
        columns["group"].append(group[mask] if joined else np.full(n, None, dtype=object))
        referrer = np.where(rng.random(members) < 0.1,  # type: ignore[call-overload]
                            np.char.add("m", np.maximum(ids - 17, 0).astype(str)), None)
        columns["referrer_id"].append(referrer[mask] if joined else np.full(n, None, dtype=object))
        money = amount[mask] if amount is not None else np.full(n, np.nan)
        columns["amount"].append(money)
        columns["margin"].append(money * 0.4)
        props = np.array([json.dumps({"tier": t}) for t in tier[mask]], dtype=object) if joined \
            else np.full(n, None, dtype=object)
        columns["properties"].append(props)

    everyone = np.ones(members, dtype=bool)
    landing = join - rng.integers(60_000_000, 7_200_000_000, size=members)
    add(everyone, "landing_view", landing, visitor=True)
    joined = rng.random(members) < np.minimum(join_rate * 1.8, 1.0)  # the rest only looked
    add(joined, "joined", join, visitor=True, joined=True)
    for k in ACTIVITY_DAYS:
        active = joined & (rng.random(members) < activity * 0.9 ** (k - 1) + 0.03)
        add(active, "message", join + k * day_us + rng.integers(0, day_us // 2, size=members))
    task = joined & (rng.random(members) < activity)
    add(task, "task_completed", join + rng.integers(0, day_us, size=members))
    orders = joined & (rng.random(members) < buy)
    price = rng.choice(np.array([199.0, 399.0, 999.0]), size=members)
    add(orders, "order", join + rng.integers(0, 40 * day_us, size=members), amount=price)
    invites = joined & (rng.random(members) < 0.12)
    add(invites, "invite_sent", join + rng.integers(0, 10 * day_us, size=members))
    for k in ACTIVITY_DAYS:  # reactions, a lighter kind of activity, decaying like messages
        reacting = joined & (rng.random(members) < activity * 0.5 * 0.9 ** (k - 1) + 0.02)
        add(reacting, "reaction", join + k * day_us + rng.integers(day_us // 2, day_us, size=members))
    left = join + rng.integers(day_us, 60 * day_us, size=members)
    leaving = joined & (rng.random(members) < 0.08)
    add(leaving, "left", left)
    back = left + rng.integers(day_us, 20 * day_us, size=members)  # some come back: a second `joined`
    add(leaving & (rng.random(members) < 0.25), "joined", back, visitor=True, joined=True)

    ts = np.concatenate(columns["ts"])
    count = len(ts)
    amount = np.concatenate(columns["amount"])
    return pa.table({
        "event_id": pa.array(np.char.add("g", np.arange(count).astype(str))),
        "type": pa.array(np.concatenate(columns["type"])),
        "ts": pa.array(ts, type=pa.timestamp("us", tz="UTC")),
        "member_id": pa.array(np.concatenate(columns["member_id"]), type=pa.string()),
        "visitor_id": pa.array(np.concatenate(columns["visitor_id"]), type=pa.string()),
        "channel": pa.array(np.concatenate(columns["channel"]), type=pa.string()),
        "group": pa.array(np.concatenate(columns["group"]), type=pa.string()),
        "referrer_id": pa.array(np.concatenate(columns["referrer_id"]), type=pa.string()),
        "amount": pa.array(np.where(np.isnan(amount), None, amount), type=pa.float64()),  # type: ignore[call-overload]
        "margin": pa.array(np.where(np.isnan(amount), None, amount * 0.4),  # type: ignore[call-overload]
                           type=pa.float64()),
        "properties": pa.array(np.concatenate(columns["properties"]), type=pa.string()),
    })
