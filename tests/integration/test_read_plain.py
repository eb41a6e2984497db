"""store.db.read_plain: the join path's hot reads on the driver's cursor give what SQLAlchemy gives, on both
state databases, and refuse statements whose values would need SQLAlchemy's type conversion."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import bindparam, insert, or_, select

from qunflow.store.db import read_first, read_plain, read_scalar
from qunflow.store.tables import entry_points, events, identities, members
from qunflow.workspace import Workspace

_BY_USER = (select(identities.c.member_id, identities.c.platform)
            .where(identities.c.external_user_id == bindparam("user"))
            .order_by(identities.c.member_id))
# Literal values ("joined", "left", the LIMIT) bound next to the caller's parameters.
_LAST = (select(events.c.type).where(events.c.member_id == bindparam("member_id"),
                                     or_(events.c.type == "joined", events.c.type == "left"))
         .order_by(events.c.seq.desc()).limit(1))


def test_rows_and_values_match_sqlalchemy(any_workspace: Workspace) -> None:
    ws = any_workspace
    now = datetime(2026, 12, 4, 12, 0)
    with ws.engine.begin() as conn:
        conn.execute(insert(members), [{"id": f"m_{i}", "locale": "zh", "created_at": now} for i in range(3)])
        conn.execute(insert(identities), [{"member_id": f"m_{i}", "platform": platform, "external_user_id": "42",
                                           "created_at": now} for i, platform in ((2, "telegram"), (0, "wecom"))])
        conn.execute(insert(events), [
            {"event_id": f"e{i}", "type": kind, "ts": now, "received_at": now, "member_id": "m_0"}
            for i, kind in enumerate(("joined", "message", "left", "message"))])
    with ws.engine.connect() as conn:
        params = {"user": "42"}
        rows = read_plain(conn, _BY_USER, params)
        assert [tuple(r) for r in rows] == [tuple(r) for r in conn.execute(_BY_USER, params)] == [
            ("m_0", "wecom"), ("m_2", "telegram")]
        assert (rows[1].member_id, rows[1].platform) == ("m_2", "telegram")
        assert read_first(conn, _BY_USER, {"user": "7"}) is None
        assert read_scalar(conn, _LAST, {"member_id": "m_0"}) == "left"
        assert read_scalar(conn, _LAST, {"member_id": "m_1"}) is None


def test_inside_a_write_transaction_it_sees_the_transactions_own_rows(any_workspace: Workspace) -> None:
    ws = any_workspace
    with ws.engine.begin() as conn:
        conn.execute(insert(members).values(id="m_new", locale="zh", created_at=datetime(2026, 12, 4)))
        conn.execute(insert(identities).values(member_id="m_new", platform="wecom", external_user_id="wm1",
                                               created_at=datetime(2026, 12, 4)))
        assert read_scalar(conn, _BY_USER, {"user": "wm1"}) == "m_new"


def test_a_statement_needing_type_conversion_is_refused(workspace: Workspace) -> None:
    with workspace.engine.connect() as conn:
        with pytest.raises(TypeError, match="text and integer"):  # a DateTime column
            read_plain(conn, select(members.c.created_at).where(members.c.id == bindparam("m")), {"m": "x"})
        with pytest.raises(TypeError, match="no IN lists"):
            read_plain(conn, select(entry_points.c.id).where(entry_points.c.code.in_(("a", "b"))), {})
