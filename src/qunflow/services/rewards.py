"""The rewards engine (issue 5): referrals from the event log, rewards by the applied programs.

A reward is earned (status `held`) when a rule's condition is met, and counts against its budgets at
once; a grant that would pass a cap is recorded as `capped` and pays nothing. When the hold period (the
refund window) has passed, the referrals behind it are scored for fraud: a clean reward is paid as a
coupon (`paid`); a suspicious one waits in the review queue (`review`) for a person to approve or reject.
A refund of the qualifying order reverses the reward, or claws the coupon back once paid.

Everything runs from the event log (a cursor, like the automation triggers), so joins and orders from
any path — the gate, the platform webhooks, the shop's API, an import — count the same way.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, func, select, update

from qunflow.domain.rewards import Grant, Program, ProgramSource, budget_scopes, quality_grants, threshold_grants
from qunflow.domain.templates import render_template
from qunflow.domain.welcome import pick_language
from qunflow.engine import outbox
from qunflow.errors import Conflict, InvalidInput, NotFound
from qunflow.i18n import word
from qunflow.services import coupons as ledger
from qunflow.services.experiments import exposure_event, reward_variant
from qunflow.services.gate_guard import member_coupon_eligible
from qunflow.services.versions import Change, store_version
from qunflow.store.eventlog import append_events
from qunflow.store.plain import insert_if_new, insert_ignore
from qunflow.store.tables import (
    automation_state,
    events,
    identities,
    members,
    referrals,
    reward_budgets,
    reward_program_versions,
    reward_programs,
    rewards,
)
from qunflow.workspace import Workspace

CURSOR = "rewards_cursor"
UNPAID = ("held", "review")  # earned, budget committed, no coupon yet
LEVELS = ("low", "medium", "high")


# --- programs ----------------------------------------------------------------------------------

def apply_programs(conn: Connection, sources: list[ProgramSource], now: datetime, *,
                   dry_run: bool = False) -> list[Change]:
    """Store a new version of each program whose text changed (called from `qunflow apply`)."""
    return [store_version(conn, reward_programs, reward_program_versions, kind="rewards", key=s.program.key,
                          text=s.text, digest=s.digest, file=s.file, enabled=s.program.enabled, now=now,
                          dry_run=dry_run, extra={"program": s.program.model_dump(mode="json")})
            for s in sources]


@lru_cache(maxsize=256)
def _program(text: str) -> Program:
    return Program.model_validate_json(text)


def load_program(conn: Connection, key: str, version: int) -> Program:
    stored = conn.execute(select(reward_program_versions.c.program).where(
        reward_program_versions.c.key == key, reward_program_versions.c.version == version)).scalar()
    if stored is None:
        raise NotFound(f"reward program {key} version {version} is not stored",
                       zh=f"没有保存奖励方案 {key} 的第 {version} 版")
    return _program(stored if isinstance(stored, str) else json.dumps(stored))


def active_programs(conn: Connection) -> list[tuple[int, Program]]:
    rows = conn.execute(select(reward_programs.c.key, reward_programs.c.version)
                        .where(reward_programs.c.enabled).order_by(reward_programs.c.key)).all()
    return [(r.version, load_program(conn, r.key, r.version)) for r in rows]


# --- budgets -----------------------------------------------------------------------------------

def _local_day(ws: Workspace, moment: datetime) -> str:
    from datetime import UTC

    return moment.replace(tzinfo=UTC).astimezone(ws.settings.zone).date().isoformat()


def commit_budget(conn: Connection, scopes: list[tuple[str, str, Decimal]], value: Decimal) -> str | None:
    """Count `value` against every cap, all or none; the cap that refused it, or None when it fits.

    Each step is one conditional UPDATE (`committed + value <= cap`): the row lock (PostgreSQL) or the
    single writer (SQLite) makes concurrent grants queue, so no cap is ever passed.
    """
    done: list[tuple[str, str]] = []
    for scope, period, cap in scopes:
        insert_ignore(conn, reward_budgets, [{"scope": scope, "period": period, "committed": Decimal(0)}])
        b = reward_budgets.c
        fits = conn.execute(update(reward_budgets).where(b.scope == scope, b.period == period,
                                                         b.committed + value <= cap)
                            .values(committed=b.committed + value)).rowcount
        if fits != 1:
            _release(conn, done, value)
            return f"{scope} {period} (cap {cap:g})"
        done.append((scope, period))
    return None


def _release(conn: Connection, scopes: list[tuple[str, str]], value: Decimal) -> None:
    b = reward_budgets.c
    for scope, period in scopes:
        conn.execute(update(reward_budgets).where(b.scope == scope, b.period == period)
                     .values(committed=b.committed - value))


def _release_reward_budget(ws: Workspace, conn: Connection, reward: Any) -> None:
    """Give back what an unpaid reward committed (same scopes and day as when it was earned)."""
    program = load_program(conn, reward.program, reward.program_version)
    scopes = budget_scopes(program, program.rule(reward.rule), _local_day(ws, reward.created_at))
    _release(conn, [(s, p) for s, p, _ in scopes], Decimal(reward.value))


# --- from events to referrals and grants --------------------------------------------------------

def _props(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value) if value else {}
    return value if isinstance(value, dict) else {}


def _cursor(conn: Connection) -> int:
    value = conn.execute(select(automation_state.c.value).where(automation_state.c.name == CURSOR)).scalar()
    return int(value or 0)


def _set_cursor(conn: Connection, seq: int) -> None:
    insert_ignore(conn, automation_state, [{"name": CURSOR, "value": "0"}])
    conn.execute(update(automation_state).where(automation_state.c.name == CURSOR).values(value=str(seq)))


def process_events(ws: Workspace, *, limit: int = 5000) -> int:
    """Read the events since the cursor: joins make referrals, invitees' actions qualify them, refunds
    reverse. Returns how many events were read."""
    settings = ws.settings
    conversion, engagement = set(settings.conversion_types), set(settings.engagement_types)
    kinds = {"joined", "task_completed", "refund"} | conversion | engagement
    with ws.engine.begin() as conn:
        cursor = _cursor(conn)
        last = conn.execute(select(func.max(events.c.seq))).scalar() or 0
        if last <= cursor:
            return 0
        rows = conn.execute(select(events.c.seq, events.c.event_id, events.c.type, events.c.ts, events.c.member_id,
                                   events.c.referrer_id, events.c.campaign, events.c.channel, events.c.properties)
                            .where(events.c.seq > cursor, events.c.seq <= last, events.c.member_id.is_not(None),
                                   events.c.type.in_(kinds))
                            .order_by(events.c.seq).limit(limit)).all()
        programs = active_programs(conn)
        invitees = {r.invitee_id: dict(r._mapping) for r in conn.execute(select(referrals).where(
            referrals.c.invitee_id.in_({r.member_id for r in rows})))}
        for row in rows:
            if row.type == "joined":
                if row.referrer_id and row.member_id not in invitees:
                    invitees[row.member_id] = _on_join(ws, conn, programs, row)
            elif row.type == "refund":
                props = _props(row.properties)
                order = props.get("order_id") or props.get("order_event_id")
                if order:
                    reverse_order(ws, conn, str(order), reason=f"refund {row.event_id}", actor="engine")
            elif row.member_id in invitees and programs:
                _on_action(ws, conn, programs, row, invitees[row.member_id], row.type in conversion,
                           row.type in engagement)
        _set_cursor(conn, rows[-1].seq if len(rows) == limit else last)
    return len(rows)


def _in_campaign(program: Program, campaign: str | None) -> bool:
    return program.campaign is None or program.campaign == campaign


def _on_join(ws: Workspace, conn: Connection, programs: list[tuple[int, Program]], row: Any) -> dict[str, Any]:
    """A first join through a referral: one referral row, then the inviter's threshold rules."""
    insert_ignore(conn, referrals, [{"inviter_id": row.referrer_id, "invitee_id": row.member_id,
                                     "campaign": row.campaign, "channel": row.channel, "joined_at": row.ts}])
    for version, program in programs:
        if not _in_campaign(program, row.campaign):
            continue
        query = select(referrals.c.id, referrals.c.invitee_id).where(referrals.c.inviter_id == row.referrer_id)
        if program.campaign is not None:
            query = query.where(referrals.c.campaign == program.campaign)
        counted = [(r.id, r.invitee_id) for r in conn.execute(query.order_by(referrals.c.joined_at, referrals.c.id))]
        for grant in threshold_grants(program, row.referrer_id, counted):
            _grant(ws, conn, program, version, grant, row.ts)
    return dict(conn.execute(select(referrals).where(referrals.c.invitee_id == row.member_id)).one()._mapping)


