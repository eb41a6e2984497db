"""Refusals in the person's language (issue 12), over real HTTP on loopback and through a real `qunflow`
process: a console set-up form refusal and the console's error page follow the page language, the JSON API
gives `error` (English) and `error_zh`, and the CLI follows QUNFLOW_LANG or the locale."""

from __future__ import annotations

import html
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from qunflow.services import catalog
from qunflow.store.tables import groups
from qunflow.workspace import Workspace
from tests.access import log_in
from tests.conftest import LiveServer
from tests.integration.test_join_flow import FORM, PHONE, setup_community

QUNFLOW = [sys.executable, "-c", "from qunflow.cli.main import main; main()"]


@pytest.fixture
def server(workspace: Workspace) -> Iterator[LiveServer]:
    with LiveServer(workspace) as live:
        yield live


def error_of(answer: httpx.Response) -> str:
    start = answer.text.index('id="error"')
    return html.unescape(answer.text[answer.text.index(">", start) + 1:answer.text.index("</p>", start)])


def test_a_setup_form_refusal_follows_the_page_language(workspace: Workspace, server: LiveServer) -> None:
    ws = workspace
    catalog.add_channel(ws, "xhs", "content")
    with httpx.Client(base_url=server.url, headers={"origin": server.url, "accept": "text/html"},
                      timeout=60) as client:
        csrf = log_in(client, ws, "op", "operator")

        def post(path: str, lang_header: str, **data: str) -> httpx.Response:
            return client.post(path, data={**data, "csrf": csrf}, headers={"accept-language": lang_header},
                               follow_redirects=False)

        zh = post("/console/setup/channel/add", "zh-CN,zh;q=0.9", key="xhs", kind="ad")
        assert zh.status_code == 409 and error_of(zh) == "渠道 'xhs' 已存在"
        en = post("/console/setup/channel/add", "en-US,en;q=0.9", key="xhs", kind="ad")
        assert en.status_code == 409 and error_of(en) == "channel 'xhs' exists already"
        # ?lang= wins over the browser's language, as on every console page
        chosen = post("/console/setup/campaign/add?lang=zh", "en-US", key="spring", channel="nope")
        assert chosen.status_code == 404 and error_of(chosen) == "找不到渠道 'nope'"
        catalog.archive_channel(ws, "xhs")
        archived = post("/console/setup/campaign/add", "zh-CN", key="spring", channel="xhs")
        assert archived.status_code == 400 and error_of(archived) == "渠道 'xhs' 已归档:请选择未归档的渠道"
        # the console's own error page (a form without its CSRF token), in the page's language
        no_csrf = client.post("/console/setup/channel/add?lang=zh", data={"key": "web", "kind": "ad"})
        assert no_csrf.status_code == 403 and "表单缺少有效的 CSRF 令牌" in html.unescape(no_csrf.text)
        no_csrf_en = client.post("/console/setup/channel/add?lang=en", data={"key": "web", "kind": "ad"})
        assert no_csrf_en.status_code == 403 and "no valid CSRF token" in no_csrf_en.text
        assert "CSRF 令牌" not in html.unescape(no_csrf_en.text)
    assert [c["key"] for c in catalog.list_channels(ws, include_archived=True)] == ["xhs"]  # nothing stored
    assert catalog.list_campaigns(ws, include_archived=True) == []


def test_the_json_api_gives_english_and_chinese(workspace: Workspace, server: LiveServer, api_token: str) -> None:
    with httpx.Client(base_url=f"{server.url}/api/v1", headers={"Authorization": f"Bearer {api_token}"},
                      timeout=60) as api:
        missing = api.get("/coupons/AAAA2222BBBB", headers={"accept-language": "zh-CN"})
        assert missing.status_code == 404
        assert missing.json() == {"error": "no such coupon", "error_zh": "找不到该优惠券"}
        no_reward = api.post("/rewards/999/approve", json={})
        assert no_reward.status_code == 404
        assert no_reward.json() == {"error": "no reward 999", "error_zh": "找不到奖励 999"}
        not_json = api.post("/events", content=b"[{", headers={"content-type": "application/json"})
        assert not_json.status_code == 400
        assert not_json.json()["error"].startswith("the body is not valid JSON: ")
        assert not_json.json()["error_zh"].startswith("请求体不是有效的 JSON:")
        unknown = api.get("/metrics", params={"colour": "red"})
        assert unknown.status_code == 400
        assert unknown.json() == {"error": "unknown parameter(s): colour", "error_zh": "未知参数:colour"}
    anonymous = httpx.get(f"{server.url}/api/v1/coupons/AAAA2222BBBB", timeout=60)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"error": "missing bearer token: send 'Authorization: Bearer <token>'",
                                "error_zh": "缺少 bearer 令牌:请发送 'Authorization: Bearer <token>'"}


