"""Recovery after a burst or a crash: retries inside the welcome's promise, the start-up sweep, the sandbox's
redelivery of unacknowledged updates. Crashes are simulated where they happen (a platform call that never
returns, a handler that never runs); the SIGKILL of a real `qunflow serve` is in tests/e2e/test_serve_kill_burst.py.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from qunflow.connectors.base import SendResult
from qunflow.connectors.sandbox import SandboxConnector
from qunflow.engine import outbox
from qunflow.errors import PlatformError
from qunflow.services import join as join_service
from qunflow.services.join import submit_gate
from qunflow.services.recovery import sweep
from qunflow.store.tables import deliveries, events, member_tasks
from qunflow.workspace import Workspace
from tests.integration.test_join_flow import FORM, invite_token, setup_community

PROMISE = 180.0  # seconds: SPEC C3, a private welcome within 3 minutes of joining


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 2, 0)  # 10:00 in Shanghai: no quiet hours

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clocked(any_workspace: Workspace) -> tuple[Workspace, Clock]:
    clock = Clock()
    any_workspace.clock = clock
    return any_workspace, clock


def welcome_latencies(ws: Workspace) -> list[float]:
    with ws.engine.connect() as conn:
        return [p["seconds_after_join"] for p in conn.execute(select(events.c.properties).where(
            events.c.type == "welcome_sent")).scalars()]


def statuses(ws: Workspace, kind: str = "welcome_dm") -> dict[str, int]:
    with ws.engine.connect() as conn:
        return dict(conn.execute(select(deliveries.c.status, func.count()).where(deliveries.c.kind == kind)
                                 .group_by(deliveries.c.status)).all())  # type: ignore[arg-type]


def dms(ws: Workspace, user: str) -> list[str]:
    return [m["text"] for m in ws.sandbox.messages(dm_user_id=user)]


def burst(ws: Workspace, clock: Clock, joins: int, seconds: float) -> None:
    setup_community(ws, core_capacity=joins)
    tickets = [submit_gate(ws, "xhs-note-1", f"v{i}", FORM) for i in range(joins)]
    for i, ticket in enumerate(tickets):
        clock.advance(seconds / joins)
        assert ws.sandbox.join(f"u{i}", f"User {i}", invite_token(ticket.invite_url)) == "joined"


def run_outbox(ws: Workspace, clock: Clock, until_sent: int) -> None:
    """The worker's outbox round, every half second, for as long as the promise lasts."""
    for _ in range(int(PROMISE / 0.5)):
        clock.advance(0.5)
        outbox.deliver(ws)
        if statuses(ws) == {"sent": until_sent}:
            return


def test_a_400_join_burst_under_the_sandbox_rate_limits_welcomes_everyone_within_3_minutes(
        workspace: Workspace) -> None:
    """The probe's finding: 260 of 400 joins in a 4 s burst got no welcome (sends refused by the rate
    limit were never retried)."""
    ws, clock = workspace, Clock()
    ws.clock = clock
    burst(ws, clock, 400, 4.0)
    assert statuses(ws).get("retry", 0) > 200  # most had to wait: the burst was a real one
    run_outbox(ws, clock, 400)
    assert statuses(ws) == {"sent": 400}
    latencies = welcome_latencies(ws)
    assert len(latencies) == 400 and max(latencies) <= PROMISE
    keys = [m["client_key"] for m in ws.sandbox.messages(limit=1000)]
    assert sum(1 for key in keys if key.startswith("welcome_dm:")) == 400


def test_a_platform_stricter_than_its_published_limit_is_waited_out_at_its_retry_after(
        workspace: Workspace) -> None:
    """qunflow paces the sandbox at 30 sends/s; here it takes 10, so its own 429s and retry_after pace them."""
    ws, clock = workspace, Clock()
    ws.clock = clock
    ws.sandbox.limits.bot_per_second = 10
    burst(ws, clock, 150, 1.5)
    run_outbox(ws, clock, 150)
    assert statuses(ws) == {"sent": 150}
    assert max(welcome_latencies(ws)) <= PROMISE


class FlakyPlatform(SandboxConnector):
    """The sandbox failing its first few private sends (a platform's 5xx), as the outside world does."""

    failures = 3

    def send_direct(self, user_id: str, text: str, *, context: str | None = None,
                    idempotency_key: str | None = None) -> SendResult:
        if self.failures:
            self.failures -= 1
            raise PlatformError("sandbox: 502 bad gateway")
        return super().send_direct(user_id, text, context=context, idempotency_key=idempotency_key)


