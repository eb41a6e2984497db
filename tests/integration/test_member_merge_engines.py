"""Merging two members on every analytics engine, and the rows a merge moves (issue 13).

On chdb and a ClickHouse server, as on DuckDB (test_member_merge.py): metrics after a merge equal the metrics
of a workspace holding the merged log, and an undo gives back the metrics from before; so does the daily trend,
whose M3 the member days answer (kept equal to a rebuild); the store's copies of exactly the moved events are
replaced (no re-ship). On SQLite and PostgreSQL: coupons, rewards, referrals,
consents, tasks, votes, tags and levels move to the kept member, a clash keeps the kept member's row, a
referral between the two becomes a self-referral scored high, and undo puts every row back as it was.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from qunflow.analytics.engines import open_engine
from qunflow.analytics.facts import days_usable
from qunflow.services.ingest import ingest_batch
from qunflow.services.member_records import export_member, member_record
from qunflow.services.merges import merge, undo
from qunflow.services.metrics import daily_trend
from qunflow.store.tables import (
    consents,
    coupons,
    member_levels,
    member_tags,
    member_tasks,
    members,
    poll_votes,
    referrals,
    rewards,
)
from qunflow.workspace import Workspace, init_workspace
from tests.clickhouse_http import ClickHouseHTTPServer
from tests.conftest import use_clickhouse
from tests.integration.test_member_facts import days_rows, landing_rows, rebuilt_days_rows, rebuilt_landing_rows
from tests.integration.test_member_merge import cli, log, metrics


def _engine(ws: Workspace, name: str, server: ClickHouseHTTPServer | None) -> Workspace:
    if name == "clickhouse":
        assert server is not None
        return use_clickhouse(ws, server.fresh_url())
    ws.settings.analytics_engine = name
    return ws


def _landings_kept_exact(ws: Workspace) -> list[Any]:
    """The kept links and landing facts, after checking they equal a rebuild from the events."""
    with open_engine(ws) as engine:
        kept = landing_rows(engine)
        assert kept == rebuilt_landing_rows(engine, ws)
    return kept


def _trend(ws: Workspace) -> list[dict[str, Any]]:
    """January's daily trend, its M3 from the member days (checked up to date and equal to a rebuild)."""
    with open_engine(ws) as engine:
        assert days_usable(engine, ws.settings)
        assert days_rows(engine) == rebuilt_days_rows(engine, ws)
    return daily_trend(ws, start=date(2026, 1, 1), end=date(2026, 1, 31), as_of=date(2026, 1, 31))


def _stored(ws: Workspace) -> list[tuple[Any, ...]]:
    """The analytics store's rows as the metric queries read them."""
    with open_engine(ws) as engine:
        _names, rows = engine.query("SELECT seq, member_id, referrer_id FROM events ORDER BY seq", {})
    return [tuple(r) for r in rows]


@pytest.fixture
def server(request: pytest.FixtureRequest) -> ClickHouseHTTPServer | None:
    if request.node.callspec.params["engine"] != "clickhouse":
        return None
    return request.getfixturevalue("clickhouse_server")  # type: ignore[no-any-return]