def _on_action(ws: Workspace, conn: Connection, programs: list[tuple[int, Program]], row: Any,
               referral: dict[str, Any], is_conversion: bool, is_engagement: bool) -> None:
    """An invitee did something: the quality rules it satisfies grant their rewards."""
    if row.ts < referral["joined_at"]:
        return  # before they joined: an order before joining qualifies nothing
    props = _props(row.properties)
    first_order = is_conversion and referral["qualified_at"] is None
    if first_order:
        referral["qualified_at"] = row.ts
        conn.execute(update(referrals).where(referrals.c.id == referral["id"]).values(qualified_at=row.ts))
    for version, program in programs:
        if not _in_campaign(program, referral["campaign"]):
            continue
        for rule in program.rules:
            grants = quality_grants(program, rule, referral["id"], referral["inviter_id"], referral["invitee_id"])
            if rule.qualify == "first_order" and first_order:
                order_ref: str | None = str(props.get("order_id") or row.event_id)
            elif _qualifies(ws, conn, rule, row, props, grants, referral, is_engagement):
                order_ref = None
            else:
                continue
            for grant in grants:
                _grant(ws, conn, program, version, grant, row.ts, order_ref=order_ref)


def _qualifies(ws: Workspace, conn: Connection, rule: Any, row: Any, props: dict[str, Any], grants: list[Grant],
               referral: dict[str, Any], is_engagement: bool) -> bool:
    """Whether this event completes a task_done or active_days rule (first_order is handled apart)."""
    if rule.qualify == "task_done":
        return row.type == "task_completed" and rule.task in (None, props.get("task"))
    if rule.qualify == "active_days" and is_engagement and not _granted(conn, grants):
        return _active_days(ws, conn, row.member_id, referral["joined_at"]) >= rule.days
    return False


