"""`qunflow coupons`, `qunflow rewards` and `qunflow referrals` as an operator runs them (CliRunner, a real
workspace with the hand-made community of tests/integration/test_referral_stats.py)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from qunflow.cli.common import cli_actor
from qunflow.cli.main import app
from qunflow.services import coupons as ledger
from qunflow.store.tables import coupon_ledger, coupons, rewards
from qunflow.workspace import Workspace
from tests.integration.test_referral_stats import build_community

runner = CliRunner()


def invoke(ws: Workspace, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [*args, "--workspace", str(ws.home)], env={"COLUMNS": "220"})


@pytest.fixture
def ws(workspace: Workspace, tmp_path: Path) -> Workspace:
    build_community(workspace, tmp_path)
    return workspace


def state(ws: Workspace) -> tuple[object, ...]:
    with ws.engine.connect() as conn:
        return tuple(tuple(map(tuple, conn.execute(select(t)).all())) for t in (coupons, coupon_ledger, rewards))


def test_coupons_issue_show_redeem_reverse(ws: Workspace) -> None:
    issued = invoke(ws, "coupons", "issue", "m1", "--name", "补偿券", "--value", "9.90", "--cause", "ticket-5")
    assert issued.exit_code == 0, issued.output
    code = issued.output.split()[0]
    assert "补偿券" in issued.output and "¥9.90" in issued.output and "issued" in issued.output
    again = invoke(ws, "coupons", "issue", "m1", "--name", "补偿券", "--value", "9.90", "--cause", "ticket-5")
    assert again.output.split()[0] == code and "already issued" in again.output
    sent = invoke(ws, "coupons", "send", code)
    assert sent.exit_code == 0 and " sent " in sent.output
    redeemed = invoke(ws, "coupons", "redeem", code.lower(), "--order", "S-1", "--member", "m1")
    assert redeemed.exit_code == 0 and "redeemed" in redeemed.output
    shown = invoke(ws, "coupons", "show", code)
    assert shown.exit_code == 0 and "redeemed on order S-1 by m1" in shown.output
    entries = [line.split("│")[2].strip() for line in shown.output.splitlines() if cli_actor() in line]
    assert entries == ["issue", "send", "redeem"]
    other = invoke(ws, "coupons", "issue", "m2", "--name", "券", "--value", "5").output.split()[0]
    reversed_ = invoke(ws, "coupons", "reverse", other, "--reason", "wrong member")
    assert reversed_.exit_code == 0 and "reversed" in reversed_.output
    with ws.engine.connect() as conn:
        assert ledger.ledger_problems(conn) == []


def test_rewards_list_decide_clawback_budget_programs(ws: Workspace) -> None:
    queue = invoke(ws, "rewards", "list", "--status", "review")
    assert queue.exit_code == 0, queue.output
    rows = [line for line in queue.output.splitlines() if " bob " in line]
    assert len(rows) == 2 and all("high" in r and "self_referral; disposable" in r for r in rows)
    assert "review: 2" in queue.output and "paid: 4" in queue.output
    ids = [int(r.split()[1]) for r in rows]
    approved = invoke(ws, "rewards", "approve", str(ids[0]), "--note", "checked")
    assert approved.exit_code == 0 and f"reward {ids[0]}: paid, coupon " in approved.output
    rejected = invoke(ws, "rewards", "reject", str(ids[1]))
    assert rejected.exit_code == 0 and f"reward {ids[1]}: rejected" in rejected.output
    clawed = invoke(ws, "rewards", "clawback", str(ids[0]), "--reason", "ring")
    assert clawed.exit_code == 0 and "clawed_back" in clawed.output
    with ws.engine.connect() as conn:
        decided = dict(conn.execute(select(rewards.c.id, rewards.c.decided_by).where(rewards.c.id.in_(ids))).all())
    # the clawback is the last decision on the first; the actor is the OS user running the command
    assert decided == {ids[0]: cli_actor(), ids[1]: cli_actor()}
    budget = invoke(ws, "rewards", "budget")
    assert budget.exit_code == 0
    lines = [line for line in budget.output.splitlines() if "rule:spring/first_order" in line]
    # bob's first-order reward was rejected: its ¥30 went back to the budget.
    assert any("total" in line and "¥60.00" in line and "¥300.00" in line and "20%" in line for line in lines)
    programs = invoke(ws, "rewards", "programs")
    assert programs.exit_code == 0 and "spring v1" in programs.output
    [order_line] = [line for line in programs.output.splitlines() if "first_order" in line and "¥" in line]
    assert "¥30.00" in order_line and "¥21.00" in order_line and " 10 " in order_line and "2 (¥60.00)" in order_line


def test_leaderboard_table_json_csv(ws: Workspace) -> None:
    table = invoke(ws, "referrals", "leaderboard")
    assert table.exit_code == 0, table.output
    names = [line.split()[3] for line in table.output.splitlines() if line.split()[3:4] in (["carol"], ["alice"],
                                                                                           ["bob"])]
    assert names == ["carol", "alice", "bob"]
    data = json.loads(invoke(ws, "referrals", "leaderboard", "--by", "campaign", "--format", "json").output)
    assert [(r["campaign"], r["joined"], r["qualified"]) for r in data["rows"]] == [("spring", 5, 2), ("(none)", 2, 1)]
    text = invoke(ws, "referrals", "leaderboard", "--by", "channel", "--from", "2026-03-02", "--to", "2026-03-02",
                  "--format", "csv").output
    assert list(csv.DictReader(io.StringIO(text))) == [
        {"rank": "1", "channel": "wechat", "invites": "3", "joined": "2", "qualified": "2", "paid": "2",
         "paid_value": "50.0", "review": "2", "high_risk": "1", "risk": "high"},
        {"rank": "2", "channel": "poster", "invites": "0", "joined": "1", "qualified": "0", "paid": "0",
         "paid_value": "0.0", "review": "0", "high_risk": "0", "risk": ""}]


def test_bad_input_is_one_line_exit_2_and_changes_nothing(ws: Workspace) -> None:
    before = state(ws)
    code = invoke(ws, "coupons", "issue", "m1", "--name", "券", "--value", "5", "--cause", "c").output.split()[0]
    before = state(ws)
    for args, message in [
            (("coupons", "issue", "m1", "--name", "券", "--value", "abc"), "--value must be a number"),
            (("coupons", "issue", "m1", "--name", "券", "--value", "0"), "--value must be above 0"),
            (("coupons", "issue", "m1", "--name", "券", "--value", "5", "--valid-days", "0"), "valid_days must be"),
            (("coupons", "issue", "m1", "--name", "券", "--value", "6", "--cause", "c"), "already issued coupon"),
            (("coupons", "show", "ZZZZZZZZZZZZ"), "no such coupon"),
            (("coupons", "send", "ZZZZZZZZZZZZ"), "no such coupon"),
            (("coupons", "show", "bad!"), "is not a coupon code"),
            (("coupons", "reverse", code, "--reason", " "), "say why"),
            (("rewards", "list", "--status", "pending"), "status must be one of"),
            (("rewards", "approve", "9999"), "no reward 9999"),
            (("rewards", "approve", "one"), "Invalid value"),
            (("rewards", "clawback", "1"), "Missing option '--reason'"),
            (("referrals", "leaderboard", "--by", "group"), "by must be one of member, campaign, channel"),
            (("referrals", "leaderboard", "--from", "03/02/2026"), "--from must be a date"),
            (("referrals", "leaderboard", "--format", "xml"), "--format must be one of table, json, csv"),
            (("referrals", "leaderboard", "--limit", "0"), "limit must be between 1 and 1000")]:
        result = invoke(ws, *args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert state(ws) == before