@pytest.mark.parametrize("engine", ["chdb", "clickhouse"])
def test_merge_and_undo_on_clickhouse_engines_keep_metrics_exact(engine: str, tmp_path: Path,
                                                                  server: ClickHouseHTTPServer | None) -> None:
    pytest.importorskip("chdb", reason="the ClickHouse engines need chdb: pip install -e '.[test]'")
    merged_log = _engine(init_workspace(tmp_path / "merged"), engine, server)
    try:
        assert not ingest_batch(merged_log.engine, log(b_name="m_a")).errors
        expected, expected_trend = metrics(merged_log), _trend(merged_log)
    finally:
        merged_log.close()
    ws = _engine(init_workspace(tmp_path / "ws"), engine, server)
    try:
        assert not ingest_batch(ws.engine, log()).errors
        before, rows_before, trend_before = metrics(ws), _stored(ws), _trend(ws)
        assert expected != before and expected_trend != trend_before

        done = merge(ws, "m_a", "m_b", actor="cli")
        assert done["events_moved"] == 4  # jb, mb, ob, lb; jc names m_b as referrer
        assert metrics(ws) == expected and _trend(ws) == expected_trend
        assert [person for person, *_rest in _landings_kept_exact(ws)[1]] == ["m_a", "m_a"]  # m_b's view is m_a's
        after = _stored(ws)
        assert len(after) == len(rows_before) + 1  # the same rows (one merge event more), none doubled
        assert all(member != "m_b" and referrer != "m_b" for _seq, member, referrer in after)

        undo(ws, done["id"], actor="cli")
        assert metrics(ws) == before and _trend(ws) == trend_before
        assert sorted(person for person, *_rest in _landings_kept_exact(ws)[1]) == ["m_a", "m_b"]
        assert [r for r in _stored(ws) if r[0] <= rows_before[-1][0]] == rows_before
    finally:
        ws.close()


TABLES = (coupons, rewards, referrals, consents, member_tasks, poll_votes, member_tags, member_levels, members)


def _snapshot(ws: Workspace) -> dict[str, list[tuple[Any, ...]]]:
    with ws.engine.connect() as conn:
        return {t.name: sorted((tuple(r) for r in conn.execute(select(t))), key=repr) for t in TABLES}


def _owners(ws: Workspace, table: Any, column: str = "member_id") -> list[str]:
    with ws.engine.connect() as conn:
        return sorted(conn.execute(select(table.c[column])).scalars())


def _seed(ws: Workspace) -> None:
    """m_b is m_a on another platform: each holds a coupon and tasks, m_a invited m_b, m_b invited m_c."""
    t = datetime(2026, 1, 5, 2)
    assert not ingest_batch(ws.engine, log()).errors
    with ws.engine.begin() as conn:
        conn.execute(insert(members), [{"id": m, "locale": "zh", "created_at": t, "joined_at": t}
                                       for m in ("m_a", "m_b", "m_c")])
        conn.execute(insert(coupons), [
            {"code": f"C{m}", "cause": f"welcome:{m}", "member_id": m, "name": "welcome", "value": Decimal("5"),
             "status": "sent", "issued_at": t, "expires_at": datetime(2026, 2, 1)} for m in ("m_a", "m_b")])
        conn.execute(insert(referrals), [
            {"id": 1, "inviter_id": "m_a", "invitee_id": "m_b", "joined_at": t},
            {"id": 2, "inviter_id": "m_b", "invitee_id": "m_c", "joined_at": t}])
        conn.execute(insert(rewards), [
            {"cause": f"ref:{i}", "program": "p", "program_version": 1, "rule": "r", "member_id": m,
             "role": "inviter", "referral_id": i, "coupon_name": "thanks", "value": Decimal("10"), "valid_days": 30,
             "status": "held", "release_at": datetime(2026, 1, 20), "created_at": t} for i, m in ((1, "m_a"),
                                                                                               (2, "m_b"))])
        conn.execute(insert(consents), [{"member_id": m, "purpose": "marketing", "text_version": "v1",
                                         "granted": True, "recorded_at": t} for m in ("m_a", "m_b")])
        conn.execute(insert(member_tasks), [
            {"member_id": "m_a", "task_key": "intro", "assigned_at": t, "due_at": t},
            {"member_id": "m_b", "task_key": "intro", "assigned_at": t, "due_at": t, "completed_at": t},
            {"member_id": "m_b", "task_key": "poll", "assigned_at": t, "due_at": t}])
        conn.execute(insert(poll_votes), [{"member_id": "m_b", "poll": "poll", "option": "tea", "voted_at": t}])
        conn.execute(insert(member_tags), [{"member_id": m, "tag": "buyer", "added_at": t} for m in ("m_a", "m_b")])
        conn.execute(insert(member_levels), [{"member_id": m, "level": lv, "score": s, "since": date(2026, 1, 9),
                                              "as_of": date(2026, 1, 10)}
                                             for m, lv, s in (("m_a", "active", 3), ("m_b", "core", 9))])