def _granted(conn: Connection, grants: list[Grant]) -> bool:
    return bool(grants) and conn.execute(select(func.count()).select_from(rewards).where(
        rewards.c.cause.in_([g.cause for g in grants]))).scalar_one() == len(grants)


def _active_days(ws: Workspace, conn: Connection, member_id: str, since: datetime) -> int:
    stamps = conn.execute(select(events.c.ts).where(events.c.member_id == member_id, events.c.ts >= since,
                                                    events.c.type.in_(ws.settings.engagement_types))).scalars()
    return len({_local_day(ws, ts) for ts in stamps})


def _grant(ws: Workspace, conn: Connection, program: Program, version: int, grant: Grant, at: datetime, *,
           order_ref: str | None = None) -> None:
    spec = program.coupons[grant.coupon]
    now = ws.clock()
    value = spec.value
    tested = reward_variant(ws, conn, program.key, grant.rule, grant.role, grant.member_id)
    if tested is not None:  # a `kind: experiment` varies this rule's face value for this role
        chosen = tested[0].variant(tested[1])
        by_role: dict[str, Decimal] = {str(k): v for k, v in (chosen.reward or {}).items()} if chosen else {}
        value = by_role.get(grant.role, value)  # the control (no `reward`) keeps the rule's coupon
    reward_id = insert_if_new(conn, rewards, {
        "cause": grant.cause, "program": program.key, "program_version": version, "rule": grant.rule,
        "member_id": grant.member_id, "role": grant.role, "referral_id": grant.referral_id,
        "coupon_name": spec.name, "value": value, "valid_days": spec.valid_days, "status": "held",
        "release_at": max(at, now) + timedelta(days=program.hold_days), "order_ref": order_ref,
        "created_at": now})
    if not reward_id:
        return  # earned before: never twice for the same cause
    if tested is not None and tested[0].shipped is None:  # the reward decision: the member's exposure (once)
        append_events(conn, [exposure_event(tested[0], tested[1], grant.member_id, now)])
    if grant.role == "invitee" and not member_coupon_eligible(conn, grant.member_id):
        conn.execute(update(rewards).where(rewards.c.cause == grant.cause)
                     .values(status="capped", note="the gate pass was over the new-member coupon cap (device or IP)",
                             decided_at=now, decided_by="gate"))
        return
    refused = commit_budget(conn, budget_scopes(program, program.rule(grant.rule), _local_day(ws, now)), value)
    if refused:
        conn.execute(update(rewards).where(rewards.c.cause == grant.cause)
                     .values(status="capped", note=f"budget reached: {refused}", decided_at=now,
                             decided_by="budget"))


