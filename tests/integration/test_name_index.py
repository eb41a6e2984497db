"""Search by part of a name through a blind index (issue 13: 100 ms p99 at 1M members): keyed hashes of the
name's parts, kept up to date by every profile write, never a name in clear; erasure removes them, a merge
moves them, and a workspace made before the index is indexed when opened."""

from __future__ import annotations

from sqlalchemy import select, text

from qunflow.domain.privacy import name_fragments
from qunflow.services.join import record_landing, submit_gate
from qunflow.services.member_records import search_members
from qunflow.services.privacy import reindex_names, store_profile, unseal
from qunflow.store.tables import member_name_keys, members
from qunflow.workspace import Workspace, open_workspace
from tests.integration.test_join_flow import FORM, setup_community


def gate(ws: Workspace, visitor: str, name: str) -> str:
    record_landing(ws, "xhs-note-1", visitor, {})
    return submit_gate(ws, "xhs-note-1", visitor, {**FORM, "name": name}).member_id


def names_found(ws: Workspace, query: str) -> set[str]:
    return {hit["member_id"] for hit in search_members(ws, query) if hit["matched_by"] == "name"}


def test_fragments_cover_what_people_type() -> None:
    assert set(name_fragments("王小明")) == {"王", "小", "明", "王小", "小明", "王小明"}
    latin = name_fragments("Li Lei")
    assert "lilei" in latin and "lei" in latin and "l" not in latin  # one Latin letter matches too much
    long = name_fragments("Maximilian Alexander Schmidt-Hohenstein")
    assert "maxi" in long and "maximilianalexander" in long and len(long) <= 160


def test_a_name_is_found_by_its_parts_and_never_stored_in_clear(any_workspace: Workspace) -> None:
    ws = any_workspace
    setup_community(ws, core_capacity=50)
    wang, li = gate(ws, "v1", "王小明"), gate(ws, "v2", "Li Lei")
    assert names_found(ws, "小明") == {wang} and names_found(ws, "王小明") == {wang}
    assert names_found(ws, "li lei") == {li} and names_found(ws, "LEI") == {li}
    assert names_found(ws, "李雷") == set()
    with ws.engine.connect() as conn:
        stored = " ".join(conn.execute(select(member_name_keys.c.key)).scalars())
    assert "王" not in stored and "lei" not in stored  # keyed hashes only

    with ws.engine.begin() as conn:  # a profile edit (the profile task, the waitlist) re-indexes
        profile = unseal(ws, conn.execute(select(members.c.profile).where(members.c.id == wang)).scalar())
        store_profile(ws, conn, wang, {**profile, "name": "王大明"})
    assert names_found(ws, "小明") == set() and names_found(ws, "大明") == {wang}


def test_an_older_workspace_is_indexed_when_opened(workspace: Workspace) -> None:
    ws = workspace
    setup_community(ws, core_capacity=50)
    member = gate(ws, "v1", "张三丰")
    with ws.engine.begin() as conn:  # as a workspace made before 0020 would be: no keys, older schema
        conn.execute(text("DROP TABLE member_name_keys"))
        for statement in ("DROP INDEX ix_enrollments_active_due", "DROP INDEX ix_enrollments_dead_updated",
                          "CREATE INDEX ix_enrollments_status_due ON enrollments (status, due_at)"):  # before 0021
            conn.execute(text(statement))
        conn.execute(text("UPDATE alembic_version SET version_num = '0019'"))
    home = ws.settings.home
    ws.close()
    reopened = open_workspace(home)
    try:
        assert names_found(reopened, "三丰") == {member}
        assert reindex_names(reopened) == 1  # idempotent: the same keys again
        assert names_found(reopened, "张三") == {member}
    finally:
        reopened.close()


def test_erasure_takes_the_name_keys_and_a_merge_moves_them(workspace: Workspace) -> None:
    from qunflow.services.erasure import erase_member
    from qunflow.services.merges import merge

    ws = workspace
    setup_community(ws, core_capacity=50)
    gone, keep, other = gate(ws, "v1", "赵六"), gate(ws, "v2", "钱七"), gate(ws, "v3", "孙八")
    erase_member(ws, gone, actor="test")
    assert names_found(ws, "赵六") == set()
    with ws.engine.connect() as conn:
        left = conn.execute(select(member_name_keys.c.member_id).distinct()).scalars().all()
    assert sorted(left) == sorted([keep, other])  # the erased member's keys went with the profile
    merge(ws, keep, other, actor="test")
    assert names_found(ws, "孙八") == {keep} and names_found(ws, "钱七") == {keep}
