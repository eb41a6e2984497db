"""Tracked invite links in the state database: one live link per label, a label can come back after its link
was revoked (SQLite and PostgreSQL: the uniqueness is a partial index on live links)."""

from __future__ import annotations

from sqlalchemy import func, select

from qunflow.services import catalog
from qunflow.services.invites import invite_for, revoke, revoke_expired
from qunflow.store.tables import groups, invite_links
from qunflow.workspace import Workspace


def test_a_revoked_label_gets_a_new_link_and_only_one_stays_live(any_workspace: Workspace) -> None:
    ws = any_workspace
    catalog.add_group(ws, "newbie-1", "newbie", 100)
    with ws.engine.connect() as conn:
        group = conn.execute(select(groups).where(groups.c.key == "newbie-1")).one()
    first = invite_for(ws, group, "ads", personal=False)
    assert invite_for(ws, group, "ads", personal=False) == first  # made once
    assert revoke(ws, group.id, "ads")  # the group filled, say
    second = invite_for(ws, group, "ads", personal=False)  # room again: the same label, a new link
    assert second.url != first.url
    with ws.engine.connect() as conn:
        live = conn.execute(select(func.count()).select_from(invite_links).where(
            invite_links.c.label == "ads", invite_links.c.revoked_at.is_(None))).scalar()
        total = conn.execute(select(func.count()).select_from(invite_links)).scalar()
    assert (live, total) == (1, 2)
    assert revoke_expired(ws) == 0  # sandbox links do not expire