# --- release, review, reversal -----------------------------------------------------------------

def _reward_referrals(conn: Connection, reward: Any) -> list[int]:
    """The referrals a reward rests on: a threshold's inviter reward rests on all N invitees."""
    if reward.referral_id is None:
        return []
    program = load_program(conn, reward.program, reward.program_version)
    rule = program.rule(reward.rule)
    if rule.invitees is None or reward.role != "inviter":
        return [reward.referral_id]
    query = select(referrals.c.id).where(referrals.c.inviter_id == reward.member_id)
    if program.campaign is not None:
        query = query.where(referrals.c.campaign == program.campaign)
    ids = list(conn.execute(query.order_by(referrals.c.joined_at, referrals.c.id)).scalars())
    return ids[: ids.index(reward.referral_id) + 1] if reward.referral_id in ids else [reward.referral_id]


def _worst(conn: Connection, referral_ids: list[int]) -> tuple[str, list[Any]]:
    """The highest fraud level among these referrals, with every reason behind it (as stored by scoring)."""
    level, reasons = "low", list[Any]()
    for row in conn.execute(select(referrals.c.id, referrals.c.fraud_level, referrals.c.fraud_reasons)
                            .where(referrals.c.id.in_(referral_ids))):
        row_level = row.fraud_level or "low"
        if LEVELS.index(row_level) > LEVELS.index(level):
            level = row_level
        found = row.fraud_reasons if not isinstance(row.fraud_reasons, str) else json.loads(row.fraud_reasons)
        reasons.extend({"referral_id": row.id, **r} if isinstance(r, dict) else r for r in (found or []))
    return level, reasons


def release_due(ws: Workspace, *, limit: int = 500) -> int:
    """Held rewards past their hold period: score their referrals, pay the clean ones, queue the rest for
    review. Returns how many were decided."""
    from qunflow.services.fraud import rescore, rules_from_settings

    now = ws.clock()
    with ws.engine.begin() as conn:
        query = (select(rewards).where(rewards.c.status == "held", rewards.c.release_at <= now)
                 .order_by(rewards.c.release_at, rewards.c.id).limit(limit))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        due = conn.execute(query).all()
        basis = {r.id: _reward_referrals(conn, r) for r in due}
        rescore(conn, sorted({i for ids in basis.values() for i in ids}), now, rules_from_settings(ws.settings))
        for reward in due:
            level, reasons = _worst(conn, basis[reward.id])
            if level == "low":
                _pay(ws, conn, reward, now, "engine")
            else:
                conn.execute(update(rewards).where(rewards.c.id == reward.id, rewards.c.status == "held")
                             .values(status="review", fraud_level=level, fraud_reasons=reasons))
    return len(due)


