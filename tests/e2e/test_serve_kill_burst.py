"""SIGKILL of `qunflow serve` during a burst of 300 joins through the sandbox, then a restart.

People open their gate-pass links on the sandbox's own pages, served by `qunflow serve`; the kill lands
while joins, welcomes and their records are under way. Those whose page never answered try again after
the restart, as people do. Then every join the platform has is recorded once, every member is welcomed
exactly once and has their Day-1 tasks (the welcome's, and an S2 warm-up enrollment), and nobody gets
the same DM twice: the sandbox's redelivery and the start-up sweep finished what the kill cut off.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from qunflow.services.join import submit_gate
from qunflow.services.playbooks import apply_playbooks, shipped_files
from qunflow.store.tables import deliveries, enrollments, events, identities, member_tasks
from qunflow.workspace import Workspace, init_workspace, open_workspace
from tests.conftest import free_port
from tests.e2e.test_ingest_kill import Server
from tests.integration.test_join_flow import FORM, invite_token, setup_community

JOINS = 300
KILL_AFTER = 100  # joins answered before the kill
THREADS = 8  # people opening their links at the same time


class People(threading.Thread):
    """Opens the links in `todo` on the sandbox's pages; remembers who got an answer and who did not."""

    def __init__(self, url: str, todo: list[tuple[int, str]]) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.todo: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()
        for item in todo:
            self.todo.put(item)
        self.answered: list[int] = []
        self.unanswered: list[tuple[int, str]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def run(self) -> None:
        workers = [threading.Thread(target=self._person, daemon=True) for _ in range(THREADS)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _person(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while True:
                try:
                    i, token = self.todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    response = http.post(f"/sandbox/invite/{token}", data={"name": f"User {i}"},
                                         headers={"cookie": f"sandbox_uid=u{i}"})
                except httpx.HTTPError:  # the server died under this request
                    with self._lock:
                        self.unanswered.append((i, token))
                    continue
                with self._lock:
                    if response.status_code == 200:
                        self.answered.append(i)
                    else:
                        self.errors.append(f"{i}: {response.status_code} {response.text[:200]}")


def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def prepare(home: Path) -> list[str]:
    """A community, the shipped S2 warm-up applied, and 300 gate passes (their links' tokens)."""
    ws = init_workspace(home)
    setup_community(ws, core_capacity=JOINS)
    apply_playbooks(ws, [p for p in shipped_files() if p.name == "s2_warmup.yaml"])
    with ThreadPoolExecutor(4) as pool:  # the gate's own speed is not what this test is about
        tickets = list(pool.map(lambda i: submit_gate(ws, "xhs-note-1", f"v{i}", FORM), range(JOINS)))
    ws.close()
    return [invite_token(ticket.invite_url) for ticket in tickets]


def state(ws: Workspace) -> dict[str, object]:
    """What qunflow and the platform hold, in the terms of the promises checked."""
    with ws.sandbox.engine.connect() as conn:
        in_groups = set(conn.exec_driver_sql(
            "SELECT user_id FROM sandbox_chat_members WHERE status = 'member'").scalars())
        dms = conn.exec_driver_sql("SELECT dm_user_id, client_key, text FROM sandbox_messages "
                                   "WHERE dm_user_id IS NOT NULL AND sender = 'bot'").all()
    with ws.engine.connect() as conn:
        member_of = dict(conn.execute(select(identities.c.external_user_id, identities.c.member_id)).all())
        joined = Counter(conn.execute(select(events.c.member_id).where(events.c.type == "joined")).scalars())
        welcomes = dict(conn.execute(select(deliveries.c.member_id, deliveries.c.status)
                                     .where(deliveries.c.kind == "welcome_dm")).all())
        tasks: dict[str, set[str]] = {}
        for member_id, task in conn.execute(select(member_tasks.c.member_id, member_tasks.c.task_key)):
            tasks.setdefault(member_id, set()).add(task)
        warmups = Counter(conn.execute(select(enrollments.c.subject)
                                       .where(enrollments.c.playbook_key == "s2_warmup")).scalars())
    members = [member_of.get(user) for user in sorted(in_groups)]
    return {
        "in_groups": len(in_groups),
        "recorded": sum(1 for m in members if m is not None and joined[m] == 1),
        "joined_twice": sum(1 for n in joined.values() if n > 1),
        "welcomed": sum(1 for m in members if welcomes.get(m) == "sent"),
        "welcome_dms": Counter(user for user, key, _text in dms if (key or "").startswith("welcome_dm:")),
        "with_tasks": sum(1 for m in members if tasks.get(m) == {"checkin", "claim_coupon"}),
        "warmed_up": sum(1 for m in members if warmups[m] == 1),
        "same_dm_twice": [user for user, n in Counter((user, text) for user, _k, text in dms).items() if n > 1],
        "unacknowledged": ws.sandbox.unacknowledged(),
    }


def finished(ws: Workspace) -> bool:
    now = state(ws)
    return (now["in_groups"] == now["recorded"] == now["welcomed"] == now["with_tasks"] == now["warmed_up"]
            == JOINS and now["unacknowledged"] == 0)


def kill_during_burst(home: Path) -> None:
    tokens = prepare(home)
    port = free_port()
    first = Server(home, port)
    people = People(first.url, list(enumerate(tokens)))
    started = time.monotonic()
    people.start()
    assert wait_for(lambda: len(people.answered) >= KILL_AFTER, 40), people.errors[:3]
    first.stop(signal.SIGKILL)
    people.join(30)
    assert people.unanswered, "no join was under way at the kill: nothing was tested"
    before_restart = len(people.answered)
    assert before_restart < JOINS, "the burst ended before the kill"

    second = Server(home, port)
    restarted = time.monotonic()
    try:
        rest = People(second.url, people.unanswered + [(i, tokens[i]) for i in range(JOINS)
                                                        if i not in people.answered
                                                        and (i, tokens[i]) not in people.unanswered])
        rest.start()
        rest.join(60)
        assert not rest.errors and not people.errors, (rest.errors + people.errors)[:3]
        ws = open_workspace(home)
        try:
            assert wait_for(lambda: finished(ws), 40), state(ws)
            final = state(ws)
        finally:
            ws.close()
    finally:
        second.stop()
    assert final["joined_twice"] == 0 and final["same_dm_twice"] == []
    assert set(final["welcome_dms"].values()) == {1} and len(final["welcome_dms"]) == JOINS  # type: ignore[union-attr]
    print(f"\n{before_restart} joins answered before the kill, {JOINS - before_restart} after the restart; all {JOINS} "
          f"settled {time.monotonic() - restarted:.1f} s after the restart ({time.monotonic() - started:.1f} s in all)")


def test_sigkill_of_serve_during_a_join_burst_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUNFLOW_DATABASE_URL", raising=False)
    kill_during_burst(tmp_path / "ws")


@pytest.mark.postgres
def test_sigkill_of_serve_during_a_join_burst_on_postgres(tmp_path: Path, pg_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUNFLOW_DATABASE_URL", pg_url)  # for this process and the server's
    kill_during_burst(tmp_path / "ws")
