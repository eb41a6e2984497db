"""store.plain.read_plain and write_plain: the join path's hot reads and writes on the driver's cursor give and
store what SQLAlchemy does, on both state databases, and refuse statements they cannot run alike."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from qunflow.store.plain import insert_ignore, read_first, read_plain, read_scalar, write_plain
from qunflow.store.tables import deliveries, entry_points, events, groups, identities, members
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


_SET_JOINED = update(members).where(members.c.id == bindparam("mid")).values(joined_at=bindparam("at"))
_COUNT_IN = (update(groups).where(groups.c.id == bindparam("gid"))
             .values(member_count=groups.c.member_count + 1).returning(groups.c.member_count))


def test_writes_store_what_sqlalchemy_stores(any_workspace: Workspace) -> None:
    """write_plain (and insert_ignore, which runs on it) against SQLAlchemy's own execution: the same stored
    values, byte for byte as the driver reads them (datetimes with microseconds, booleans, JSON, bytes, a
    column's constant default), RETURNING, row counts and several rows at once."""
    ws = any_workspace
    now = datetime(2026, 12, 4, 12, 0, 0, 120000)
    send = {"platform": "telegram", "target": "42", "kind": "welcome_dm", "status": "queued", "created_at": now,
            "private": True, "marketing": False, "body": b"\x00secret", "attempts": 0, "next_at": now,
            "on_sent": {"event_id": "ws-1", "properties": {"since": None, "n": 1.5}}}
    group = {"key": "g", "name": "G", "platform": "telegram", "external_id": "-1", "tier": "newbie", "capacity": 9,
             "created_at": now}
    with ws.engine.begin() as conn:
        conn.execute(insert(deliveries), [{**send, "idempotency_key": "sa"}])
        insert_ignore(conn, deliveries, [{**send, "idempotency_key": "plain"}, {**send, "idempotency_key": "sa"},
                                         {**send, "idempotency_key": "plain2", "on_sent": None}])
        conn.execute(insert(groups), [{**group, "key": "g_sa"}])
        write_plain(conn, insert(groups), {**group, "key": "g_plain", "external_id": "-2"})  # member_count, active
        conn.execute(insert(members), [{"id": f"m_{i}", "locale": "zh", "created_at": now} for i in range(3)])
        assert write_plain(conn, _SET_JOINED, [{"mid": "m_0", "at": now}, {"mid": "m_1", "at": now}]) == 2
        assert write_plain(conn, _SET_JOINED, {"mid": "m_none", "at": now}) == 0
        gid = conn.execute(select(groups.c.id).where(groups.c.key == "g_plain")).scalar()
        assert write_plain(conn, _COUNT_IN, {"gid": gid}) == 1
        assert write_plain(conn, _COUNT_IN, {"gid": -5}) is None
    with ws.engine.connect() as conn:
        raw = conn.exec_driver_sql(
            "SELECT idempotency_key, created_at, private, marketing, body, on_sent FROM deliveries "
            "ORDER BY idempotency_key").all()
        assert [r[0] for r in raw] == ["plain", "plain2", "sa"]
        assert raw[0][1:] == raw[2][1:], raw  # as the driver reads them: stored alike
        assert conn.execute(select(deliveries.c.on_sent).where(deliveries.c.idempotency_key == "plain2")).scalar() \
            == conn.execute(select(deliveries.c.on_sent).where(deliveries.c.idempotency_key == "nothing")).scalar()
        stored = {r[0]: tuple(r[1:]) for r in conn.exec_driver_sql(
            "SELECT key, member_count, active, created_at FROM groups")}
        assert stored["g_sa"][0] == 0 and stored["g_plain"] == (1, *stored["g_sa"][1:])  # the defaults, counted in
        joined = conn.execute(select(members.c.id, members.c.joined_at).order_by(members.c.id)).all()
        assert [tuple(r) for r in joined] == [("m_0", now), ("m_1", now), ("m_2", None)]
        assert conn.exec_driver_sql("SELECT joined_at FROM members WHERE id = 'm_0'").scalar() == \
            conn.exec_driver_sql("SELECT created_at FROM members WHERE id = 'm_0'").scalar()
    with pytest.raises(IntegrityError), ws.engine.begin() as conn:  # the driver's error, as SQLAlchemy raises it
        write_plain(conn, insert(groups), {**group, "key": "g_sa"})


def test_a_write_with_a_computed_default_is_refused(workspace: Workspace) -> None:
    stamped = Table("stamped", MetaData(), Column("id", Integer, primary_key=True), Column("at", DateTime,
                                                                                         default=datetime.now))
    with workspace.engine.begin() as conn, pytest.raises(TypeError, match="not a constant"):
        write_plain(conn, insert(stamped), {"id": 1})


def test_a_driver_write_commits_with_the_connection_as_sqlalchemys_would(any_workspace: Workspace) -> None:
    """Commit as you go: a write on the driver's cursor begins SQLAlchemy's transaction as its own statements
    do, so the connection's commit() commits it (and gives the writer lock back)."""
    ws = any_workspace
    row = {"key": "g1", "name": "G", "platform": "telegram", "external_id": "-1", "tier": "newbie", "capacity": 9,
           "created_at": datetime(2026, 12, 4)}
    with ws.engine.connect() as conn:
        insert_ignore(conn, groups, [row])
        conn.commit()
    with ws.engine.connect() as conn:
        assert conn.execute(select(groups.c.key)).scalars().all() == ["g1"]
        write_plain(conn, _COUNT_IN, {"gid": conn.execute(select(groups.c.id)).scalar()})
        conn.rollback()
    with ws.engine.begin() as conn:  # the writer lock was given back: another write goes at once
        assert conn.execute(update(groups).values(name="H")).rowcount == 1
        assert conn.execute(select(groups.c.member_count)).scalar() == 0