def _pay(ws: Workspace, conn: Connection, reward: Any, now: datetime, actor: str) -> None:
    coupon, _ = ledger.issue(conn, member_id=reward.member_id, name=reward.coupon_name, value=Decimal(reward.value),
                             valid_days=reward.valid_days, cause=reward.cause, now=now, actor=actor,
                             reward_id=reward.id)
    conn.execute(update(rewards).where(rewards.c.id == reward.id)
                 .values(status="paid", coupon_id=coupon.id, decided_at=now, decided_by=actor))
    _queue_coupon_dm(ws, conn, reward, coupon)


COUPON_DM = {"zh": "你获得了一张优惠券「{{ name }}」¥{{ value }}，券码 {{ code }}，{{ days }} 天内有效。",
             "en": "You earned a coupon \"{{ name }}\" worth ¥{{ value }}: code {{ code }}, valid for {{ days }} days."}


def _queue_coupon_dm(ws: Workspace, conn: Connection, reward: Any, coupon: Any) -> None:
    """Tell the member about the coupon, through the outbox, in the transaction that paid it (sent once)."""
    identity = conn.execute(select(identities.c.platform, identities.c.external_user_id).where(
        identities.c.member_id == reward.member_id, identities.c.unreachable_at.is_(None)).limit(1)).first()
    if identity is None:
        return
    locale = conn.execute(select(members.c.locale).where(members.c.id == reward.member_id)).scalar()
    language = pick_language(locale or "zh")
    text = render_template(COUPON_DM, {"name": reward.coupon_name, "value": f"{Decimal(reward.value):g}",
                                       "code": coupon.code, "days": reward.valid_days}, language)
    outbox.record(ws, conn, outbox.Message(key=f"coupon_dm:{coupon.code}", kind="coupon_dm",
                                           platform=identity.platform, target=identity.external_user_id,
                                           text=text, private=True, member_id=reward.member_id))


def _locked_reward(conn: Connection, reward_id: int) -> Any:
    query = select(rewards).where(rewards.c.id == reward_id)
    row = conn.execute(query.with_for_update() if conn.dialect.name == "postgresql" else query).first()
    if row is None:
        raise NotFound(f"no reward {reward_id}", zh=f"找不到奖励 {reward_id}")
    return row


