"""JSON API v1 for incentives: coupons for the shop, rewards and the review queue for operators, the
referral leaderboard and reward programs. Each route names the token scope it needs (web.auth.scope).
The actor of a decision is the token that made it."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from qunflow.domain.access import Principal
from qunflow.domain.schedule import parse_day
from qunflow.services import coupons as ledger
from qunflow.services import referral_stats, reward_views
from qunflow.services import rewards as engine
from qunflow.web.auth import scope
from qunflow.web.deps import workspace_of
from qunflow.web.openapi import API_ERRORS, Day, Offset, RowId, errors

router = APIRouter(prefix="/api/v1", tags=["incentives"], responses=API_ERRORS)
Redeem = Annotated[Principal, Depends(scope("coupons:redeem"))]
Manage = Annotated[Principal, Depends(scope("coupons:manage"))]
Decide = Annotated[Principal, Depends(scope("rewards:decide"))]
Metrics = Annotated[Principal, Depends(scope("metrics:read"))]
CHANGE = errors(404, 409)  # a change of a coupon or reward: it may not exist, or not allow the change
# Declared with its alphabet; checked by coupons.normalise_code (a 400 that says what a code is).
CouponCode = Annotated[str, Path(json_schema_extra={"pattern": r"^[A-HJ-NP-Za-hj-np-z2-9 -]{1,48}$"},
                                 description="A coupon code; case, spaces and dashes do not matter.")]
Status = Literal["held", "review", "paid", "capped", "rejected", "reversed", "clawed_back"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# A decimal text over 0 and at most 100000, with at most two decimals (the same as the number's bounds).
POSITIVE_CENTS = r"^(0\.(0[1-9]|[1-9]\d?)|[1-9]\d{0,4}(\.\d{1,2})?|100000(\.0{1,2})?)$"


class IssueBody(Strict):
    member_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=64)
    value: Decimal = Field(gt=0, le=100000, decimal_places=2, json_schema_extra={
        "anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 100000, "multipleOf": 0.01},
                  {"type": "string", "pattern": POSITIVE_CENTS}]})

    @field_validator("value", mode="before")
    @classmethod
    def _cents(cls, value: Any) -> Any:
        """A JSON number in cents (0.57 arrives as 0.5700000000000001 from float arithmetic) is that amount."""
        if isinstance(value, float) and abs(value * 100 - round(value * 100)) < 1e-6:
            return Decimal(round(value * 100)) / 100
        return value
    valid_days: int = Field(30, ge=1, le=365)
    cause: str | None = Field(None, min_length=1, max_length=180,
                              description="Your key for this coupon (e.g. the promotion and customer): the same "
                                          "cause returns the coupon issued before instead of a second one.")


class RedeemBody(Strict):
    order_ref: str = Field(min_length=1, max_length=128)
    member_id: str = Field(min_length=1, max_length=128, description="The member whose order uses the coupon.")


class ReasonBody(Strict):
    reason: str = Field(min_length=1, max_length=500)


class DecisionBody(Strict):
    note: str | None = Field(None, max_length=500)


@router.post("/coupons", summary="Issue a coupon", status_code=201,
             responses={200: {"description": "The coupon issued before for this cause (new: false)."}, **CHANGE},
             description="Issues a coupon outside the reward rules. Idempotent by `cause`: the same cause answers "
                         "200 with the coupon issued before (new: false); 409 if that coupon differs.")
async def post_coupon(request: Request, response: Response, body: IssueBody, who: Manage) -> dict[str, Any]:
    coupon, new = await run_in_threadpool(
        lambda: ledger.issue_manual(workspace_of(request), member_id=body.member_id, name=body.name,
                                    value=body.value, valid_days=body.valid_days, cause=body.cause,
                                    actor=who.actor))
    if not new:
        response.status_code = 200
    return {**coupon.as_json(), "new": new}


@router.get("/coupons/{code}", responses=errors(404), summary="A coupon and its ledger entries")
async def get_coupon(request: Request, code: CouponCode, _who: Redeem) -> dict[str, Any]:
    return await run_in_threadpool(ledger.show, workspace_of(request), code)


@router.post("/coupons/{code}/redeem", responses=CHANGE, summary="Redeem a coupon on an order",
             description="Idempotent by order_ref: the same order answers with the coupon as it is. 409 when the "
                         "coupon is expired or not open.")
async def post_redeem(request: Request, code: CouponCode, body: RedeemBody, who: Redeem) -> dict[str, Any]:
    coupon = await run_in_threadpool(lambda: ledger.redeem_for(workspace_of(request), code, order_ref=body.order_ref,
                                                               member_id=body.member_id, actor=who.actor))
    return coupon.as_json()


@router.post("/coupons/{code}/reverse", responses=CHANGE, summary="Reverse an open coupon (it can no longer be used)")
async def post_reverse(request: Request, code: CouponCode, body: ReasonBody, who: Manage) -> dict[str, Any]:
    coupon = await run_in_threadpool(lambda: ledger.change_now(workspace_of(request), code, "reverse",
                                                               actor=who.actor, reason=body.reason))
    return coupon.as_json()


@router.post("/coupons/{code}/send", responses=CHANGE, summary="Mark a coupon as sent to its owner")
async def post_send(request: Request, code: CouponCode, who: Manage) -> dict[str, Any]:
    coupon = await run_in_threadpool(lambda: ledger.change_now(workspace_of(request), code, "send",
                                                               actor=who.actor))
    return coupon.as_json()


@router.get("/rewards", summary="Rewards and the review queue",
            description="status=review lists the queue oldest first, with the fraud level and reasons. Also "
                        "counts per status and budget use.")
async def get_rewards(request: Request, _who: Decide, status: Status | None = None, member_id: str | None = None,
                      limit: int = Query(100, ge=1, le=reward_views.MAX_LIMIT),
                      offset: Offset = 0) -> dict[str, Any]:
    ws = workspace_of(request)
    rows = await run_in_threadpool(lambda: reward_views.list_rewards(ws, status=status, member_id=member_id,
                                                                     limit=limit, offset=offset))
    return {"rewards": rows, **await run_in_threadpool(reward_views.overview, ws)}


async def _decide(request: Request, reward_id: RowId, body: DecisionBody | None, who: Principal,
                  approve: bool) -> dict[str, Any]:
    body = body or DecisionBody(note=None)
    await run_in_threadpool(lambda: engine.decide(workspace_of(request), reward_id, approve=approve, by=who.actor,
                                                  note=body.note))
    return await _reward(request, reward_id)


async def _reward(request: Request, reward_id: int) -> dict[str, Any]:
    return await run_in_threadpool(reward_views.get_reward, workspace_of(request), reward_id)


@router.post("/rewards/{reward_id}/approve", responses=CHANGE, summary="Approve a reward in review: pay it now")
async def post_approve(request: Request, reward_id: RowId, who: Decide,
                       body: Annotated[DecisionBody | None, Body()] = None) -> dict[str, Any]:
    return await _decide(request, reward_id, body, who, True)


@router.post("/rewards/{reward_id}/reject", responses=CHANGE,
             summary="Reject a reward in review (its budget is given back)")
async def post_reject(request: Request, reward_id: RowId, who: Decide,
                      body: Annotated[DecisionBody | None, Body()] = None) -> dict[str, Any]:
    return await _decide(request, reward_id, body, who, False)


@router.post("/rewards/{reward_id}/clawback", responses=CHANGE, summary="Take a reward back",
             description="Unpaid: reversed; paid: its coupon reversed, or a clawback entry once redeemed.")
async def post_clawback(request: Request, reward_id: RowId, body: ReasonBody, who: Decide) -> dict[str, Any]:
    await run_in_threadpool(lambda: engine.clawback(workspace_of(request), reward_id, by=who.actor,
                                                    reason=body.reason))
    return await _reward(request, reward_id)


@router.get("/referrals/leaderboard", summary="Referral leaderboard and statistics",
            description="by member (inviter), campaign or channel; from/to are local days (YYYY-MM-DD, both "
                        "included) of the invitees' joins. Ordered by qualified invitees, then joined, "
                        "leaving out invitees the fraud checks scored high (counted in high_risk, "
                        "high_risk_qualified; risk is the row's worst level).")
async def get_leaderboard(request: Request, _who: Metrics, by: Literal["member", "campaign", "channel"] = "member",
                          from_: Annotated[Day, Query(alias="from")] = None, to: Day = None,
                          limit: int = Query(20, ge=1, le=1000)) -> dict[str, Any]:
    start, end = parse_day(from_, "from"), parse_day(to, "to")
    rows = await run_in_threadpool(lambda: referral_stats.leaderboard(workspace_of(request), by=by, start=start,
                                                                      end=end, limit=limit))
    return {"by": by, "from": start and start.isoformat(), "to": end and end.isoformat(),
            "rows": [r.as_json(by) for r in rows]}


@router.get("/reward-programs", summary="Reward programs: rules, cost estimates, budget use",
            description="Each applied program's current version and history, its coupons, each rule's face value "
                        "and expected cost per firing (face value × redemption rate), rewards per status, and "
                        "the money committed against each cap.")
async def get_programs(request: Request, _who: Metrics) -> dict[str, Any]:
    return {"programs": await run_in_threadpool(reward_views.program_details, workspace_of(request))}
