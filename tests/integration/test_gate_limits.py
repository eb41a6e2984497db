"""The gate's guard in the state database: limits shared by processes, seats held from a join request."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

from sqlalchemy import func, select

from qunflow.connectors.base import JoinRequested
from qunflow.services import catalog
from qunflow.services.gate_guard import check_pass, check_view, prune, spend_solution, take
from qunflow.services.join import on_join_request, submit_gate
from qunflow.settings import GateLimits
from qunflow.store.tables import request_limits
from qunflow.workspace import Workspace, open_workspace
from tests.integration.test_fraud import Clock
from tests.integration.test_join_flow import FORM, setup_community

T0 = datetime(2026, 3, 2, 2, 0)


def test_two_processes_share_the_counts_and_time_refills_them(any_workspace: Workspace) -> None:
    first = any_workspace
    second = open_workspace(first.home)  # another process: its own engine over the same state database
    clock = Clock(T0)
    for ws in (first, second):
        ws.clock = clock
        ws.settings.gate = GateLimits(ip_views=(4, 60))  # 4 at once, then one every 15 s
    try:
        waits = [check_view(ws, "ip-hash") for ws in (first, second, first, second, first, second)]
        assert waits[:4] == [0, 0, 0, 0] and waits[4] == waits[5] == 15.0
        clock.now += timedelta(seconds=15)
        assert check_view(second, "ip-hash") == 0 and check_view(first, "ip-hash") == 15.0
        assert check_view(first, "another-network") == 0
    finally:
        second.close()


def test_a_refused_pass_costs_no_other_bucket_and_passed_buckets_are_forgotten(workspace: Workspace) -> None:
    clock = Clock(T0)
    workspace.clock = clock
    workspace.settings.gate = GateLimits(ip_passes=(1, 60), device_passes=(5, 60))
    agent = "Mozilla/5.0 (iPhone) MicroMessenger/8.0"
    assert not check_pass(workspace, "ip", ["dev"], has_visitor_cookie=True, user_agent=agent).refused
    refused = check_pass(workspace, "ip", ["dev"], has_visitor_cookie=True, user_agent=agent)
    assert refused.refused and refused.retry_after == 60.0
    assert take(workspace, {"pass:dev:dev": (5, 60)}) == {"pass:dev:dev": 0}  # 2 of 5 taken, not 3
    waits = [take(workspace, {"pass:dev:dev": (5, 60)})["pass:dev:dev"] for _ in range(4)]
    assert waits == [0, 0, 0, 12.0]
    clock.now += timedelta(minutes=11)  # every bucket has refilled (the slowest, 2 per 10 min, too)
    assert prune(workspace) == 4
    with workspace.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(request_limits)).scalar_one() == 0


def test_a_join_request_holds_a_seat_briefly_and_a_pass_alone_holds_none(any_workspace: Workspace) -> None:
    ws = any_workspace
    clock = Clock(T0)
    ws.clock = clock
    setup_community(ws, core_capacity=1)
    first = submit_gate(ws, "xhs-note-1", "v1", FORM)
    second = submit_gate(ws, "xhs-note-1", "v2", FORM)
    third = submit_gate(ws, "xhs-note-1", "v3", FORM)  # passes alone fill nothing
    assert (first.group, second.group, third.group) == ("core-1", "core-2", "core-1")  # they spread

    on_join_request(ws, JoinRequested("sandbox", T0, "chat-core-1", "u1", "Li", first.invite_url.rsplit("/", 1)[1]))
    on_join_request(ws, JoinRequested("sandbox", T0, "chat-core-2", "u2", "Han", second.invite_url.rsplit("/", 1)[1]))
    room = {r["key"]: r["room"] for r in catalog.list_groups(ws)}
    assert room["core-1"] == room["core-2"] == 0  # a join under way holds its seat...
    clock.now += timedelta(minutes=11)
    room = {r["key"]: r["room"] for r in catalog.list_groups(ws)}
    assert room["core-1"] == room["core-2"] == 1  # ...for a while, not for good


def test_junk_in_the_challenge_field_is_refused_not_an_error(workspace: Workspace) -> None:
    junk = ["", "%%%", base64.b64encode(b"[1, 2]").decode(), base64.b64encode(b'"text"').decode(),
            base64.b64encode(json.dumps({"algorithm": "SHA-256", "challenge": 1, "number": [], "salt": None,
                                         "signature": {}}).encode()).decode(),
            base64.b64encode(json.dumps({"algorithm": "SHA-1", "challenge": "a", "number": 1, "salt": "s?expires=x&",
                                         "signature": "b"}).encode()).decode()]
    assert {spend_solution(workspace, j).problem for j in junk} <= {"missing", "invalid"}