def decide(ws: Workspace, reward_id: int, *, approve: bool, by: str, note: str | None = None) -> str:
    """A person's decision on a reward in review (or still held): approve pays it now, reject drops it."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        reward = _locked_reward(conn, reward_id)
        if reward.status not in UNPAID:
            raise Conflict(f"reward {reward_id} is {reward.status}; only held or review rewards can be decided",
                           zh=f"奖励 {reward_id} 的状态为{word('reward', reward.status, 'zh')}:"
                              "只有冻结期或待审核的奖励可以审批")
        if approve:
            _pay(ws, conn, reward, now, by)
        else:
            _release_reward_budget(ws, conn, reward)
            conn.execute(update(rewards).where(rewards.c.id == reward_id)
                         .values(status="rejected", decided_at=now, decided_by=by[:64], note=note))
        if note:
            conn.execute(update(rewards).where(rewards.c.id == reward_id).values(note=note))
    return "paid" if approve else "rejected"


def _undo(ws: Workspace, conn: Connection, reward: Any, *, reason: str, actor: str) -> str:
    """Take back one reward: unpaid ones are reversed (budget given back); paid ones are clawed back —
    the coupon reversed while still open, or a clawback entry once redeemed."""
    now = ws.clock()
    if reward.status in UNPAID:
        _release_reward_budget(ws, conn, reward)
        status = "reversed"
    elif reward.status == "paid":
        code = conn.execute(select(ledger.coupons.c.code).where(ledger.coupons.c.id == reward.coupon_id)).scalar_one()
        current = ledger.get(conn, code)
        entry = "clawback" if current.status == "redeemed" else "reverse"
        if current.status in (*ledger.OPEN, "redeemed"):
            ledger.change(conn, code, entry, now=now, actor=actor, reason=reason)
        status = "clawed_back"
    else:
        return str(reward.status)
    conn.execute(update(rewards).where(rewards.c.id == reward.id)
                 .values(status=status, decided_at=now, decided_by=actor[:64], note=reason[:500]))
    return status


def reverse_order(ws: Workspace, conn: Connection, order_ref: str, *, reason: str, actor: str) -> int:
    """A refunded order takes back every reward it earned; returns how many."""
    found = conn.execute(select(rewards).where(rewards.c.order_ref == order_ref,
                                               rewards.c.status.in_((*UNPAID, "paid")))).all()
    for reward in found:
        _undo(ws, conn, reward, reason=reason, actor=actor)
    return len(found)


def clawback(ws: Workspace, reward_id: int, *, by: str, reason: str) -> str:
    """A person takes a reward back (e.g. fraud found after payment)."""
    if not reason.strip():
        raise InvalidInput("say why the reward is taken back (reason)", zh="请填写收回该奖励的原因")
    with ws.engine.begin() as conn:
        reward = _locked_reward(conn, reward_id)
        if reward.status not in (*UNPAID, "paid"):
            raise Conflict(f"reward {reward_id} is {reward.status}: nothing to take back",
                           zh=f"奖励 {reward_id} 的状态为{word('reward', reward.status, 'zh')}:没有可收回的内容")
        return _undo(ws, conn, reward, reason=reason, actor=by)


def clawback_fraud(ws: Workspace, *, days: int = 30, limit: int = 2000) -> int:
    """Re-score the referrals behind rewards paid in the last `days` and claw back those now scored high
    (a ring or a device farm often shows only after more invitees arrive)."""
    from qunflow.services.fraud import rescore, rules_from_settings

    now = ws.clock()
    done = 0
    with ws.engine.begin() as conn:
        paid = conn.execute(select(rewards).where(rewards.c.status == "paid",
                                                  rewards.c.decided_at >= now - timedelta(days=days))
                            .limit(limit)).all()
        basis = {r.id: _reward_referrals(conn, r) for r in paid}
        rescore(conn, sorted({i for ids in basis.values() for i in ids}), now, rules_from_settings(ws.settings))
        for reward in paid:
            level, reasons = _worst(conn, basis[reward.id])
            if level == "high":
                codes = ", ".join(sorted({str(r.get("code")) for r in reasons if isinstance(r, dict)}))
                _undo(ws, conn, reward, reason=f"fraud found after payment: {codes}", actor="engine")
                conn.execute(update(rewards).where(rewards.c.id == reward.id)
                             .values(fraud_level=level, fraud_reasons=reasons))
                done += 1
    return done


def expire_coupons(ws: Workspace) -> int:
    with ws.engine.begin() as conn:
        return ledger.expire_due(conn, ws.clock())


def rewards_tick(ws: Workspace) -> None:
    """One round of the rewards engine (the automation worker runs it with its own round)."""
    while process_events(ws) == 5000:
        pass
    while release_due(ws) == 500:
        pass
    expire_coupons(ws)


def budget_usage(conn: Connection) -> list[dict[str, Any]]:
    b = reward_budgets.c
    return [{"scope": r.scope, "period": r.period, "committed": float(r.committed)}
            for r in conn.execute(select(reward_budgets).where(b.committed != 0).order_by(b.scope, b.period))]


def status_counts(conn: Connection) -> dict[str, dict[str, Any]]:
    rows = conn.execute(select(rewards.c.status, func.count(), func.sum(rewards.c.value))
                        .group_by(rewards.c.status)).all()
    return {r[0]: {"count": r[1], "value": float(r[2] or 0)} for r in rows}


__all__ = ["active_programs", "apply_programs", "budget_usage", "clawback", "clawback_fraud",
           "commit_budget", "decide", "load_program", "process_events", "release_due", "reverse_order",
           "rewards_tick", "status_counts"]
