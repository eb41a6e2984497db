"""What a member merge moves besides events, identities and keys, and how undo puts it back (issue 13).

Two kinds of tables hold rows of a member:
- `MOVED`: any number of rows per member (coupons held or redeemed, rewards, referrals as inviter, consents,
  inbox items, sends, invitees' members rows, the name index): every row of the folded member moves; the merge row keeps
  their ids.
- `ONE_PER_KEY`: at most one row per member and key (a task per task key, a vote per poll, a signup per
  meetup, a tag, a pool, the level, the referral code, the gate's signals, the referral as invitee): a row
  moves unless the kept member already has one with that key; then the kept member's row stays and the
  other is deleted, stored whole in the merge row, and inserted again on undo.

Each function runs inside the merge's (or undo's) transaction.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Date, DateTime, Table, and_, delete, select, update

from qunflow.store.tables import (
    consents,
    coupons,
    deliveries,
    inbox,
    join_signals,
    meetup_signups,
    member_levels,
    member_name_keys,
    member_tags,
    member_tasks,
    members,
    poll_votes,
    pool_members,
    referral_codes,
    referrals,
    rewards,
)

# (table, its member column): every row moves; identified by the table's `id`.
MOVED: tuple[tuple[Table, str], ...] = (
    (coupons, "member_id"), (coupons, "redeemed_by"), (rewards, "member_id"), (referrals, "inviter_id"),
    (consents, "member_id"), (inbox, "member_id"), (deliveries, "member_id"), (members, "referrer_id"),
    (member_name_keys, "member_id"),  # a search by either name finds the kept member
)
# (table, its member column, the columns that with it are unique): kept member's row wins on a clash.
ONE_PER_KEY: tuple[tuple[Table, str, tuple[str, ...]], ...] = (
    (member_tasks, "member_id", ("task_key",)), (poll_votes, "member_id", ("poll",)),
    (meetup_signups, "member_id", ("meetup_id",)), (member_tags, "member_id", ("tag",)),
    (pool_members, "member_id", ("pool",)), (member_levels, "member_id", ()), (referral_codes, "member_id", ()),
    (join_signals, "member_id", ()), (referrals, "invitee_id", ()),
)


def _name(table: Table, column: str) -> str:
    return f"{table.name}.{column}"


def _dump(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _load(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in row.items():
        kind = table.c[name].type
        if value is not None and isinstance(kind, DateTime):
            value = datetime.fromisoformat(value)
        elif value is not None and isinstance(kind, Date):
            value = date.fromisoformat(value)
        out[name] = value
    return out


def move_rows(conn: Connection, keep: str, merged: str) -> dict[str, Any]:
    """Move the folded member's rows to the kept member; returns what moved and what was dropped."""
    moved: dict[str, list[Any]] = {}
    for table, column in MOVED:
        query = select(table.c.id).where(table.c[column] == merged)
        if table is members:
            query = query.where(members.c.id != keep)  # the kept member's own row: the first join decides
        ids = list(conn.execute(query).scalars())
        if ids:
            conn.execute(update(table).where(table.c.id.in_(ids)).values({column: keep}))
            moved[_name(table, column)] = ids
    one_per_key: dict[str, dict[str, list[Any]]] = {}
    for table, column, key in ONE_PER_KEY:
        kept_keys = {tuple(r)[1:] for r in conn.execute(select(table.c[column], *[table.c[k] for k in key])
                                                        .where(table.c[column] == keep))}
        record: dict[str, list[Any]] = {"moved": [], "dropped": []}
        for row in conn.execute(select(table).where(table.c[column] == merged)).mappings().all():
            values = [row[k] for k in key]
            match = and_(table.c[column] == merged, *[table.c[k] == v for k, v in zip(key, values, strict=True)])
            if tuple(values) in kept_keys:
                conn.execute(delete(table).where(match))
                record["dropped"].append({k: _dump(v) for k, v in row.items()})
            else:
                conn.execute(update(table).where(match).values({column: keep}))
                record["moved"].append([_dump(v) for v in values])
        if record["moved"] or record["dropped"]:
            one_per_key[_name(table, column)] = record
    return {"rows": moved, "one_per_key": one_per_key}


def put_back(conn: Connection, keep: str, merged: str, moved: dict[str, Any]) -> None:
    """Undo `move_rows`: the moved rows go back to the folded member, the dropped ones are inserted again."""
    for table, column in MOVED:
        ids = moved.get("rows", {}).get(_name(table, column))
        if ids:
            conn.execute(update(table).where(table.c.id.in_(ids)).values({column: merged}))
    for table, column, key in ONE_PER_KEY:
        record = moved.get("one_per_key", {}).get(_name(table, column))
        if not record:
            continue
        for values in record["moved"]:
            loaded = _load(table, dict(zip(key, values, strict=True)))
            conn.execute(update(table).where(table.c[column] == keep, *[table.c[k] == v for k, v in loaded.items()])
                         .values({column: merged}))
        if record["dropped"]:
            conn.execute(table.insert(), [_load(table, row) for row in record["dropped"]])


def hold_rewards_of_dropped_referrals(conn: Connection, moved: dict[str, Any], merge_id: int) -> dict[str, Any]:
    """Both members had been invited (by two inviters): the kept member's referral stays, the other is dropped.
    Rewards still held on the dropped one would be paid with no referral left to score: they go to review
    instead (an operator decides). Returns reward id -> [status, note] before, for undo."""
    dropped = [row["id"] for row in moved["one_per_key"].get("referrals.invitee_id", {}).get("dropped", [])]
    if not dropped:
        return {}
    held = conn.execute(select(rewards.c.id, rewards.c.status, rewards.c.note)
                        .where(rewards.c.referral_id.in_(dropped), rewards.c.status == "held")).all()
    for reward in held:
        conn.execute(update(rewards).where(rewards.c.id == reward.id).values(
            status="review", note=f"merge #{merge_id}: the invitee is one person with a member invited by someone "
                                  "else; this referral was set aside"))
    return {str(r.id): [r.status, r.note] for r in held}


def restore_rewards(conn: Connection, before: dict[str, list[Any]]) -> None:
    for rid, (status, note) in before.items():
        conn.execute(update(rewards).where(rewards.c.id == int(rid)).values(status=status, note=note))


def self_referrals(conn: Connection, keep: str) -> dict[str, list[Any]]:
    """Referrals whose inviter and invitee are now the one kept member, with their stored score before the
    merge (id -> [level, reasons, scored_at]) so undo can restore it."""
    rows = conn.execute(select(referrals.c.id, referrals.c.fraud_level, referrals.c.fraud_reasons,
                               referrals.c.scored_at)
                        .where(referrals.c.inviter_id == keep, referrals.c.invitee_id == keep))
    return {str(r.id): [r.fraud_level, r.fraud_reasons, _dump(r.scored_at)] for r in rows}


def restore_scores(conn: Connection, scores: dict[str, list[Any]]) -> None:
    for rid, (level, reasons, scored_at) in scores.items():
        conn.execute(update(referrals).where(referrals.c.id == int(rid)).values(
            fraud_level=level, fraud_reasons=reasons,
            scored_at=datetime.fromisoformat(scored_at) if scored_at else None))
