"""A connector's refusals in the terminal's language (issue 10), through a real `qunflow` process: `connect`
refusing its settings or an unreachable platform, and `group add` naming what to fix in a Telegram group (the
local Bot API stand-in, tests/fakes/telegram_server.py, over loopback). QUNFLOW_LANG or the locale picks the
language, as in tests/e2e/test_errors_zh.py; without either, the English is what it always was."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qunflow.workspace import Workspace
from tests.conftest import free_port
from tests.e2e.test_errors_zh import cli, one_line
from tests.fakes.telegram_server import TOKEN, FakeTelegram


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


def test_connect_refuses_bad_settings_in_the_terminal_language(workspace: Workspace) -> None:
    home = workspace.home
    workspace.close()
    bad_token = ("connect", "telegram", "--bot-token", "nope")
    assert one_line(cli(home, *bad_token, QUNFLOW_LANG="zh")) == (
        "error: telegram bot_token 设置有误:机器人令牌应形如 123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
        "(从 @BotFather 复制)")
    assert one_line(cli(home, *bad_token)) == (
        "error: telegram bot_token: the bot token must look like 123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11 "
        "(copy it from @BotFather)")
    wecom = ("connect", "wecom", "--corp-id", "ww1", "--secret", "s", "--callback-token", "t", "--aes-key", "short")
    assert one_line(cli(home, *wecom, LANG="zh_CN.UTF-8")) == (
        "error: wecom aes_key 设置有误:EncodingAESKey 须正好是 43 个字母和数字(当前 5 个字符);"
        "请在回调设置页面点「随机获取」")
    no_secret = ("connect", "slack", "--bot-token", "xoxb-12345678")
    assert one_line(cli(home, *no_secret, QUNFLOW_LANG="zh", QUNFLOW_SLACK_SIGNING_SECRET="")) == (
        "error: 缺少签名密钥:请传 --signing-secret 或设置 QUNFLOW_SLACK_SIGNING_SECRET")
    assert one_line(cli(home, *no_secret, QUNFLOW_SLACK_SIGNING_SECRET="")) == (
        "error: no signing secret: pass --signing-secret or set QUNFLOW_SLACK_SIGNING_SECRET")
    assert "[platforms." not in (home / "qunflow.toml").read_text()  # nothing was saved


def test_connect_names_an_unreachable_platform_in_chinese(workspace: Workspace) -> None:
    home = workspace.home
    workspace.close()
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    args = ("connect", "telegram", "--bot-token", TOKEN, "--api-base", nobody)
    assert one_line(cli(home, *args, QUNFLOW_LANG="zh")) == (
        f"error: 连不上 {nobody.removeprefix('http://')} 的 Telegram Bot API(ConnectError):请检查网络或 api_base")
    assert one_line(cli(home, *args, QUNFLOW_LANG="en", LANG="zh_CN.UTF-8")).startswith(
        "error: could not reach the Telegram Bot API at 127.0.0.1:")


def test_group_add_names_the_fixes_in_the_terminal_language(workspace: Workspace, telegram: FakeTelegram) -> None:
    home = workspace.home
    workspace.close()
    assert cli(home, "connect", "telegram", "--bot-token", TOKEN, "--api-base", telegram.api_base).returncode == 0
    plain = telegram.make_group("Plain member", bot_admin=False, privacy=True)
    add = ("group", "add", "newbie-1", "--tier", "newbie", "--platform", "telegram", "--external-id", plain)
    zh = one_line(cli(home, *add, QUNFLOW_LANG="zh"))
    assert zh.startswith(f"error: qunflow 暂时无法管理 telegram 群聊 {plain}:机器人 @qunflow_test_bot 不是群 {plain} "
                         "的管理员:请把它设为管理员"), zh
    assert "读不到群" in zh and "/setprivacy 关闭隐私模式" in zh  # the second fix, in Chinese too
    assert "administrator" not in zh.replace("(Invite users via link)", "")
    en = one_line(cli(home, *add))
    assert en.startswith(f"error: qunflow cannot run telegram chat {plain} yet: the bot @qunflow_test_bot is not an "
                         f"administrator of group {plain}: promote it"), en
    assert "turn off privacy mode" in en and "机器人" not in en
    no_right = telegram.make_group("No invite right", can_invite=False)
    assert one_line(cli(home, "group", "add", "newbie-2", "--tier", "newbie", "--platform", "telegram",
                        "--external-id", no_right, LANG="zh_CN.UTF-8")) == (
        f"error: qunflow 暂时无法管理 telegram 群聊 {no_right}:机器人 @qunflow_test_bot 在群 {no_right} 里没有"
        "「通过链接邀请用户」(Invite users via link)权限:请编辑它的管理员权限并打开此项")
    ready = telegram.make_group("Ready")
    assert cli(home, "group", "add", "newbie-3", "--tier", "newbie", "--platform", "telegram",
               "--external-id", ready, QUNFLOW_LANG="zh").returncode == 0