def test_a_welcome_that_fails_is_retried_inside_its_3_minute_promise(clocked: tuple[Workspace, Clock]) -> None:
    """Failures back off (30 s, 60 s, 120 s elsewhere); the welcome's tries are spaced to fit its promise."""
    ws, clock = clocked
    setup_community(ws)
    ws.connectors["sandbox"] = FlakyPlatform(ws.sandbox, ws.settings.public_url)
    ticket = submit_gate(ws, "xhs-note-1", "v1", FORM)
    ws.sandbox.join("u1", "Li Lei", invite_token(ticket.invite_url))
    assert statuses(ws) == {"retry": 1}
    while clock.now < datetime(2026, 3, 2, 2, 10) and statuses(ws) != {"sent": 1}:
        clock.advance(1)
        outbox.deliver(ws)
    assert statuses(ws) == {"sent": 1}
    [latency] = welcome_latencies(ws)
    assert latency <= PROMISE
    assert len(dms(ws, "u1")) == 1


class Crash(BaseException):
    """The process dies here (what SIGKILL does to a call under way)."""


class CrashAfterTheCall(SandboxConnector):
    """The message reaches the platform; the process dies before it hears back."""

    def send_direct(self, user_id: str, text: str, *, context: str | None = None,
                    idempotency_key: str | None = None) -> SendResult:
        super().send_direct(user_id, text, context=context, idempotency_key=idempotency_key)
        raise Crash


class CrashBeforeTheCall(SandboxConnector):
    def send_direct(self, user_id: str, text: str, *, context: str | None = None,
                    idempotency_key: str | None = None) -> SendResult:
        raise Crash


def crashed_welcome(ws: Workspace, connector: type[SandboxConnector], user: str) -> str:
    """A join whose welcome call a crash cut off; the restarted process has the real connector again."""
    ticket = submit_gate(ws, "xhs-note-1", f"v-{user}", FORM)
    ws.connectors["sandbox"] = connector(ws.sandbox, ws.settings.public_url)
    with pytest.raises(Crash):
        ws.sandbox.join(user, "Li Lei", invite_token(ticket.invite_url))
    ws.connectors["sandbox"] = SandboxConnector(ws.sandbox, ws.settings.public_url)
    return ticket.member_id


@pytest.mark.parametrize("connector", [CrashAfterTheCall, CrashBeforeTheCall])
def test_the_sweep_settles_a_send_a_crash_left_pending_against_the_platform(
        clocked: tuple[Workspace, Clock], connector: type[SandboxConnector]) -> None:
    ws, clock = clocked
    setup_community(ws)
    member = crashed_welcome(ws, connector, "u1")
    assert statuses(ws) == {"pending": 1}  # its lease (60 s) has not run out
    clock.advance(1)
    swept = sweep(ws, before=clock.now)  # the restarted process: nothing of its own is under way
    assert statuses(ws) == ({"sent": 1} if connector is CrashAfterTheCall else {"retry": 1})
    assert (swept.sends_recorded, swept.sends_due_again) == ((1, 0) if connector is CrashAfterTheCall else (0, 1))
    outbox.deliver(ws)
    assert statuses(ws) == {"sent": 1} and len(dms(ws, "u1")) == 1
    [latency] = welcome_latencies(ws)
    assert latency < 5
    assert swept.welcomed == 0
    with ws.engine.connect() as conn:  # the tasks the crash kept the welcome from giving: the sweep gave them
        assert set(conn.execute(select(member_tasks.c.task_key).where(member_tasks.c.member_id == member))
                   .scalars()) == {"checkin", "claim_coupon"}


def test_the_sweep_welcomes_a_recorded_join_whose_welcome_never_started(clocked: tuple[Workspace, Clock]) -> None:
    """The crash fell between the join handler and the welcome handler, and the platform does not deliver
    the update again (its retries ran out)."""
    ws, clock = clocked
    setup_community(ws)
    ticket = submit_gate(ws, "xhs-note-1", "v1", FORM)
    world = ws.sandbox
    connector = ws.connector("sandbox")

    def join_handler_only(headers: dict[str, str], body: bytes) -> None:
        for item in connector.receive("POST", {}, headers, body).updates:
            join_service.on_member_joined(ws, item)

    world.subscribers[:] = [join_handler_only]
    world.join("u1", "Li Lei", invite_token(ticket.invite_url))
    assert statuses(ws) == {}
    clock.advance(10)
    assert sweep(ws).welcomed == 0  # on the timer, younger than 30 s: perhaps still under way
    clock.advance(30)
    swept = sweep(ws)
    assert (swept.welcomed, swept.tasks_assigned) == (1, 0)  # the welcome gives its own tasks
    assert statuses(ws) == {"sent": 1}
    [text] = dms(ws, "u1")
    assert "Li Lei" in text  # the gate's name
    assert sweep(ws).welcomed == 0  # once


