"""Merging two members (issue 13): metrics after a merge equal metrics over the merged log, and a merge
followed by an undo leaves the metrics as they were; candidates from a shared phone; reject; refusals."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from qunflow.analytics import facts_rules
from qunflow.cli.main import app
from qunflow.services.ingest import ingest_batch
from qunflow.services.merges import list_merges
from qunflow.services.metrics import metrics_report
from qunflow.store.tables import join_signals
from qunflow.workspace import Workspace, init_workspace

runner = CliRunner()


def log(b_name: str = "m_b") -> list[dict[str, Any]]:
    """m_a joins from xhs on the 9th; m_b (the same person, another platform) from douyin on the 5th and buys."""
    def ev(eid: str, kind: str, day: int, member: str, **more: Any) -> dict[str, Any]:
        return {"event_id": eid, "type": kind, "ts": f"2026-01-{day:02d}T02:00:00Z", "member_id": member, **more}
    return [ev("ja", "joined", 9, "m_a", channel="xhs", group="g1"),
            ev("jb", "joined", 5, b_name, channel="douyin", group="g2"),
            ev("jc", "joined", 6, "m_c", channel="xhs", group="g1", referrer_id=b_name),
            ev("ma", "message", 10, "m_a"), ev("mb", "message", 6, b_name),
            ev("ob", "order", 8, b_name, amount="120"), ev("oa", "order", 12, "m_a", amount="30"),
            # landings (M1, from the landing facts as of today): one person after the merge, first seen on the 4th
            ev("lb", "landing_view", 4, b_name, channel="douyin"), ev("la", "landing_view", 8, "m_a", channel="xhs"),
            # others, so a merge touches few members (the facts then update those rows, not rebuild them all)
            *(ev(f"j{i}", "joined", 3 + i % 20, f"m_other{i}", channel="ads", group="g3") for i in range(40))]


def metrics(ws: Workspace) -> dict[str, Any]:
    """As of a past day (the event-level SQL: the merge's own event is later) and as of today (the per-member
    facts answer it, analytics/facts.py): both must follow the merge."""
    out = {by: metrics_report(ws, start=date(2026, 1, 1), end=date(2026, 1, 31), as_of=date(2026, 4, 30), by=by)
           for by in ("none", "channel", "group")}
    out.update({f"{by} today": metrics_report(ws, start=date(2026, 1, 1), end=date(2026, 1, 31), by=by)
                for by in ("none", "channel")})
    return {key: {k: v for k, v in report.items() if k != "as_of"} for key, report in out.items()}


def cli(ws: Workspace, *args: str) -> Any:
    return runner.invoke(app, ["member", *args, "--workspace", str(ws.home)])


@pytest.mark.parametrize("by_member", [False, True], ids=["events", "by-member"])
def test_metrics_after_a_merge_equal_the_merged_log_and_undo_restores_them(workspace: Workspace, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch,
                                                                            by_member: bool) -> None:
    """by-member: the analytics store keeps its copy of the events ordered by member (analytics/by_member.py, a
    big store's), which the merge and its undo rewrite too: the facts' catch-ups read it."""
    if by_member:
        monkeypatch.setattr(facts_rules, "BY_MEMBER_MIN_EVENTS", 0)
    ws = workspace
    assert not ingest_batch(ws.engine, log()).errors
    before = metrics(ws)
    merged_log = init_workspace(tmp_path / "merged")
    try:
        assert not ingest_batch(merged_log.engine, log(b_name="m_a")).errors
        expected = metrics(merged_log)
    finally:
        merged_log.close()
    assert expected != before  # the merge must change something for the test to mean anything
    assert (before["none today"]["total"]["landing_visitors"], expected["none today"]["total"]["landing_visitors"]) \
        == (2, 1)

    done = cli(ws, "merge", "m_a", "m_b")
    assert done.exit_code == 0, done.output
    after = metrics(ws)
    assert after == expected
    total = after["channel"]["rows"]
    assert [r["channel"] for r in total] == ["ads", "douyin", "xhs"]  # m_a's first join is now m_b's (douyin)
    merge_id = list_merges(ws, "merged")[0]["id"]

    assert cli(ws, "unmerge", str(merge_id)).exit_code == 0
    assert metrics(ws) == before
    again = cli(ws, "unmerge", str(merge_id))
    assert again.exit_code == 2 and "nothing to undo" in again.output


def test_candidates_from_a_shared_phone_can_be_rejected_and_bad_requests_change_nothing(workspace: Workspace) -> None:
    ws = workspace
    assert not ingest_batch(ws.engine, log()).errors
    with ws.engine.begin() as conn:
        conn.execute(insert(join_signals), [{"member_id": m, "phone": "h" * 64, "disposable": False,
                                             "recorded_at": ws.clock()} for m in ("m_a", "m_b")])
    listed = cli(ws, "merges")
    assert listed.exit_code == 0 and "m_a <- m_b  (phone, candidate)" in listed.output, listed.output
    candidate = list_merges(ws)[0]["id"]
    assert cli(ws, "reject", str(candidate)).exit_code == 0
    assert list_merges(ws) == [] and list_merges(ws, "rejected")[0]["id"] == candidate
    before = metrics(ws)
    assert cli(ws, "merge", "m_a", "m_a").exit_code == 2
    assert cli(ws, "merge", "m_a", "m_nobody").exit_code == 2
    assert cli(ws, "reject", "999").exit_code == 2
    assert metrics(ws) == before
