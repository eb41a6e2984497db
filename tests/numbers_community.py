"""A small community with every kind of number in it, dated relative to today (dashboard and trend tests)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

CHANNELS = ("ads", "content", None)  # None: joins through no entry point, unattributed


def community_events(today: date, zone: Any, seed: int = 7, members: int = 90) -> list[dict[str, Any]]:
    """A small community over the last 50 days: landings, joins (some without a channel), Day-1 tasks,
    activity, orders, referrals and leaves, all in the past."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []

    def add(kind: str, at: datetime, **fields: Any) -> None:
        if at < now:
            out.append({"event_id": f"{kind}-{len(out)}", "type": kind, "ts": at.isoformat(), **fields})

    joined: list[tuple[str, datetime]] = []
    for i in range(members):
        day = today - timedelta(days=rng.randint(0, 50))
        at = datetime.combine(day, time(rng.randint(0, 23), rng.randint(0, 59)), zone).astimezone(UTC)
        channel = rng.choice(CHANNELS)
        visitor, member = f"v{i}", f"m{i}"
        if channel is not None:
            add("landing_view", at - timedelta(hours=rng.randint(1, 30)), visitor_id=visitor, channel=channel)
        if rng.random() < 0.25 and channel is not None:
            continue  # a landing without a join
        referrer = rng.choice(joined)[0] if joined and rng.random() < 0.2 else None
        add("joined", at, member_id=member, visitor_id=visitor, channel=channel,
            group=rng.choice(("g1", "g2")), referrer_id=referrer, properties={"tier": "newbie"})
        joined.append((member, at))
        if rng.random() < 0.6:
            add("task_completed", at + timedelta(hours=rng.randint(0, 40)), member_id=member)
        for offset in rng.sample(range(1, 35), 4):
            add("message", at + timedelta(days=offset, hours=rng.randint(0, 5)), member_id=member)
        if rng.random() < 0.3:
            add("order", at + timedelta(days=rng.randint(0, 28), hours=1), member_id=member,
                amount=rng.choice((99, 199)), margin=40)
        if rng.random() < 0.3:
            add("invite_sent", at + timedelta(days=rng.randint(0, 20)), member_id=member)
        if rng.random() < 0.1:
            add("left", at + timedelta(days=rng.randint(1, 20)), member_id=member, group="g1")
    return out


def seed_community(ws: Any, folder: Path, spend_days: range) -> date:
    """`community_events` as of today in the workspace, and spend on channel `ads` for the days `spend_days`
    (offsets from today) imported from a CSV file in `folder`; returns today in the workspace's zone."""
    from qunflow.services.ingest import ingest_batch
    from qunflow.services.spend import import_spend

    today = datetime.now(ws.settings.zone).date()
    assert not ingest_batch(ws.engine, community_events(today, ws.settings.zone)).errors
    spend = folder / "spend.csv"
    spend.write_text("channel,day,amount\n" + "".join(f"ads,{today + timedelta(days=d)},{100 + d}\n"
                                                     for d in spend_days))
    import_spend(ws, spend)
    return today