def test_the_sweep_gives_day1_tasks_to_a_member_welcomed_without_them(clocked: tuple[Workspace, Clock]) -> None:
    ws, clock = clocked
    setup_community(ws)
    ticket = submit_gate(ws, "xhs-note-1", "v1", FORM)
    ws.sandbox.join("u1", "Li Lei", invite_token(ticket.invite_url))
    with ws.engine.begin() as conn:  # what a crash right after the welcome's send leaves
        conn.execute(delete(member_tasks))
    clock.advance(60)
    assert sweep(ws).tasks_assigned == 1
    with ws.engine.connect() as conn:
        assert set(conn.execute(select(member_tasks.c.task_key)).scalars()) == {"checkin", "claim_coupon"}
    assert sweep(ws).tasks_assigned == 0
    assert len(dms(ws, "u1")) == 1


def joined_events(ws: Workspace) -> Counter[str]:
    with ws.engine.connect() as conn:
        return Counter(conn.execute(select(events.c.member_id).where(events.c.type == "joined")).scalars())


def test_the_sandbox_delivers_an_unacknowledged_join_again_until_it_is_handled(
        clocked: tuple[Workspace, Clock]) -> None:
    ws, clock = clocked
    setup_community(ws)
    world = ws.sandbox
    down = {"calls": 0}

    def unreachable(_headers: object, _body: bytes) -> None:  # qunflow down: the webhook gets no 200
        down["calls"] += 1
        if down["calls"] == 1:
            raise ConnectionError("connection refused")

    world.subscribers.insert(0, unreachable)
    ticket = submit_gate(ws, "xhs-note-1", "v1", FORM)
    assert world.join("u1", "Li Lei", invite_token(ticket.invite_url)) == "joined"  # the person is in regardless
    assert joined_events(ws) == Counter() and world.unacknowledged() == 1
    assert world.redeliver() == 0  # not before its time
    clock.advance(11)
    assert world.redeliver() == 1
    assert joined_events(ws) == Counter({ticket.member_id: 1}) and world.unacknowledged() == 0
    clock.advance(3600)
    assert world.redeliver() == 0 and len(dms(ws, "u1")) == 1


def test_an_update_handled_but_not_acknowledged_is_not_acted_on_twice(clocked: tuple[Workspace, Clock]) -> None:
    ws, clock = clocked
    setup_community(ws)
    world = ws.sandbox
    calls = {"n": 0}

    def crash_before_the_200(_headers: object, _body: bytes) -> None:  # after qunflow handled it
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("reset by peer")

    world.subscribers.append(crash_before_the_200)
    ticket = submit_gate(ws, "xhs-note-1", "v1", FORM)
    world.join("u1", "Li Lei", invite_token(ticket.invite_url))
    clock.advance(11)
    assert world.redeliver() == 1
    assert joined_events(ws) == Counter({ticket.member_id: 1})
    assert len(world.messages(chat_id="chat-core-1")) == 1 and len(dms(ws, "u1")) == 1  # one menu, one welcome


def test_gate_passes_and_joins_side_by_side_never_meet_database_is_locked(workspace: Workspace) -> None:
    """A gate pass's first write is its event, written through the driver's own cursor; it used to go
    around the process's SQLite writer lock, so two writers could wait for each other until busy_timeout
    (10 s) failed one with "database is locked": the join lost at about 15 joins/s."""
    ws = workspace
    setup_community(ws, core_capacity=200)
    failures: list[str] = []

    def person(i: int) -> None:
        try:
            ticket = submit_gate(ws, "xhs-note-1", f"v{i}", FORM)
            ws.sandbox.join(f"u{i}", f"User {i}", invite_token(ticket.invite_url))
        except Exception as exc:  # noqa: BLE001 (collected: the assertion says which)
            failures.append(f"{type(exc).__name__}: {str(exc)[:80]}")

    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(person, range(120)))
    assert failures == []
    assert time.monotonic() - started < 60
    assert sum(joined_events(ws).values()) == 120 and ws.sandbox.unacknowledged() == 0
