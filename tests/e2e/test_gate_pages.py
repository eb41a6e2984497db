"""Over real HTTP (issue 12): the waitlist page, the referral landing naming inviter and reward, the
operator's landing copy and group rules, the first-order field; and the gate commands of the CLI."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import select, update
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.domain.events import Event
from qunflow.services import catalog
from qunflow.services.join import submit_gate
from qunflow.services.page_texts import set_text
from qunflow.services.playbooks import apply_playbooks, shipped_files
from qunflow.services.referrals import referral_link
from qunflow.store.eventlog import append_events
from qunflow.store.tables import consents, events, groups, members, waitlist
from qunflow.workspace import Workspace
from tests.integration.test_join_flow import FORM, PHONE, setup_community

runner = CliRunner()


def test_a_full_community_puts_the_visitor_on_the_waitlist_page(workspace: Workspace, live_server) -> None:  # type: ignore[no-untyped-def]
    setup_community(workspace)
    with workspace.engine.begin() as conn:
        conn.execute(update(groups).values(member_count=groups.c.capacity))
    with httpx.Client(base_url=live_server.url, headers={"accept-language": "zh-CN", **PHONE}) as client:
        client.get("/j/xhs-note-1")
        sent = client.post("/j/xhs-note-1", data=FORM)
        assert sent.status_code == 303 and sent.headers["location"].startswith("/w/")
        page = client.get(sent.headers["location"])
        assert page.status_code == 200 and "候补名单" in page.text and "群已满员" not in page.text
        refused = client.post(sent.headers["location"], data={"contact": "13800000000"})  # box not ticked
        assert refused.status_code == 422
        saved = client.post(sent.headers["location"], data={"contact": "13800000000", "agree": "on"})
        assert saved.status_code == 200 and 'id="contact-saved"' in saved.text
        with workspace.engine.begin() as conn:  # a seat opens in core-2
            conn.execute(update(groups).where(groups.c.key == "core-2").values(member_count=0))
        invited = client.get(sent.headers["location"])
        assert 'id="invite"' in invited.text and 'data-status="invited"' in invited.text
        assert client.get("/w/forged-token").status_code == 401  # as every personal link
    with workspace.engine.connect() as conn:
        row = conn.execute(select(waitlist)).one()
        purposes = set(conn.execute(select(consents.c.purpose).where(consents.c.member_id == row.member_id)).scalars())
    assert row.status == "invited" and purposes == {"profile", "marketing", "waitlist"}


def test_referral_landing_names_the_inviter_and_the_reward(workspace: Workspace, live_server) -> None:  # type: ignore[no-untyped-def]
    setup_community(workspace)
    apply_playbooks(workspace, [p for p in shipped_files() if p.name == "s3_referral_rewards.yaml"])
    inviter = submit_gate(workspace, "xhs-note-1", "v0", {**FORM, "name": "王小明"})
    link = referral_link(workspace, inviter.member_id)
    with httpx.Client(base_url=live_server.url, headers={"accept-language": "zh-CN", **PHONE},
                      follow_redirects=True) as client:
        page = client.get(httpx.URL(link.link).path)
        plain = client.get("/j/xhs-note-1")
    assert page.status_code == 200
    invited_by = re.search(r'id="invited-by">(.*?)</p>', page.text, re.S)
    assert invited_by and "王**" in invited_by.group(1) and "小明" not in page.text  # masked: no full name
    assert "新人券 ¥10" in invited_by.group(1)  # the invitee's coupon of the S3 program
    assert 'id="invited-by"' not in plain.text


def test_operator_texts_replace_the_landing_copy_and_the_rules(workspace: Workspace, live_server) -> None:  # type: ignore[no-untyped-def]
    setup_community(workspace)
    set_text(workspace, "landing_title", "zh", "加入小红书读者群")
    set_text(workspace, "landing_intro", "en", "Workspace intro")
    set_text(workspace, "landing_intro", "en", "Only for note readers", entry="xhs-note-1")
    set_text(workspace, "rules", "zh", "1. 友善交流\n2. 不发广告")
    with httpx.Client(base_url=live_server.url, headers=PHONE) as client:
        zh = client.get("/j/xhs-note-1", headers={"accept-language": "zh-CN"})
        en = client.get("/j/xhs-note-1", headers={"accept-language": "en"})
        rules = client.get("/rules?e=xhs-note-1", headers={"accept-language": "zh-CN"})
        rules_en = client.get("/rules", headers={"accept-language": "en"})
    assert "<h1>加入小红书读者群</h1>" in zh.text
    assert "Only for note readers" in en.text and "Workspace intro" not in en.text  # the entry point's wins
    assert "2. 不发广告" in rules.text and "Be kind" in rules_en.text  # en falls back to the built-in text


def test_first_order_gate_over_http(workspace: Workspace, live_server) -> None:  # type: ignore[no-untyped-def]
    setup_community(workspace)
    (workspace.home / "buyers.yaml").write_text(
        "kind: gate\nkey: buyers\nfields:\n  - {key: name, label: {zh: 称呼, en: Name}}\n"
        "routes:\n  - {tier: core, buyer: true}\nfirst_order: {mode: require, label: {zh: 订单号, en: Order no.}}\n",
        encoding="utf-8")
    assert runner.invoke(app, ["gate", "apply", str(workspace.home / "buyers.yaml"),
                               "--workspace", str(workspace.home)]).exit_code == 0
    catalog.add_entry_point(workspace, "shop-1", "xhs", gate="buyers")
    with workspace.engine.begin() as conn:  # the shop's order, as its webhook records it
        append_events(conn, [Event("o-1001", "order", datetime.now(UTC), member_id="shop-customer-1")])
    with httpx.Client(base_url=live_server.url, headers={"accept-language": "en", **PHONE}) as client:
        page = client.get("/j/shop-1")
        assert "Order no." in page.text
        missing = client.post("/j/shop-1", data={"name": "Li", "consent": "on", "order_ref": "o-404"})
        assert missing.status_code == 422 and "no order with this number" in missing.text
        none = client.post("/j/shop-1", data={"name": "Li", "consent": "on"})
        assert none.status_code == 422
        with workspace.engine.connect() as conn:
            assert conn.execute(select(members).where(members.c.visitor_id.is_not(None))).first() is None
    with httpx.Client(base_url=live_server.url, headers={"accept-language": "en", **PHONE}) as client:
        client.get("/j/shop-1")  # another phone: the guard's per-browser limit asks a third post for a challenge
        ticket = client.post("/j/shop-1", data={"name": "Li", "consent": "on", "order_ref": "o-1001"})
        assert ticket.status_code == 200 and 'id="invite"' in ticket.text
    with httpx.Client(base_url=live_server.url, headers={"accept-language": "zh", **PHONE}) as client:
        client.get("/j/shop-1")  # a third phone, in Chinese: what to fix is said in its language
        zh = client.post("/j/shop-1", data={"name": "Li", "order_ref": "o-404"})
        assert zh.status_code == 422 and "查不到这个订单号" in zh.text and "请先同意隐私说明" in zh.text
        assert "no order with this number" not in zh.text and "privacy notice" not in zh.text
    with workspace.engine.connect() as conn:
        passed = conn.execute(select(events.c.properties).where(events.c.type == "gate_submitted",
                                                                 events.c.entry_point == "shop-1")).scalar_one()
        tier = conn.execute(select(members.c.tier).where(members.c.visitor_id.is_not(None))).scalar_one()
    assert (passed["first_order"], passed["route"], tier) == ("o-1001", "routes[0]", "core")


def test_gate_commands(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws)]).exit_code == 0

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, [*args, "--workspace", str(ws)])

    assert run("channel", "add", "xhs", "--kind", "content").exit_code == 0
    assert run("group", "add", "newbie-1", "--tier", "newbie").exit_code == 0
    added = run("entry", "add", "note-7", "--channel", "xhs", "--gate", "seed")
    assert added.exit_code == 0 and "core, broadcast" in added.output and "interest" in added.output  # warned
    listed = run("gate", "list")
    assert "seed" in listed.stdout and "1" in listed.stdout
    shown = run("gate", "show", "seed")
    assert shown.exit_code == 0 and "kind: gate" in shown.stdout and "note-7" in shown.stdout
    edited = tmp_path / "seed.yaml"
    edited.write_text(shown.stdout.split("# versions")[0].replace("随便看看", "随便逛逛"), encoding="utf-8")
    diff = run("gate", "diff", "seed", str(edited))
    assert "-" in diff.stdout and "+" in diff.stdout and "随便逛逛" in diff.stdout
    applied = run("gate", "apply", str(edited))
    assert applied.exit_code == 0 and "changed, version 2" in applied.stdout
    assert "v2" in run("gate", "show", "seed").stdout
    assert "随便看看" in run("gate", "show", "seed", "--version", "1").stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: gate\nkey: bad\nroutes:\n  - {tier: vip}\n", encoding="utf-8")
    refused = run("gate", "apply", str(bad))
    assert refused.exit_code == 2 and "bad.yaml:4" in refused.output
    assert "bad" not in run("gate", "list").stdout
    assert run("gate", "show", "nope").exit_code == 2
    assert run("gate", "diff", "seed", str(tmp_path / "missing.yaml")).exit_code == 2
    assert run("text", "set", "rules", "--lang", "fr", "--body", "x").exit_code == 2
    assert run("text", "set", "rules", "--lang", "zh", "--body", "友善", "--entry", "nope").exit_code == 2
    assert run("text", "set", "rules", "--lang", "zh", "--body", "友善").exit_code == 0
    assert "友善" in run("text", "list").stdout
    assert run("waitlist", "list").exit_code == 0 and "0 invited" in run("waitlist", "offer").stdout
