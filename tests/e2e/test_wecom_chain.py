"""The whole chain on WeCom (企业微信), over real HTTP against a local WeCom API (tests/fakes/wecom_server.py).

landing page -> 联系我 code with the entry point as `state` -> add_external_contact callback (encrypted and
signed as WeCom does) -> send_welcome_msg with its WelcomeCode inside the 20 s window -> the join in
`qunflow metrics --by channel`; then the customer group's add_member; bad signatures, repeats and 45009.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.engine.outbox import deliver
from qunflow.workspace import Workspace, init_workspace
from tests.conftest import LiveServer
from tests.fakes.wecom_server import FakeWeCom

runner = CliRunner()


def cli(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--workspace", str(home)])
    return result.exit_code, result.stdout + (result.stderr if result.stderr_bytes else "")


@pytest.fixture
def wecom() -> Iterator[FakeWeCom]:
    with FakeWeCom(staff=("zhangsan",)) as fake:
        yield fake


@pytest.fixture
def connected(tmp_path: Path, wecom: FakeWeCom) -> Iterator[tuple[Workspace, LiveServer, str]]:
    ws = init_workspace(tmp_path / "ws")
    server = LiveServer(ws)
    settings = ws.home / "qunflow.toml"
    settings.write_text(settings.read_text().replace("http://127.0.0.1:8000", server.url))
    ws.settings.public_url = server.url
    chat = wecom.make_group("zhangsan", "新人群")
    wecom.callback_url = f"{server.url}/hooks/wecom"
    with server:
        code, out = cli(ws.home, "connect", "wecom", "--corp-id", wecom.corp_id, "--secret", wecom.secret,
                        "--callback-token", wecom.token, "--aes-key", wecom.aes_key, "--api-base", wecom.api_base)
        assert code == 0, out
        assert wecom.secret not in out and wecom.aes_key not in out
        assert cli(ws.home, "group", "add", "newbie-1", "--tier", "newbie", "--platform", "wecom",
                   "--external-id", chat)[0] == 0
        assert cli(ws.home, "channel", "add", "ads", "--kind", "ad")[0] == 0
        assert cli(ws.home, "entry", "add", "wc-ads", "--channel", "ads", "--platform", "wecom")[0] == 0
        yield ws, server, chat
    ws.close()


def joined(ws: Workspace) -> int:
    return int(cli(ws.home, "events", "count", "--type", "joined")[1].strip())


def contact_way_of(wecom: FakeWeCom, state: str) -> str:
    [config_id] = [c for c, way in wecom.state.contact_ways.items() if way["state"] == state]
    return config_id


def test_url_check_contact_code_welcome_in_the_window_and_metrics(
        connected: tuple[Workspace, LiveServer, str], wecom: FakeWeCom) -> None:
    ws, server, chat = connected
    check = wecom.verify_url()
    assert check.status == 200 and check.reply.decode() == check.xml  # the echo, no quotes or newline

    page = httpx.get(f"{server.url}/j/wc-ads")
    assert page.status_code == 200
    config_id = contact_way_of(wecom, "wc-ads")
    qr = wecom.state.contact_ways[config_id]["qr_code"]
    assert f'src="{qr}"' in page.text  # the 联系我 QR itself, to scan
    assert re.search(r'id="invite" href="([^"]+)"', page.text).group(1) == qr  # type: ignore[union-attr]

    wecom.add_contact("wmEXT001", "王小明", config_id)
    [welcome] = wecom.welcome_messages()
    assert "王小明" in json.dumps(welcome, ensure_ascii=False)
    assert joined(ws) == 1
    code, out = cli(ws.home, "metrics", "--by", "channel", "--format", "json")
    assert code == 0, out
    rows = {row["channel"]: row for row in json.loads(out)["rows"]}
    assert rows["ads"]["cohort_size"] == 1

    # WeCom retries a callback it saw no answer to: the same event does nothing twice.
    assert wecom.redeliver_last().status == 200
    assert len(wecom.welcome_messages()) == 1 and joined(ws) == 1

    # Then the person joins the customer group through its join code: a second join, of the group.
    wecom.join_group("wmEXT001", "王小明", chat, state="wc-ads")
    assert joined(ws) == 2
    assert len(wecom.templates()) == 0  # no mass-send task per join: WeCom posts need staff confirmation


def test_a_bad_signature_is_refused_and_changes_nothing(
        connected: tuple[Workspace, LiveServer, str], wecom: FakeWeCom) -> None:
    ws, server, _chat = connected
    encrypted, signature = wecom.crypto.encrypt("<xml><Event>add_external_contact</Event></xml>", "1764700000", "n1")
    body = f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    query = urlencode({"msg_signature": "0" * 40, "timestamp": "1764700000", "nonce": "n1"})
    answer = httpx.post(f"{server.url}/hooks/wecom?{query}", content=body)
    assert answer.status_code == 401
    echo = httpx.get(f"{server.url}/hooks/wecom", params={"msg_signature": signature[:-1] + "0",
                                                           "timestamp": "1", "nonce": "n", "echostr": encrypted})
    assert echo.status_code == 401
    assert cli(ws.home, "events", "count")[1].strip() == "0"


def welcome_delivery(ws: Workspace, member_key: str = "welcome_dm") -> tuple[str, str | None]:
    from qunflow.store.tables import deliveries

    with ws.engine.connect() as conn:
        row = conn.execute(deliveries.select().with_only_columns(deliveries.c.status, deliveries.c.error)
                           .where(deliveries.c.kind == member_key).order_by(deliveries.c.id.desc())).first()
    assert row is not None
    return row.status, row.error


def test_frequency_limits_on_the_welcome_are_retried_only_inside_the_window(
        connected: tuple[Workspace, LiveServer, str], wecom: FakeWeCom) -> None:
    ws, server, _chat = connected
    httpx.get(f"{server.url}/j/wc-ads")
    config_id = contact_way_of(wecom, "wc-ads")
    # 45033 (retry after 1 s): waits, then goes on the next round, well inside the 20 s welcome-code window.
    wecom.fail_next("/cgi-bin/externalcontact/send_welcome_msg", 45033, "api concurrent out of limit")
    wecom.add_contact("wmEXT002", "Li", config_id)
    assert wecom.welcome_messages() == [] and welcome_delivery(ws)[0] == "retry"
    time.sleep(1.1)
    assert deliver(ws).sent == 1
    assert len(wecom.welcome_messages()) == 1 and welcome_delivery(ws)[0] == "sent"
    # 45009 (retry after 60 s) is past the window: a dead letter that says why, not a late welcome.
    wecom.fail_next("/cgi-bin/externalcontact/send_welcome_msg", 45009, "api freq out of limit")
    wecom.add_contact("wmEXT003", "Wu", config_id)
    status, error = welcome_delivery(ws)
    assert status == "dead" and "window" in (error or "") and "45009" in (error or "")
    assert joined(ws) == 2 and len(wecom.welcome_messages()) == 1


def test_a_customer_group_holds_at_most_500_and_must_be_the_companys(
        connected: tuple[Workspace, LiveServer, str], wecom: FakeWeCom) -> None:
    ws, _server, _chat = connected
    other = wecom.make_group("zhangsan", "大群")
    code, out = cli(ws.home, "group", "add", "big", "--tier", "core", "--platform", "wecom", "--external-id", other,
                    "--capacity", "600")
    assert code == 2 and "500" in out
    code, out = cli(ws.home, "group", "add", "foreign", "--tier", "core", "--platform", "wecom",
                    "--external-id", "wrNotOurs")
    assert code == 2 and "wrNotOurs" in out
    assert cli(ws.home, "group", "add", "big", "--tier", "core", "--platform", "wecom", "--external-id", other,
               "--capacity", "500")[0] == 0


def test_a_message_outside_a_welcome_code_is_a_task_staff_confirm_and_its_results_are_tracked(
        connected: tuple[Workspace, LiveServer, str], wecom: FakeWeCom) -> None:
    ws, server, _chat = connected
    from qunflow.engine import outbox

    httpx.get(f"{server.url}/j/wc-ads")
    wecom.add_contact("wmEXT009", "Zhou", contact_way_of(wecom, "wc-ads"))
    sent = outbox.send(ws, outbox.Message(key="pb:t:1", kind="playbook", platform="wecom", target="wmEXT009",
                                          text="第2天:来看看这周的活动", private=True))
    assert sent.status == "sent" and sent.message_id in wecom.templates()
    code, out = cli(ws.home, "sends", "list", "--kind", "playbook")
    assert code == 0 and "wmEXT009" in out and "sent" in out and "第2天" not in out  # never the text
    send_id = "s" + re.search(r"\bs(\d+)\b", out).group(1)  # type: ignore[union-attr]
    code, out = cli(ws.home, "sends", "check", send_id)
    assert code == 0 and "0 sent, 1 waiting for staff" in out, out
    wecom.confirm_template(sent.message_id or "")
    code, out = cli(ws.home, "sends", "check", send_id)
    assert code == 0 and "1 sent, 0 waiting for staff" in out, out
    code, out = cli(ws.home, "sends", "check", "s999")
    assert code == 2 and "no send 999" in out


def test_connect_needs_only_gettoken_and_says_what_it_could_not_check(tmp_path: Path, wecom: FakeWeCom) -> None:
    home = init_workspace(tmp_path / "ws").home
    wecom.fail_next("/cgi-bin/externalcontact/get_follow_user_list", 48002, "api forbidden")
    code, out = cli(home, "connect", "wecom", "--corp-id", wecom.corp_id, "--secret", wecom.secret,
                    "--callback-token", wecom.token, "--aes-key", wecom.aes_key, "--api-base", wecom.api_base)
    assert code == 0, out
    assert "Could not list the staff" in out and "Entry mode: group" in out
    assert 'entry_mode = "group"' in (home / "qunflow.toml").read_text()
    code, out = cli(home, "connect", "wecom", "--corp-id", wecom.corp_id, "--secret", "wrong",
                    "--callback-token", wecom.token, "--aes-key", wecom.aes_key, "--api-base", wecom.api_base)
    assert code == 2 and "wrong" not in out


def welcome_file(tmp_path: Path, zh_first_line: str, en_first_line: str) -> Path:
    """The shipped welcome with the menu's first lines replaced."""
    from qunflow.services.playbooks import shipped_files

    shipped = next(p for p in shipped_files() if p.name == "s1_welcome.yaml").read_text(encoding="utf-8")
    text = shipped.replace("👋 欢迎 {{ names }} 入群!群菜单:", zh_first_line).replace(
        "👋 Welcome {{ names }}! Menu:", en_first_line)
    path = tmp_path / "welcome.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_group_welcome_template_carries_the_menu_in_force_per_language(
        connected: tuple[Workspace, LiveServer, str], wecom: FakeWeCom, tmp_path: Path) -> None:
    from qunflow.services.group_welcome import template_ids

    ws, server, _chat = connected
    ids = template_ids(ws, "wecom")  # made when the first WeCom group was added
    assert set(ids) == {"zh", "en"} and set(ids.values()) == set(wecom.welcome_templates())
    zh = wecom.welcome_templates()[ids["zh"]]
    assert zh["text"]["content"].startswith("👋 欢迎 %NICKNAME% 入群!群菜单:")  # WeCom fills in the nickname
    assert f"{server.url}/rules" in zh["text"]["content"] and zh["notify"] == 1  # staff are told to apply it
    assert wecom.welcome_templates()[ids["en"]]["text"]["content"].startswith("👋 Welcome %NICKNAME%! Menu:")

    code, out = cli(ws.home, "group", "add", "newbie-2", "--tier", "newbie", "--platform", "wecom",
                    "--external-id", wecom.make_group("zhangsan", "新人二群"))
    assert code == 0 and ids["zh"] in out and "WeCom client" in out, out
    assert len(wecom.calls("/cgi-bin/externalcontact/group_welcome_template/add")) == 2  # unchanged: no call

    assert cli(ws.home, "apply", str(welcome_file(tmp_path, "欢迎 {{ names }}!", "Hello {{ names }}!")))[0] == 0
    assert template_ids(ws, "wecom") == ids  # edited in place: the groups keep their binding
    assert len(wecom.calls("/cgi-bin/externalcontact/group_welcome_template/edit")) == 2
    assert wecom.welcome_templates()[ids["zh"]]["text"]["content"].startswith("欢迎 %NICKNAME%!\n")
    assert wecom.welcome_templates()[ids["en"]]["text"]["content"].startswith("Hello %NICKNAME%!\n")

    wecom.delete_welcome_template(ids["en"])  # an admin removed it in the admin console
    assert cli(ws.home, "apply", str(welcome_file(tmp_path, "你好 {{ names }}!", "Hi {{ names }}!")))[0] == 0
    again = template_ids(ws, "wecom")
    assert again["zh"] == ids["zh"] and again["en"] != ids["en"]  # a new one replaces the deleted one
    assert wecom.welcome_templates()[again["en"]]["text"]["content"].startswith("Hi %NICKNAME%!\n")


