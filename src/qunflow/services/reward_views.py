"""Read-side views of the rewards engine for the API, the CLI and the console: the rewards list (the review
queue), reward programs with their prices and budget use. Nothing here changes state."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from qunflow.domain.rewards import Program, budget_scopes, rule_costs
from qunflow.errors import InvalidInput, NotFound
from qunflow.services.rewards import budget_usage, load_program, status_counts
from qunflow.store.tables import coupons, reward_budgets, reward_program_versions, reward_programs, rewards
from qunflow.workspace import Workspace

STATUSES = ("held", "review", "paid", "capped", "rejected", "reversed", "clawed_back")
MAX_LIMIT = 1000


def _reasons(value: Any) -> list[Any]:
    found = json.loads(value) if isinstance(value, str) else value
    return list(found or [])


def _with_coupon_code() -> Any:
    """Rewards with the code of the coupon that paid them (None until paid)."""
    return select(rewards, coupons.c.code.label("coupon_code")).outerjoin(coupons, coupons.c.id == rewards.c.coupon_id)


def list_rewards(ws: Workspace, *, status: str | None = None, member_id: str | None = None, limit: int = 100,
                 offset: int = 0) -> list[dict[str, Any]]:
    """Rewards, oldest first within the review queue and newest first otherwise; with the coupon code
    once paid and the fraud reasons as stored by scoring."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, got {status!r}",
                           zh=f"状态须为以下之一:{', '.join(STATUSES)};收到的是 {status!r}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}",
                           zh=f"limit 须在 1 到 {MAX_LIMIT} 之间,当前为 {limit}")
    if offset < 0:
        raise InvalidInput(f"offset must be 0 or more, got {offset}", zh=f"offset 不能小于 0,当前为 {offset}")
    w = rewards.c
    query = _with_coupon_code()
    if status is not None:
        query = query.where(w.status == status)
    if member_id:
        query = query.where(w.member_id == member_id)
    order = (w.created_at, w.id) if status in ("review", "held") else (w.created_at.desc(), w.id.desc())
    with ws.engine.connect() as conn:
        rows = conn.execute(query.order_by(*order).limit(limit).offset(offset)).all()
    return [reward_json(r) for r in rows]


def get_reward(ws: Workspace, reward_id: int) -> dict[str, Any]:
    query = _with_coupon_code().where(rewards.c.id == reward_id)
    with ws.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no reward {reward_id}", zh=f"找不到奖励 {reward_id}")
    return reward_json(row)


def reward_json(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("id", "program", "program_version", "rule", "member_id", "role", "referral_id", "coupon_name",
                "valid_days", "status", "fraud_level", "order_ref", "decided_by", "note", "cause",
                "coupon_code"):
        out[key] = getattr(row, key, None)
    out["value"] = float(row.value)
    out["fraud_reasons"] = _reasons(row.fraud_reasons)
    for key in ("release_at", "created_at", "decided_at"):
        moment = getattr(row, key)
        out[key] = moment.isoformat() + "Z" if isinstance(moment, datetime) else None
    return out


def _caps(program: Program) -> dict[str, dict[str, Any]]:
    """scope -> {"total": cap, "per_day": cap} for the program and each of its rules."""
    out: dict[str, dict[str, Any]] = {}
    today = date.min.isoformat()  # any day: only the scope names and caps matter here
    for rule in program.rules:
        for scope, period, cap in budget_scopes(program, rule, today):
            out.setdefault(scope, {})["total" if period == "total" else "per_day"] = float(cap)
    return out


def _usage(conn: Connection, scopes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    if not scopes:
        return []
    b = reward_budgets.c
    rows = conn.execute(select(reward_budgets).where(b.scope.in_(list(scopes)))
                        .order_by(b.scope, b.period.desc())).all()
    out = []
    for row in rows:
        kind = "total" if row.period == "total" else "per_day"
        cap = scopes[row.scope].get(kind)
        committed = float(row.committed)
        out.append({"scope": row.scope, "period": row.period, "committed": committed, "cap": cap,
                    "share": committed / cap if cap else None})
    return out


def program_details(ws: Workspace) -> list[dict[str, Any]]:
    """Applied reward programs: current version and history, coupons, rules with their price, budget use."""
    v = reward_program_versions.c
    out = []
    with ws.engine.connect() as conn:
        heads = conn.execute(select(reward_programs).order_by(reward_programs.c.key)).all()
        for head in heads:
            program = load_program(conn, head.key, head.version)
            history = conn.execute(select(v.version, v.file, v.applied_at).where(v.key == head.key)
                                   .order_by(v.version.desc())).all()
            costs = {c.rule: c for c in rule_costs(program)}
            rules = []
            for rule in program.rules:
                cost = costs[rule.id]
                rules.append({"id": rule.id, "invitees": rule.invitees, "qualify": rule.qualify, "task": rule.task,
                              "days": rule.days, "coupons": rule.coupons(),
                              "budget": _budget(rule.budget), "face_value": float(cost.face_value),
                              "expected_cost": float(cost.expected_cost),
                              "firings_in_budget": cost.firings_in_budget})
            granted = conn.execute(select(rewards.c.rule, rewards.c.status, func.count(), func.sum(rewards.c.value))
                                   .where(rewards.c.program == head.key)
                                   .group_by(rewards.c.rule, rewards.c.status)).all()
            by_rule: dict[str, dict[str, Any]] = {}
            for rule_id, status, count, value in granted:
                by_rule.setdefault(rule_id, {})[status] = {"count": count, "value": float(value or 0)}
            for rule_row in rules:
                rule_row["rewards"] = by_rule.get(str(rule_row["id"]), {})
            out.append({
                "key": head.key, "version": head.version, "enabled": bool(head.enabled),
                "campaign": program.campaign, "hold_days": program.hold_days, "budget": _budget(program.budget),
                "coupons": {k: {"name": c.name, "value": float(c.value), "valid_days": c.valid_days,
                                "redemption_rate": c.redemption_rate} for k, c in program.coupons.items()},
                "rules": rules,
                "budget_usage": _usage(conn, _caps(program)),
                "versions": [{"version": h.version, "file": h.file, "applied_at": h.applied_at.isoformat() + "Z"}
                             for h in history]})
    return out


def _budget(budget: Any) -> dict[str, float | None]:
    return {"total": _num(budget.total), "per_day": _num(budget.per_day)}


def _num(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def overview(ws: Workspace) -> dict[str, Any]:
    """Counts and value per status, and every budget scope's committed money."""
    with ws.engine.connect() as conn:
        counts = status_counts(conn)
        usage = budget_usage(conn)
    return {"statuses": {s: counts.get(s, {"count": 0, "value": 0.0}) for s in STATUSES}, "budgets": usage}


__all__ = ["STATUSES", "get_reward", "list_rewards", "overview", "program_details", "reward_json"]
