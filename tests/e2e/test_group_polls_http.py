"""Group polls from the command line and the console: post, vote in the sandbox group, see the results."""

from __future__ import annotations

import json

import httpx
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.workspace import Workspace
from tests.access import log_in
from tests.integration.test_automation import join
from tests.integration.test_group_polls import chat_of
from tests.integration.test_join_flow import setup_community

runner = CliRunner()


def invoke(ws: Workspace, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [*args, "--workspace", str(ws.home)], env={"COLUMNS": "200"})


def test_poll_post_and_results_from_the_command_line(workspace: Workspace) -> None:
    setup_community(workspace, core_capacity=10)
    members = [join(workspace, f"v{i}", f"u{i}") for i in range(3)]
    posted = invoke(workspace, "poll", "post", "core-1", "--question", "周六还是周日?", "--option", "a=周六",
                    "--option", "b=周日", "--key", "weekend")
    assert posted.exit_code == 0, posted.output
    assert "poll weekend posted to core-1" in posted.output
    chat = chat_of(workspace, "core-1")
    assert "1. 周六\n2. 周日\n回复数字投票" in workspace.sandbox.messages(chat_id=chat)[0]["text"]
    for i, reply in enumerate(("1", "2", "2")):
        workspace.sandbox.say(f"u{i}", reply, chat)
    shown = invoke(workspace, "poll", "results", "weekend")
    assert shown.exit_code == 0 and "total 3" in shown.output and "67%" in shown.output
    as_json = json.loads(invoke(workspace, "poll", "results", "weekend", "--format", "json").output)
    assert [o["votes"] for o in as_json["options"]] == [1, 2] and len(members) == 3
    assert "weekend" in invoke(workspace, "poll", "list").output
    assert invoke(workspace, "poll", "close", "weekend").exit_code == 0

    bad = invoke(workspace, "poll", "post", "core-1", "--question", "Q", "--option", "a=A")
    assert bad.exit_code == 2 and "2 to 9 options" in bad.output
    assert invoke(workspace, "poll", "results", "nope").exit_code == 2
    assert invoke(workspace, "poll", "post", "nope", "--question", "Q", "--option", "a=A",
                  "--option", "b=B").exit_code == 2


def test_the_console_posts_a_poll_and_shows_its_votes(workspace: Workspace, live_server) -> None:  # type: ignore[no-untyped-def]
    setup_community(workspace, core_capacity=10)
    join(workspace, "v0", "u0")
    with httpx.Client(base_url=live_server.url, headers={"origin": live_server.url}) as client:
        csrf = log_in(client, workspace)
        assert "No group polls yet." in client.get("/console/polls", params={"lang": "en"}).text
        answer = client.post("/console/polls", data={"csrf": csrf, "lang": "en", "group": "core-1",
                                                     "question": "Tea or coffee?", "options": "t=Tea\r\nc=Coffee",
                                                     "hours": "24"}, follow_redirects=False)
        assert answer.status_code == 303 and "notice=posted" in answer.headers["location"]
        workspace.sandbox.say("u0", "2", chat_of(workspace, "core-1"))
        page = client.get("/console/polls", params={"lang": "en"}).text
        assert "Tea or coffee?" in page and "Total 1" in page
        assert '<td>Coffee</td><td class="num votes">1</td>' in page
        assert "群投票" in client.get("/console/polls", params={"lang": "zh"}).text
        bad = client.post("/console/polls", data={"csrf": csrf, "lang": "en", "group": "core-1",
                                                  "question": "Q", "options": "only=One"})
        assert bad.status_code == 400 and "2 to 9 options" in bad.text
