"""The incentives API over real HTTP: coupons for the shop, the review queue, the leaderboard, programs.
Every refused request (4xx) must leave the coupons, the ledger and the rewards exactly as they were."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from qunflow.services import coupons as ledger
from qunflow.store.tables import coupon_ledger, coupons, reward_budgets, rewards
from qunflow.workspace import Workspace
from tests.conftest import LiveServer
from tests.integration.test_referral_stats import Clock, build_community


@pytest.fixture
def api(workspace: Workspace, tmp_path: Path, live_server: LiveServer,
        api_token: str) -> Iterator[tuple[Workspace, Clock, httpx.Client]]:
    clock = build_community(workspace, tmp_path)
    with httpx.Client(base_url=f"{live_server.url}/api/v1", headers={"Authorization": f"Bearer {api_token}"},
                      timeout=15) as client:
        yield workspace, clock, client


def snapshot(ws: Workspace) -> tuple[Any, ...]:
    with ws.engine.connect() as conn:
        return tuple(tuple(map(tuple, conn.execute(select(t)).all()))
                     for t in (coupons, coupon_ledger, rewards, reward_budgets))


def refused(ws: Workspace, response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    for word in words:
        assert word in message, message


def test_coupons_issue_show_send_redeem_reverse(api: tuple[Workspace, Clock, httpx.Client]) -> None:
    ws, clock, client = api
    body = {"member_id": "m1", "name": "售后补偿券", "value": 15.5, "valid_days": 10, "cause": "complaint-77"}
    first = client.post("/coupons", json=body)
    assert first.status_code == 201, first.text
    coupon = first.json()
    assert (coupon["member_id"], coupon["name"], coupon["value"], coupon["status"], coupon["new"]) == (
        "m1", "售后补偿券", 15.5, "issued", True)
    assert len(coupon["code"]) == 12
    again = client.post("/coupons", json=body)  # the shop retried: the same coupon, nothing new
    assert again.status_code == 200 and again.json()["code"] == coupon["code"] and again.json()["new"] is False
    code = coupon["code"]

    before = snapshot(ws)
    for bad, status, words in [
            ({**body, "value": 20}, 409, ("complaint-77", code)),
            ({**body, "value": -1, "cause": "x"}, 422, ("body.value",)),
            ({**body, "value": 1.234, "cause": "x"}, 422, ("body.value",)),
            ({k: v for k, v in body.items() if k != "member_id"}, 422, ("body.member_id", "required")),
            ({**body, "valid_days": 0, "cause": "x"}, 422, ("body.valid_days",)),
            ({**body, "colour": "red", "cause": "x"}, 422, ("body.colour",))]:
        refused(ws, client.post("/coupons", json=bad), status, *words)
    refused(ws, client.get(f"/coupons/{'Z' * 12}"), 404, "no such coupon")
    refused(ws, client.get("/coupons/not-a-code!"), 400, "is not a coupon code")
    refused(ws, client.post(f"/coupons/{code}/redeem", json={"member_id": "m1"}), 422, "body.order_ref")
    refused(ws, client.post(f"/coupons/{code}/reverse", json={}), 422, "body.reason")
    refused(ws, httpx.get(f"{str(client.base_url).rstrip('/')}/coupons/{code}"), 401)
    assert snapshot(ws) == before

    shown = client.get(f"/coupons/{code.lower()[:4]}-{code.lower()[4:]}")  # typed by hand: case and dashes
    assert shown.status_code == 200 and [e["entry"] for e in shown.json()["ledger"]] == ["issue"]
    sent = client.post(f"/coupons/{code}/send")
    assert sent.status_code == 200 and sent.json()["status"] == "sent"
    refused(ws, client.post(f"/coupons/{code}/send"), 409, "the coupon is sent")
    redeemed = client.post(f"/coupons/{code}/redeem", json={"order_ref": "o-1", "member_id": "m1"})
    assert redeemed.status_code == 200
    assert (redeemed.json()["status"], redeemed.json()["order_ref"], redeemed.json()["redeemed_by"]) == (
        "redeemed", "o-1", "m1")
    retry = client.post(f"/coupons/{code}/redeem", json={"order_ref": "o-1", "member_id": "m1"})
    assert retry.status_code == 200 and retry.json() == redeemed.json()
    before = snapshot(ws)
    refused(ws, client.post(f"/coupons/{code}/redeem", json={"order_ref": "o-2", "member_id": "m1"}), 409,
            "already redeemed on another order")
    refused(ws, client.post(f"/coupons/{code}/reverse", json={"reason": "mistake"}), 409, "the coupon is redeemed")
    assert snapshot(ws) == before
    assert [(e["entry"], e["actor"]) for e in client.get(f"/coupons/{code}").json()["ledger"]] == [
        ("issue", "token:tests"), ("send", "token:tests"), ("redeem", "token:tests")]

    passed_on = client.post("/coupons", json={"member_id": "m1", "name": "券", "value": 5}).json()["code"]
    used = client.post(f"/coupons/{passed_on}/redeem", json={"order_ref": "o-9", "member_id": "m2"}).json()
    assert (used["status"], used["member_id"], used["redeemed_by"]) == ("redeemed", "m1", "m2")  # seen by fraud checks

    short = client.post("/coupons", json={"member_id": "m3", "name": "限时券", "value": 5, "valid_days": 1}).json()
    other = client.post("/coupons", json={"member_id": "m3", "name": "限时券", "value": 5}).json()
    assert short["code"] != other["code"]  # without a cause, each call is a new coupon
    reversed_ = client.post(f"/coupons/{other['code']}/reverse", json={"reason": "sent to the wrong person"})
    assert reversed_.status_code == 200 and reversed_.json()["status"] == "reversed"
    clock.now += timedelta(days=2)
    before = snapshot(ws)
    refused(ws, client.post(f"/coupons/{short['code']}/redeem", json={"order_ref": "o-3", "member_id": "m3"}), 409,
            "expired")
    assert snapshot(ws) == before
    with ws.engine.connect() as conn:
        assert ledger.ledger_problems(conn) == []


def test_review_queue_approve_reject_clawback(api: tuple[Workspace, Clock, httpx.Client]) -> None:
    ws, _clock, client = api
    queue = client.get("/rewards", params={"status": "review"})
    assert queue.status_code == 200
    data = queue.json()
    assert [(r["member_id"], r["rule"], r["value"], r["fraud_level"]) for r in data["rewards"]] == [
        ("bob", "invite_1", 20.0, "high"), ("bob", "first_order", 30.0, "high")]
    assert [r["code"] for r in data["rewards"][0]["fraud_reasons"]] == ["self_referral", "disposable"]
    assert data["statuses"]["review"] == {"count": 2, "value": 50.0}
    assert data["statuses"]["paid"] == {"count": 4, "value": 100.0}
    first, second = (r["id"] for r in data["rewards"])
    assert [r["member_id"] for r in client.get("/rewards", params={"member_id": "alice"}).json()["rewards"]] == [
        "alice", "alice"]
    paged = client.get("/rewards", params={"status": "paid", "limit": 3, "offset": 2}).json()["rewards"]
    assert len(paged) == 2

    before = snapshot(ws)
    refused(ws, client.get("/rewards", params={"status": "pending"}), 422, "query.status")
    refused(ws, client.get("/rewards", params={"limit": 0}), 422, "query.limit")
    refused(ws, client.post("/rewards/9999/approve"), 404, "no reward 9999")
    refused(ws, client.post("/rewards/abc/approve"), 422, "path.reward_id")
    refused(ws, client.post(f"/rewards/{first}/clawback", json={"reason": ""}), 422, "body.reason")
    # the actor of a decision is the caller's token, never a field of the body
    refused(ws, client.post(f"/rewards/{first}/approve", json={"by": "王芳"}), 422, "body.by")
    assert snapshot(ws) == before

    approved = client.post(f"/rewards/{first}/approve", json={"note": "same household, checked"})
    assert approved.status_code == 200, approved.text
    paid = approved.json()
    assert (paid["status"], paid["decided_by"], paid["note"]) == ("paid", "token:tests", "same household, checked")
    coupon = client.get(f"/coupons/{paid['coupon_code']}").json()
    assert (coupon["member_id"], coupon["value"], coupon["status"]) == ("bob", 20.0, "issued")
    refused(ws, client.post(f"/rewards/{first}/approve"), 409, "only held or review rewards")
    rejected = client.post(f"/rewards/{second}/reject", json={"note": "device farm"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert rejected.json()["decided_by"] == "token:tests"
    refused(ws, client.post(f"/rewards/{second}/clawback", json={"reason": "x"}), 409, "nothing to take back")
    clawed = client.post(f"/rewards/{first}/clawback", json={"reason": "ring found later"})
    assert clawed.status_code == 200 and clawed.json()["status"] == "clawed_back"
    assert client.get(f"/coupons/{paid['coupon_code']}").json()["status"] == "reversed"
    assert client.get("/rewards", params={"status": "review"}).json()["rewards"] == []
    with ws.engine.connect() as conn:
        assert ledger.ledger_problems(conn) == []


def test_leaderboard_and_programs(api: tuple[Workspace, Clock, httpx.Client]) -> None:
    ws, _clock, client = api
    board = client.get("/referrals/leaderboard").json()
    assert [(r["rank"], r["member"], r["joined"], r["qualified"]) for r in board["rows"]] == [
        (1, "carol", 3, 1), (2, "alice", 2, 1), (3, "bob", 2, 1)]
    assert board["rows"][1] == {"rank": 2, "member": "alice", "invites": 3, "joined": 2, "qualified": 1, "paid": 2,
                                "paid_value": 50.0, "review": 0, "high_risk": 0, "high_risk_qualified": 0,
                                "medium_risk": 0, "risk": None}
    assert (board["rows"][2]["member"], board["rows"][2]["high_risk"], board["rows"][2]["risk"]) == ("bob", 1, "high")
    day = client.get("/referrals/leaderboard", params={"by": "campaign", "from": "2026-03-02", "to": "2026-03-02"})
    assert [(r["campaign"], r["joined"]) for r in day.json()["rows"]] == [("spring", 2), ("(none)", 1)]
    # wechat's second qualified invitee is high risk and does not count toward the rank: poster leads.
    assert client.get("/referrals/leaderboard", params={"by": "channel", "limit": 1}).json()["rows"][0][
        "channel"] == "poster"
    refused(ws, client.get("/referrals/leaderboard", params={"from": "2026-13-01"}), 400, "from must be a date")
    refused(ws, client.get("/referrals/leaderboard", params={"from": "2026-03-05", "to": "2026-03-01"}), 400,
            "is after to")
    refused(ws, client.get("/referrals/leaderboard", params={"by": "group"}), 422, "query.by")
    refused(ws, client.get("/referrals/leaderboard", params={"limit": 0}), 422, "query.limit")

    [program] = client.get("/reward-programs").json()["programs"]
    assert (program["key"], program["version"], program["enabled"], program["hold_days"]) == ("spring", 1, True, 7)
    rules = {r["id"]: r for r in program["rules"]}
    assert (rules["invite_1"]["face_value"], rules["invite_1"]["expected_cost"]) == (20.0, 12.0)
    assert (rules["first_order"]["expected_cost"], rules["first_order"]["firings_in_budget"]) == (21.0, 10)
    assert rules["first_order"]["rewards"] == {"paid": {"count": 2, "value": 60.0},
                                               "review": {"count": 1, "value": 30.0}}
    usage = {(b["scope"], b["period"]): (b["committed"], b["cap"]) for b in program["budget_usage"]}
    assert usage == {("rule:spring/first_order", "total"): (90.0, 300.0),
                     ("rule:spring/first_order", "2026-03-02"): (60.0, 100.0),
                     ("rule:spring/first_order", "2026-03-06"): (30.0, 100.0)}
    assert program["versions"][0]["version"] == 1