def test_a_merge_moves_coupons_referrals_and_more_and_undo_puts_every_row_back(any_workspace: Workspace) -> None:
    ws = any_workspace
    _seed(ws)
    before = _snapshot(ws)

    done = merge(ws, "m_a", "m_b", actor="cli")
    assert done["rows_moved"]["coupons.member_id"] == 1 and done["rows_moved"]["referrals.inviter_id"] == 1
    assert done["rows_dropped"] == {"member_tasks.member_id": 1, "member_tags.member_id": 1,
                                    "member_levels.member_id": 1}
    assert done["self_referrals"] == 1
    assert _owners(ws, coupons) == ["m_a", "m_a"] and _owners(ws, rewards) == ["m_a", "m_a"]
    assert _owners(ws, consents) == ["m_a", "m_a"] and _owners(ws, poll_votes) == ["m_a"]
    with ws.engine.connect() as conn:
        tasks = {r.task_key: r.completed_at for r in conn.execute(select(member_tasks))}
        level = conn.execute(select(member_levels.c.member_id, member_levels.c.level)).all()
        ref = {r.id: r for r in conn.execute(select(referrals))}
    assert tasks == {"intro": None, "poll": None}  # the kept member's own "intro" task stays
    assert [tuple(r) for r in level] == [("m_a", "active")]
    assert (ref[1].inviter_id, ref[1].invitee_id, ref[1].fraud_level) == ("m_a", "m_a", "high")
    assert "self_referral" in str(ref[1].fraud_reasons)
    assert (ref[2].inviter_id, ref[2].invitee_id) == ("m_a", "m_c")
    exported = export_member(ws, "m_a")  # the kept member's whole history
    assert len(exported["coupons"]) == 2 and len(exported["rewards"]) == 2
    assert member_record(ws, "m_a", with_profile=False)["invitees"] == ["m_a", "m_c"]

    undo(ws, done["id"], actor="cli")
    assert _snapshot(ws) == before


def test_two_inviters_of_one_person_the_kept_referral_stays_and_the_others_rewards_wait_for_review(
        workspace: Workspace) -> None:
    ws = workspace
    t = datetime(2026, 1, 5, 2)
    assert not ingest_batch(ws.engine, log()).errors
    with ws.engine.begin() as conn:
        conn.execute(insert(referrals), [{"id": 7, "inviter_id": "m_x", "invitee_id": "m_a", "joined_at": t},
                                         {"id": 8, "inviter_id": "m_y", "invitee_id": "m_b", "joined_at": t}])
        conn.execute(insert(rewards), [
            {"cause": f"ref:{i}", "program": "p", "program_version": 1, "rule": "r", "member_id": m,
             "role": "inviter", "referral_id": i, "coupon_name": "thanks", "value": Decimal("10"), "valid_days": 30,
             "status": "held", "release_at": datetime(2026, 1, 20), "created_at": t}
            for i, m in ((7, "m_x"), (8, "m_y"))])
    before = _snapshot(ws)

    done = merge(ws, "m_a", "m_b", actor="cli")
    assert done["rows_dropped"] == {"referrals.invitee_id": 1} and done["rewards_to_review"] == 1
    with ws.engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(select(referrals.c.id, referrals.c.invitee_id))] == [(7, "m_a")]
        status = dict(conn.execute(select(rewards.c.member_id, rewards.c.status)).all())
    assert status == {"m_x": "held", "m_y": "review"}  # never paid on a referral that is gone

    undo(ws, done["id"], actor="cli")
    assert _snapshot(ws) == before


def test_the_cli_says_what_moved_what_was_kept_and_the_self_referral(workspace: Workspace) -> None:
    _seed(workspace)
    done = cli(workspace, "merge", "m_a", "m_b")
    assert done.exit_code == 0, done.output
    assert "4 events and 7 other rows moved" in done.output
    assert "member_tasks.member_id 1" in done.output and "1 referral(s) between them" in done.output
