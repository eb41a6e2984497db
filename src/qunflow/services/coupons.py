"""The coupon ledger (issue 5): issue, send, redeem, expire, reverse, claw back.

`coupons` holds each coupon's current state; `coupon_ledger` one row per change, moving the coupon's face
value from one state to the next ("budget" -> issued -> sent -> redeemed, ...). Every change is also an
event. A change is a compare-and-set on the coupon's status, so two concurrent requests cannot both
redeem (or reverse) one coupon, and issuing is keyed by a cause the table keeps unique.

Balance: per coupon, the ledger's entries chain from "budget" to the coupon's status, each moving its
face value; `ledger_problems` checks exactly that (and the shop and tests can run it any time).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from qunflow.domain.events import Event
from qunflow.errors import Conflict, InvalidInput, NotFound
from qunflow.store.eventlog import append_events
from qunflow.store.plain import insert_if_new
from qunflow.store.tables import coupon_ledger, coupons
from qunflow.workspace import Workspace

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed by hand
CODE_LENGTH = 12  # 32^12 = 2^60 codes: not guessable at any request rate a shop allows
OPEN = ("issued", "sent")  # a coupon in these states can still be used
# entry -> (states it may start from, the state it ends in)
TRANSITIONS = {
    "send": (("issued",), "sent"),
    "redeem": (OPEN, "redeemed"),
    "expire": (OPEN, "expired"),
    "reverse": (OPEN, "reversed"),
    "clawback": (("redeemed",), "clawed_back"),
}
# Chinese of the states and entries above, for the refusals below.
ZH_STATUS = {"issued": "已发放", "sent": "已发送", "redeemed": "已核销", "expired": "已过期", "reversed": "已撤销",
             "clawed_back": "已追回"}
ZH_ENTRY = {"send": "发送", "redeem": "核销", "expire": "过期", "reverse": "撤销", "clawback": "追回"}
EVENT_TYPES = {"issue": "coupon_issued", "send": "coupon_sent", "redeem": "coupon_redeemed",
               "expire": "coupon_expired", "reverse": "coupon_reversed", "clawback": "coupon_clawed_back"}


@dataclass(frozen=True)
class Coupon:
    id: int
    code: str
    member_id: str
    name: str
    value: Decimal
    status: str
    issued_at: datetime
    expires_at: datetime
    reward_id: int | None
    order_ref: str | None
    redeemed_by: str | None

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "member_id": self.member_id, "name": self.name, "value": float(self.value),
                "status": self.status, "issued_at": self.issued_at.isoformat() + "Z",
                "expires_at": self.expires_at.isoformat() + "Z", "reward_id": self.reward_id,
                "order_ref": self.order_ref, "redeemed_by": self.redeemed_by}


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(code: str) -> str:
    """Codes are read aloud and typed: case, spaces and dashes do not matter."""
    cleaned = code.upper().replace("-", "").replace(" ", "")
    if not cleaned or len(cleaned) > 32 or any(c not in ALPHABET for c in cleaned):
        raise InvalidInput(f"{code[:40]!r} is not a coupon code", zh=f"{code[:40]!r} 不是有效的券码")
    return cleaned


def _row(conn: Connection, code: str, *, lock: bool = False) -> Any:
    query = select(coupons).where(coupons.c.code == normalise_code(code))
    row = conn.execute(query.with_for_update() if lock and conn.dialect.name == "postgresql" else query).first()
    if row is None:
        raise NotFound("no such coupon", zh="找不到该优惠券")
    return row


def _coupon(row: Any) -> Coupon:
    return Coupon(row.id, row.code, row.member_id, row.name, Decimal(row.value), row.status, row.issued_at,
                  row.expires_at, row.reward_id, row.order_ref, row.redeemed_by)


def _record(conn: Connection, row: Any, entry: str, from_state: str, to_state: str, now: datetime, actor: str,
            reason: str | None, member_id: str | None = None, properties: dict[str, Any] | None = None) -> None:
    conn.execute(insert(coupon_ledger).values(coupon_id=row.id, entry=entry, from_state=from_state,
                                              to_state=to_state, amount=row.value, at=now, actor=actor[:64],
                                              reason=reason))
    event_id = f"coupon-{row.cause}" if entry == "issue" else f"cpn-{row.id}-{entry}"
    append_events(conn, [Event(event_id=event_id, type=EVENT_TYPES[entry], ts=now.replace(tzinfo=UTC),
                               member_id=member_id or row.member_id, amount=Decimal(row.value),
                               properties={"coupon": row.name, "coupon_id": row.id, **(properties or {})})])


def issue(conn: Connection, *, member_id: str, name: str, value: Decimal, valid_days: int, cause: str,
          now: datetime, actor: str, reward_id: int | None = None,
          expires_at: datetime | None = None) -> tuple[Coupon, bool]:
    """Issue a coupon for `cause` in the caller's transaction; (coupon, new). The same cause gives the
    coupon issued before, never a second one. `expires_at` (naive UTC) overrides `valid_days` (hours-long
    coupons: an event's day-of code)."""
    if value <= 0:
        raise InvalidInput("a coupon's value must be above 0", zh="优惠券面额须大于 0")
    for _ in range(5):  # a code collision (2^-60 per pair) just draws again
        code = new_code()
        if not conn.execute(select(coupons.c.id).where(coupons.c.code == code)).first():
            break
    new = insert_if_new(conn, coupons, {
        "code": code, "cause": cause, "member_id": member_id, "name": name, "value": value, "status": "issued",
        "issued_at": now, "expires_at": expires_at or now + timedelta(days=valid_days), "reward_id": reward_id,
        "updated_at": now})
    row = conn.execute(select(coupons).where(coupons.c.cause == cause)).one()
    if new:
        _record(conn, row, "issue", "budget", "issued", now, actor, cause)
    return _coupon(row), new


def change(conn: Connection, code: str, entry: str, *, now: datetime, actor: str, reason: str | None = None,
           order_ref: str | None = None, redeemed_by: str | None = None) -> Coupon:
    """Move a coupon along one ledger entry (send, redeem, expire, reverse, clawback), or raise Conflict
    saying why it cannot. Repeating a redeem of the same order is answered with the coupon as it is."""
    starts, end = TRANSITIONS[entry]
    row = _row(conn, code, lock=True)
    if entry == "redeem":
        if row.status == "redeemed" and order_ref and row.order_ref == order_ref:
            return _coupon(row)  # the shop retried: same answer, nothing new
        if row.status in OPEN and row.expires_at <= now:
            raise Conflict(f"the coupon expired on {row.expires_at:%Y-%m-%d %H:%M} UTC",
                           zh=f"该优惠券已于 {row.expires_at:%Y-%m-%d %H:%M} UTC 过期")
    if row.status not in starts:
        raise Conflict(f"the coupon is {row.status}; {entry} needs it {' or '.join(starts)}",
                       zh=f"该优惠券{ZH_STATUS.get(row.status, row.status)},"
                          f"{ZH_ENTRY.get(entry, entry)}要求它处于{'或'.join(ZH_STATUS[s] for s in starts)}状态")
    values: dict[str, Any] = {"status": end, "updated_at": now}
    if entry == "redeem":
        values.update(order_ref=order_ref, redeemed_by=redeemed_by or row.member_id)
    done = conn.execute(update(coupons).where(coupons.c.id == row.id, coupons.c.status == row.status)
                        .values(**values)).rowcount
    if done != 1:  # another request changed it between our read and our write (SQLite has no row lock)
        raise Conflict("the coupon was changed by another request; read it again",
                       zh="该优惠券刚被另一个请求修改,请重新读取后再试")
    properties = {"order_ref": order_ref} if order_ref else {}
    member = redeemed_by or row.member_id if entry == "redeem" else row.member_id
    _record(conn, row, entry, row.status, end, now, actor, reason, member_id=member, properties=properties)
    return _coupon(conn.execute(select(coupons).where(coupons.c.id == row.id)).one())


def get(conn: Connection, code: str) -> Coupon:
    return _coupon(_row(conn, code))


def expire_due(conn: Connection, now: datetime, *, limit: int = 1000) -> int:
    """Expire the open coupons whose time is up; returns how many."""
    rows = conn.execute(select(coupons.c.code).where(coupons.c.status.in_(OPEN), coupons.c.expires_at <= now)
                        .order_by(coupons.c.expires_at).limit(limit)).scalars().all()
    done = 0
    for code in rows:
        try:
            change(conn, code, "expire", now=now, actor="engine", reason="valid_days passed")
            done += 1
        except Conflict:
            continue  # redeemed or reversed meanwhile
    return done


def member_coupons(conn: Connection, member_id: str) -> list[Coupon]:
    rows = conn.execute(select(coupons).where(coupons.c.member_id == member_id).order_by(coupons.c.id)).all()
    return [_coupon(r) for r in rows]


def ledger_problems(conn: Connection) -> list[str]:
    """Everything that keeps the ledger from balancing; [] when it balances.

    Per coupon: the first entry is an issue from "budget", each entry starts where the previous ended,
    every entry moves the coupon's face value, and the last ends in the coupon's status.
    """
    problems: list[str] = []
    entries: dict[int, list[Any]] = {}
    for entry in conn.execute(select(coupon_ledger).order_by(coupon_ledger.c.coupon_id, coupon_ledger.c.id)):
        entries.setdefault(entry.coupon_id, []).append(entry)
    for row in conn.execute(select(coupons)):
        chain = entries.pop(row.id, [])
        if not chain:
            problems.append(f"coupon {row.id}: no ledger entries")
            continue
        state = "budget"
        for entry in chain:
            if entry.from_state != state:
                problems.append(f"coupon {row.id}: entry {entry.id} starts at {entry.from_state}, not {state}")
            if Decimal(entry.amount) != Decimal(row.value):
                problems.append(f"coupon {row.id}: entry {entry.id} moves {entry.amount}, not {row.value}")
            state = entry.to_state
        if chain[0].entry != "issue":
            problems.append(f"coupon {row.id}: first entry is {chain[0].entry}, not issue")
        if state != row.status:
            problems.append(f"coupon {row.id}: the ledger ends at {state} but the coupon is {row.status}")
    problems.extend(f"ledger entries for unknown coupon {cid}" for cid in entries)
    return problems


def ledger_totals(conn: Connection) -> dict[str, Decimal]:
    """Face value per state, from the ledger alone (money in minus money out of each state)."""
    totals: dict[str, Decimal] = {}
    for state_col, sign in ((coupon_ledger.c.to_state, 1), (coupon_ledger.c.from_state, -1)):
        for state, amount in conn.execute(select(state_col, func.sum(coupon_ledger.c.amount)).group_by(state_col)):
            totals[state] = totals.get(state, Decimal(0)) + sign * Decimal(amount)
    return {state: amount for state, amount in totals.items() if amount}


# --- for the shop and operators (API, CLI): one transaction each, a person's or system's name as actor ----

MANUAL_PREFIX = "manual:"  # causes given by the shop or an operator never meet the engine's "rw:" causes


def issue_manual(ws: Workspace, *, member_id: str, name: str, value: Decimal, valid_days: int, cause: str | None,
                 actor: str) -> tuple[Coupon, bool]:
    """Issue a coupon outside the reward rules (a goodwill coupon, a shop promotion). The same cause gives
    the coupon issued before; without a cause every call issues a new one."""
    if not member_id.strip() or len(member_id) > 128:
        raise InvalidInput("member_id must be 1 to 128 characters", zh="member_id 须为 1 到 128 个字符")
    if not 1 <= valid_days <= 365:
        raise InvalidInput(f"valid_days must be between 1 and 365, got {valid_days}",
                           zh=f"valid_days 须在 1 到 365 之间,当前为 {valid_days}")
    key = MANUAL_PREFIX + (cause if cause else secrets.token_hex(12))
    with ws.engine.begin() as conn:
        coupon, new = issue(conn, member_id=member_id, name=name, value=value, valid_days=valid_days, cause=key,
                            now=ws.clock(), actor=actor)
    if not new and (coupon.member_id, coupon.name, coupon.value) != (member_id, name, value):
        raise Conflict(f"cause {cause!r} already issued coupon {coupon.code} to another member or with another "
                       "name or value",
                       zh=f"来源 {cause!r} 已向其他成员、或以不同的名称或面额发放过优惠券 {coupon.code}")
    return coupon, new


def redeem_for(ws: Workspace, code: str, *, order_ref: str, member_id: str, actor: str) -> Coupon:
    """The shop applies an open, unexpired coupon to an order of `member_id`. Repeating the same order
    answers with the coupon as it is. Codes can be passed on, so another member's order may use a
    coupon: it is recorded (`redeemed_by`) and the fraud checks look at it (an inviter's coupon on the
    invitee's order)."""
    if not order_ref.strip() or len(order_ref) > 128:
        raise InvalidInput("order_ref must be 1 to 128 characters", zh="order_ref 须为 1 到 128 个字符")
    with ws.engine.begin() as conn:
        current = get(conn, code)
        if current.status == "redeemed" and current.order_ref != order_ref:
            raise Conflict(f"the coupon was already redeemed on another order ({current.order_ref})",
                           zh=f"该优惠券已在另一笔订单({current.order_ref})上核销")
        return change(conn, code, "redeem", now=ws.clock(), actor=actor, order_ref=order_ref,
                      redeemed_by=member_id)


def change_now(ws: Workspace, code: str, entry: str, *, actor: str, reason: str | None = None) -> Coupon:
    """send or reverse a coupon in its own transaction (reverse needs a reason)."""
    if entry == "reverse" and not (reason or "").strip():
        raise InvalidInput("say why the coupon is reversed (reason)", zh="请填写撤销该优惠券的原因")
    with ws.engine.begin() as conn:
        return change(conn, code, entry, now=ws.clock(), actor=actor, reason=reason)


def show(ws: Workspace, code: str) -> dict[str, Any]:
    """A coupon with its ledger entries, oldest first."""
    with ws.engine.connect() as conn:
        coupon = get(conn, code)
        entries = conn.execute(select(coupon_ledger).where(coupon_ledger.c.coupon_id == coupon.id)
                               .order_by(coupon_ledger.c.id)).all()
    return {**coupon.as_json(), "ledger": [
        {"entry": e.entry, "from": e.from_state, "to": e.to_state, "amount": float(e.amount),
         "at": e.at.isoformat() + "Z", "actor": e.actor, "reason": e.reason} for e in entries]}