def test_a_menu_too_long_for_a_template_leaves_the_template_and_the_apply_stands(
        connected: tuple[Workspace, LiveServer, str], wecom: FakeWeCom, tmp_path: Path) -> None:
    from qunflow.services.group_welcome import template_ids

    ws, _server, _chat = connected
    before = wecom.welcome_templates()
    long_line = "很长的欢迎语" * 200  # 3,600 bytes in UTF-8: over the template's 3,000
    code, out = cli(ws.home, "apply", str(welcome_file(tmp_path, long_line + "{{ names }}", "Hi {{ names }}!")))
    assert code == 0, out  # the welcome itself is applied (DMs and previews use it)
    assert wecom.welcome_templates()[template_ids(ws, "wecom")["zh"]] == before[template_ids(ws, "wecom")["zh"]]
    assert wecom.calls("/cgi-bin/externalcontact/group_welcome_template/edit") == []


def test_the_fake_refuses_template_calls_as_wecom_documents(wecom: FakeWeCom) -> None:
    from qunflow.connectors.wecom.api import WeComApi, WeComApiError

    api = WeComApi(wecom.corp_id, wecom.secret, wecom.api_base)
    template_id = api.add_group_welcome_template("欢迎 %NICKNAME%")
    assert api.get_group_welcome_template(template_id)["text"] == {"content": "欢迎 %NICKNAME%"}
    for call, errcode in ((lambda: api.call("POST", "/cgi-bin/externalcontact/group_welcome_template/add",
                                            json={"text": {"content": ""}}), 40063),
                          (lambda: api.add_group_welcome_template("字" * 1001), 45002),
                          (lambda: api.edit_group_welcome_template("msgNOPE", "x"), 40058)):
        with pytest.raises(WeComApiError) as refused:
            call()
        assert refused.value.errcode == errcode
    api.del_group_welcome_template(template_id)
    assert wecom.welcome_templates() == {}
    api.close()


def test_a_group_add_says_when_the_template_could_not_be_made(tmp_path: Path, wecom: FakeWeCom) -> None:
    from qunflow.services.group_welcome import template_ids

    ws = init_workspace(tmp_path / "ws")
    assert cli(ws.home, "connect", "wecom", "--corp-id", wecom.corp_id, "--secret", wecom.secret,
               "--callback-token", wecom.token, "--aes-key", wecom.aes_key, "--api-base", wecom.api_base)[0] == 0
    wecom.fail_next("/cgi-bin/externalcontact/group_welcome_template/add", 48002, "api forbidden")
    code, out = cli(ws.home, "group", "add", "newbie-1", "--tier", "newbie", "--platform", "wecom",
                    "--external-id", wecom.make_group("zhangsan", "新人群"))
    assert code == 0 and "could not be made" in out, out  # the group is added all the same
    assert template_ids(ws, "wecom") == {}
    code, out = cli(ws.home, "group", "add", "newbie-2", "--tier", "newbie", "--platform", "wecom",
                    "--external-id", wecom.make_group("zhangsan", "新人二群"))
    assert code == 0 and set(template_ids(ws, "wecom")) == {"zh", "en"}, out  # tried again
    ws.close()