def alert_of(answer: httpx.Response) -> str:
    start = answer.text.index('role="alert"')
    return html.unescape(answer.text[answer.text.index(">", start) + 1:answer.text.index("</p>", start)])


def test_the_waitlist_page_refuses_in_the_visitors_language(workspace: Workspace, server: LiveServer) -> None:
    setup_community(workspace)
    with workspace.engine.begin() as conn:  # every group full: the visitor lands on the waitlist page
        conn.execute(update(groups).values(member_count=groups.c.capacity))
    with httpx.Client(base_url=server.url, headers={"accept-language": "zh-CN", **PHONE}, timeout=60) as client:
        client.get("/j/xhs-note-1")
        sent = client.post("/j/xhs-note-1", data=FORM)
        assert sent.status_code == 303 and sent.headers["location"].startswith("/w/")
        mine = sent.headers["location"]
        unticked = client.post(mine, data={"contact": "13800000000"})
        assert unticked.status_code == 422 and alert_of(unticked) == "请勾选同意,以便有空位时我们联系你"
        short = client.post(mine, data={"contact": "1", "agree": "on"}, headers={"accept-language": "en"})
        assert short.status_code == 422 and alert_of(short) == "a contact has 3 to 100 characters"


def cli(ws: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("QUNFLOW_LANG", "LC_ALL", "LC_MESSAGES", "LANG")}
    return subprocess.run([*QUNFLOW, *args, "--workspace", str(ws)], capture_output=True, text=True, timeout=120,
                          env={**clean, "COLUMNS": "200", **env}, check=False)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip()


def test_the_setup_cli_speaks_the_terminal_language(workspace: Workspace) -> None:
    home = workspace.home
    workspace.close()
    assert cli(home, "channel", "add", "xhs", "--kind", "content").returncode == 0
    assert one_line(cli(home, "channel", "add", "xhs", "--kind", "ad", QUNFLOW_LANG="zh")) == \
        "error: 渠道 'xhs' 已存在"
    assert one_line(cli(home, "channel", "add", "xhs", "--kind", "ad")) == "error: channel 'xhs' exists already"
    assert one_line(cli(home, "campaign", "add", "spring", "--channel", "nope", LANG="zh_CN.UTF-8")) == \
        "error: 找不到渠道 'nope'"
    # QUNFLOW_LANG wins over the locale
    assert one_line(cli(home, "campaign", "add", "spring", "--channel", "nope", QUNFLOW_LANG="en",
                        LANG="zh_CN.UTF-8")) == "error: no channel 'nope'"


def test_the_token_and_sends_cli_speak_the_terminal_language(workspace: Workspace) -> None:
    home = workspace.home
    workspace.close()
    assert one_line(cli(home, "token", "revoke", "nope", QUNFLOW_LANG="zh")) == \
        "error: 没有名为 'nope' 的有效令牌(可用 `qunflow token list` 查看)"
    assert one_line(cli(home, "token", "revoke", "nope")) == \
        "error: no active token named 'nope' (see `qunflow token list`)"
    assert one_line(cli(home, "sends", "list", "--status", "lost", LANG="zh_CN.UTF-8")).startswith(
        "error: 状态须为以下之一:")
    assert one_line(cli(home, "sends", "check", "s999999", QUNFLOW_LANG="zh")) == \
        "error: 找不到发送记录 999999(可用 `qunflow sends list` 查看)"
    assert one_line(cli(home, "sends", "check", "twelve", QUNFLOW_LANG="zh")) == \
        "error: 'twelve' 不是发送记录 ID(形如 s12)"
