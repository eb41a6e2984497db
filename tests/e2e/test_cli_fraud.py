"""`qunflow fraud check` as an operator runs it (CliRunner, a real workspace with scored referrals)."""

from __future__ import annotations

from sqlalchemy import select
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.store.tables import referrals
from qunflow.workspace import Workspace
from tests.integration.test_fraud import build_world

runner = CliRunner()


def invoke(ws: Workspace, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [*args, "--workspace", str(ws.home)], env={"COLUMNS": "240"})


def test_fraud_check_explains_levels_in_both_languages_and_stores_on_request(workspace: Workspace) -> None:
    ids = build_world(workspace)
    english = invoke(workspace, "fraud", "check", "--member", "self", "--lang", "en")
    assert english.exit_code == 0, english.output
    line = next(row for row in english.output.splitlines() if f" {ids['self']} " in row)
    assert "high" in line and "inviter's device" in line
    chinese = invoke(workspace, "fraud", "check", str(ids["h1"]), str(ids["r1"]))
    assert chinese.exit_code == 0, chinese.output
    assert "仅供参考" in chinese.output and "互相邀请形成闭环" in chinese.output
    with workspace.engine.connect() as conn:
        assert conn.execute(select(referrals.c.fraud_level).where(referrals.c.id == ids["r1"])).scalar() is None
    stored = invoke(workspace, "fraud", "check", "--store")
    assert stored.exit_code == 0 and stored.output.count(" high ") >= 6
    with workspace.engine.connect() as conn:
        levels = dict(conn.execute(select(referrals.c.invitee_id, referrals.c.fraud_level)).all())
    assert levels["r1"] == levels["f1"] == "high" and levels["h1"] == "low"


def test_fraud_check_refuses_bad_input_with_exit_2(workspace: Workspace) -> None:
    build_world(workspace)
    unknown = invoke(workspace, "fraud", "check", "9999")
    assert unknown.exit_code == 2 and "no referral 9999" in unknown.output
    nobody = invoke(workspace, "fraud", "check", "--member", "ghost")
    assert nobody.exit_code == 2 and "ghost has no referrals" in nobody.output
    wrong = invoke(workspace, "fraud", "check", "--lang", "fr")
    assert wrong.exit_code == 2 and "use zh or en" in wrong.output
