"""The automation worker killed with SIGKILL mid-dispatch, then restarted: every due step sent once, none twice.

And what happens on a platform that cannot deduplicate sends: the step whose outcome a crash hid
becomes a dead letter for a person to check, instead of a second message.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from qunflow.connectors.base import Capabilities
from qunflow.connectors.sandbox import SandboxConnector
from qunflow.engine import outbox
from qunflow.services.automation import dead_letters, dispatch_triggers, run_due
from qunflow.services.join import submit_gate
from qunflow.services.playbooks import apply_playbooks
from qunflow.store.tables import deliveries, enrollments
from qunflow.workspace import Workspace, open_workspace
from tests.integration.test_join_flow import FORM, invite_token, setup_community

QUNFLOW = [sys.executable, "-c", "from qunflow.cli.main import main; main()"]
MEMBERS = 150
HELLO = """
kind: playbook
key: hello
title: {zh: 问候, en: Hello}
trigger: {on: member_joined}
marketing: false
templates:
  hello: {zh: "你好 {{ name }}", en: "Hello {{ name }}"}
steps:
  - send_dm: hello
"""


def populate(ws: Workspace, tmp_path: Path, members: int) -> None:
    setup_community(ws, core_capacity=members)
    world = ws.sandbox
    for i in range(members):
        ticket = submit_gate(ws, "xhs-note-1", f"v{i}", FORM)
        world.join(f"u{i}", f"User {i}", invite_token(ticket.invite_url))
    path = tmp_path / "hello.yaml"
    path.write_text(HELLO)
    apply_playbooks(ws, [path])


def sent_keys(ws: Workspace) -> Counter[str]:
    with ws.sandbox.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT client_key FROM sandbox_messages WHERE client_key LIKE 'pb:%'").all()
    return Counter(row[0] for row in rows)


def worker(home: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*QUNFLOW, "automation", "run", "--interval", "0.1", "--worker", "w1",
                             "--workspace", str(home)],
                            env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def wait_for(check, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_sigkill_mid_dispatch_then_restart_sends_each_step_exactly_once(workspace: Workspace,
                                                                         tmp_path: Path) -> None:
    populate(workspace, tmp_path, MEMBERS)
    home = workspace.home
    first = worker(home)
    try:  # the sandbox takes 30 DMs a second: the kill lands while sends are under way
        assert wait_for(lambda: sum(sent_keys(workspace).values()) >= 40, 60), first.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    at_kill = sum(sent_keys(workspace).values())
    assert at_kill < MEMBERS, "the worker finished before it was killed: nothing was tested"
    second = worker(home)
    try:
        assert wait_for(lambda: len(sent_keys(workspace)) == MEMBERS, 90)
        fresh = open_workspace(home)
        assert wait_for(lambda: _done(fresh) == MEMBERS, 30)
    finally:
        second.terminate()
        second.wait(10)
    keys = sent_keys(workspace)
    assert len(keys) == MEMBERS and set(keys.values()) == {1}  # every member once, nobody twice
    with fresh.engine.connect() as conn:
        statuses = dict(conn.execute(select(deliveries.c.status, func.count()).where(
            deliveries.c.idempotency_key.like("pb:%")).group_by(deliveries.c.status)).all())
    assert statuses == {"sent": MEMBERS}
    fresh.close()


def _done(ws: Workspace) -> int:
    with ws.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(enrollments).where(
            enrollments.c.status == "done")).scalar_one())


class NoDedupSandbox(SandboxConnector):
    """The sandbox as a platform without idempotency keys (Telegram, Slack, WeCom)."""

    capabilities = Capabilities(join_requests=True, dm_policy="any", dm_window_seconds=None, invite_label_max=30,
                                reports_invite_on_join=True, group_capacity_max=None, reads_group_messages=True,
                                idempotent_sends=False)


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_send_whose_outcome_a_crash_hid_is_repeated_only_where_the_platform_deduplicates(
        workspace: Workspace, tmp_path: Path, idempotent: bool) -> None:
    populate(workspace, tmp_path, 1)
    if not idempotent:
        workspace.connectors["sandbox"] = NoDedupSandbox(workspace.sandbox, "http://127.0.0.1")
    dispatch_triggers(workspace)
    # What a crash between "pending" and "sent" leaves: the step's message queued, then claimed for its call.
    with workspace.engine.begin() as conn:
        enrollment = conn.execute(select(enrollments.c.id)).scalar_one()
        key = f"pb:{enrollment}:0"
        outbox.record(workspace, conn, outbox.Message(key=key, kind="playbook", platform="sandbox", target="u0",
                                                      text="你好", private=True))
        conn.execute(update(deliveries).where(deliveries.c.idempotency_key == key)
                     .values(status="pending", lease_until=None))
    outcome = run_due(workspace, worker="restarted")
    if idempotent:
        assert (outcome.sent, len(sent_keys(workspace)), dead_letters(workspace)) == (1, 1, [])
    else:
        assert (outcome.sent, len(sent_keys(workspace))) == (0, 0)
        [dead] = dead_letters(workspace)
        assert dead["last_error"].startswith("outcome unknown after an interruption")
