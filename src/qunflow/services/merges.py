"""Merging two members who are one person (issue 13), with review: candidates, merge, reject, undo.

Candidates: two members whose gate phone hashes are equal, or an event naming one member by member_id with an
external id or phone already linked to another (services/identity.py records those).

A merge moves the folded member's events (as member and as referrer), platform identities, linked keys and
the rows of services/merge_rows.py (coupons, rewards, referrals, consents, tasks, votes, tags, levels...) to
the kept member, in one transaction, and records exactly what moved, so undo puts each back. The kept
member's acquisition attributes follow METRICS.md's "first join" rule by themselves: metrics read the
earliest `joined` event of the member, and both histories are now under one id; the members row's join
time, entry point, group and referrer are set from whichever joined first. The merge is audited and is an
event (`members_merged`, `members_unmerged`; no metric reads them).

Analytics: the analytics store holds a copy of the log, and the moved events are known by seq: after the
merge (or undo) commits, exactly those rows are replaced in the store by the state DB's rows
(analytics/restate.py), on DuckDB, chdb and a ClickHouse server alike.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from qunflow.analytics.restate import restate_events
from qunflow.analytics.shipper import ship
from qunflow.domain.events import Event
from qunflow.domain.identity import candidate_rows
from qunflow.errors import Conflict, InvalidInput, NotFound
from qunflow.services.audit import record as audit
from qunflow.services.fraud import rescore, rules_from_settings
from qunflow.services.merge_rows import (
    hold_rewards_of_dropped_referrals,
    move_rows,
    put_back,
    restore_rewards,
    restore_scores,
    self_referrals,
)
from qunflow.store.eventlog import append_events
from qunflow.store.plain import insert_ignore
from qunflow.store.tables import events, identities, join_signals, member_keys, member_merges, members
from qunflow.workspace import Workspace

MEMBER_FIELDS = ("joined_at", "entry_point_id", "group_id", "referrer_id", "tier")


def find_candidates(ws: Workspace) -> int:
    """Record candidates from shared gate phone hashes; returns how many pairs are open for review."""
    with ws.engine.begin() as conn:
        shared = conn.execute(select(join_signals.c.phone).where(join_signals.c.phone.is_not(None))
                              .group_by(join_signals.c.phone).having(func.count() > 1)).scalars().all()
        pairs: list[tuple[str, str, str]] = []
        for phone in shared:
            ids = sorted(conn.execute(select(join_signals.c.member_id)
                                      .where(join_signals.c.phone == phone)).scalars())
            pairs += [(ids[0], other, "phone") for other in ids[1:]]
        insert_ignore(conn, member_merges, candidate_rows(pairs, ws.clock()))
        return int(conn.execute(select(func.count()).select_from(member_merges)
                                .where(member_merges.c.status == "candidate")).scalar_one())


def list_merges(ws: Workspace, status: str | None = "candidate") -> list[dict[str, Any]]:
    query = select(member_merges.c.id, member_merges.c.keep_id, member_merges.c.merged_id, member_merges.c.reason,
                   member_merges.c.status, member_merges.c.found_at, member_merges.c.decided_at,
                   member_merges.c.decided_by).order_by(member_merges.c.id)
    if status:
        query = query.where(member_merges.c.status == status)
    with ws.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def _member(conn: Connection, member_id: str) -> Any:
    """The members row, or None for a member known only from the log (imported events); NotFound if neither."""
    row = conn.execute(select(members).where(members.c.id == member_id)).first()
    if row is None and conn.execute(select(events.c.seq).where(events.c.member_id == member_id).limit(1)).first() \
            is None:
        raise NotFound(f"no member {member_id!r}", zh=f"没有成员 {member_id!r}")
    return row


def _event(conn: Connection, kind: str, keep: str, merged: str, now: datetime) -> None:
    """The merge as an event of the log (naive UTC clock -> aware)."""
    append_events(conn, [Event(f"{kind}-{secrets.token_hex(8)}", kind, now.replace(tzinfo=UTC),
                               member_id=keep, properties={"merged": merged})])


def merge(ws: Workspace, keep: str, merged: str, *, actor: str) -> dict[str, Any]:
    """Fold `merged` into `keep`; returns the merge row. A candidate pair is used if there is one."""
    keep, merged = keep.strip(), merged.strip()
    if keep == merged:
        raise InvalidInput("a member cannot be merged into itself", zh="成员不能与自己合并")
    now = ws.clock()
    with ws.engine.begin() as conn:
        a, b = _member(conn, keep), _member(conn, merged)
        open_merge = conn.execute(select(member_merges.c.id).where(
            member_merges.c.status == "merged",
            (member_merges.c.merged_id == merged) | (member_merges.c.merged_id == keep))).first()
        if open_merge is not None:
            raise Conflict(f"one of them was already merged (merge #{open_merge.id}); undo that first",
                           zh=f"其中一人已被合并(合并 #{open_merge.id}),请先撤销那次合并")
        moved_events = list(conn.execute(select(events.c.seq).where(events.c.member_id == merged)).scalars())
        moved: dict[str, Any] = {
            "events": moved_events,
            "referrer_events": list(conn.execute(select(events.c.seq).where(events.c.referrer_id == merged))
                                    .scalars()),
            "identities": list(conn.execute(select(identities.c.id).where(identities.c.member_id == merged))
                               .scalars()),
            "keys": list(conn.execute(select(member_keys.c.id).where(member_keys.c.member_id == merged)).scalars()),
            "kept_before": {f: _json(getattr(a, f)) for f in MEMBER_FIELDS} if a is not None else None,
        }
        if moved["events"]:
            conn.execute(update(events).where(events.c.seq.in_(moved["events"])).values(member_id=keep))
        if moved["referrer_events"]:
            conn.execute(update(events).where(events.c.seq.in_(moved["referrer_events"])).values(referrer_id=keep))
        if moved["identities"]:
            conn.execute(update(identities).where(identities.c.id.in_(moved["identities"])).values(member_id=keep))
        if moved["keys"]:
            conn.execute(update(member_keys).where(member_keys.c.id.in_(moved["keys"])).values(member_id=keep))
        if a is not None and b is not None and b.joined_at is not None and (
                a.joined_at is None or b.joined_at < a.joined_at):  # the first join's attributes
            conn.execute(update(members).where(members.c.id == keep).values(
                **{f: getattr(b, f) for f in MEMBER_FIELDS}))
        moved.update(move_rows(conn, keep, merged))
        moved["self_referrals"] = self_referrals(conn, keep)
        if moved["self_referrals"]:  # one person inviting themself: scored now (self_referral, high)
            rescore(conn, [int(i) for i in moved["self_referrals"]], now, rules_from_settings(ws.settings))
        pair = conn.execute(select(member_merges.c.id).where(
            ((member_merges.c.keep_id == keep) & (member_merges.c.merged_id == merged))
            | ((member_merges.c.keep_id == merged) & (member_merges.c.merged_id == keep)))).first()
        values = {"keep_id": keep, "merged_id": merged, "status": "merged", "decided_at": now,
                  "decided_by": actor[:64], "moved": moved}
        if pair is None:
            conn.execute(member_merges.insert().values(reason="operator", found_at=now, **values))
        else:
            conn.execute(update(member_merges).where(member_merges.c.id == pair.id).values(**values))
        merge_id = conn.execute(select(member_merges.c.id).where(member_merges.c.keep_id == keep,
                                                                 member_merges.c.merged_id == merged)).scalar_one()
        moved["held_rewards"] = hold_rewards_of_dropped_referrals(conn, moved, merge_id)
        if moved["held_rewards"]:
            conn.execute(update(member_merges).where(member_merges.c.id == merge_id).values(moved=moved))
        _event(conn, "members_merged", keep, merged, now)
        audit(conn, actor=actor, via=actor.split(":")[0], action="member.merge", target=keep,
              detail={"merge": merge_id, "merged": merged, "events": len(moved["events"])})
    _reship(ws, moved)
    return {"id": merge_id, "keep_id": keep, "merged_id": merged, "events_moved": len(moved["events"]),
            "rows_moved": {**{name: len(ids) for name, ids in moved["rows"].items()},
                           **{name: len(r["moved"]) for name, r in moved["one_per_key"].items() if r["moved"]}},
            "rows_dropped": {name: len(r["dropped"]) for name, r in moved["one_per_key"].items() if r["dropped"]},
            "self_referrals": len(moved["self_referrals"]), "rewards_to_review": len(moved["held_rewards"])}


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def undo(ws: Workspace, merge_id: int, *, actor: str) -> dict[str, Any]:
    """Put back exactly what the merge moved."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        row = conn.execute(select(member_merges).where(member_merges.c.id == merge_id)).first()
        if row is None:
            raise NotFound(f"no merge #{merge_id}", zh=f"没有合并 #{merge_id}")
        if row.status != "merged":
            raise Conflict(f"merge #{merge_id} is {row.status}, not merged: nothing to undo",
                           zh=f"合并 #{merge_id} 的状态是 {row.status},不是已合并:没有可撤销的")
        moved, keep, merged = row.moved, row.keep_id, row.merged_id
        if moved["events"]:
            conn.execute(update(events).where(events.c.seq.in_(moved["events"])).values(member_id=merged))
        if moved["referrer_events"]:
            conn.execute(update(events).where(events.c.seq.in_(moved["referrer_events"])).values(referrer_id=merged))
        if moved["identities"]:
            conn.execute(update(identities).where(identities.c.id.in_(moved["identities"])).values(member_id=merged))
        if moved["keys"]:
            conn.execute(update(member_keys).where(member_keys.c.id.in_(moved["keys"])).values(member_id=merged))
        if moved["kept_before"] is not None:
            before = {f: (datetime.fromisoformat(v) if f == "joined_at" and v else v)
                      for f, v in moved["kept_before"].items()}
            conn.execute(update(members).where(members.c.id == keep).values(**before))
        restore_scores(conn, moved.get("self_referrals", {}))
        restore_rewards(conn, moved.get("held_rewards", {}))
        put_back(conn, keep, merged, moved)
        conn.execute(update(member_merges).where(member_merges.c.id == merge_id).values(
            status="undone", decided_at=now, decided_by=actor[:64]))
        _event(conn, "members_unmerged", keep, merged, now)
        audit(conn, actor=actor, via=actor.split(":")[0], action="member.unmerge", target=keep,
              detail={"merge": merge_id, "merged": merged})
    _reship(ws, moved)
    return {"id": merge_id, "keep_id": keep, "merged_id": merged, "status": "undone"}


def reject(ws: Workspace, merge_id: int, *, actor: str) -> None:
    with ws.engine.begin() as conn:
        status = conn.execute(select(member_merges.c.status).where(member_merges.c.id == merge_id)).scalar()
        if status is None:
            raise NotFound(f"no merge #{merge_id}", zh=f"没有合并 #{merge_id}")
        if status != "candidate":
            raise Conflict(f"merge #{merge_id} is {status}: only a candidate can be rejected",
                           zh=f"合并 #{merge_id} 的状态是 {status}:只有待审的候选才能驳回")
        conn.execute(update(member_merges).where(member_merges.c.id == merge_id).values(
            status="rejected", decided_at=ws.clock(), decided_by=actor[:64]))
        audit(conn, actor=actor, via=actor.split(":")[0], action="member.merge_reject", target=str(merge_id))


def _reship(ws: Workspace, moved: dict[str, Any]) -> None:
    """The analytics copies of the moved events, replaced by the state DB's rows; then the new events."""
    restate_events(ws, [*moved["events"], *moved["referrer_events"]])
    ship(ws)
