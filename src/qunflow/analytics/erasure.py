"""An erased member's events in the analytics store: rewritten under their pseudonyms, the same way as in the
state DB (domain.privacy.pseudonymise_event), so both keep the same metrics and neither keeps the person.

Embedded stores are rebuilt after the rewrite, because a database file keeps old values in freed blocks:
DuckDB is copied into a fresh file that replaces the old one; chdb's table is rebuilt and the old one
dropped at once (SYNC). On a ClickHouse server the rows are deleted by a synchronous mutation and
inserted again; the server removes the old parts on its own schedule. The per-member facts follow: on
DuckDB inside the rewrite's transaction (facts_duckdb.refresh_members), on ClickHouse as new row versions
(facts_clickhouse.rewrite), after which every stored version that named the member is removed
(facts_clickhouse.purge).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from qunflow.analytics import by_member, facts_clickhouse
from qunflow.analytics.engines import open_engine
from qunflow.analytics.facts_duckdb import refresh_members
from qunflow.analytics.shipper import ARROW_SCHEMA, COLUMNS, _lock
from qunflow.domain.privacy import Pseudonyms, pseudonymise_event
from qunflow.workspace import Workspace


def _where(names: Pseudonyms) -> tuple[str, list[str]]:
    params = [names.member_id, names.member_id]
    sql = "member_id = ? OR referrer_id = ?"
    if names.visitor_id:
        sql += " OR visitor_id = ?"
        params.append(names.visitor_id)
    return sql, params


def _changed(rows: list[dict[str, Any]], names: Pseudonyms) -> list[dict[str, Any]]:
    """The rows as they are kept (every column), properties as JSON text."""
    out = []
    for row in rows:
        props = row.get("properties")
        if isinstance(props, str):
            try:
                row["properties"] = json.loads(props)
            except ValueError:
                row["properties"] = None
        fixed = {**row, **pseudonymise_event(row, names)}
        fixed["properties"] = json.dumps(fixed["properties"], ensure_ascii=False) if fixed["properties"] else None
        out.append(fixed)
    return out


def erase_in_analytics(ws: Workspace, names: Pseudonyms) -> int:
    """Rewrite the member's events in the analytics store; returns how many rows changed."""
    engine = ws.settings.analytics_engine
    if engine in ("duckdb", "chdb") and not Path(ws.settings.analytics_file).exists():
        return 0  # nothing shipped yet
    with _lock:  # the shipper of this process waits; another process's shipper waits on the file's lock
        if engine == "duckdb":
            return _duckdb(ws.settings.analytics_file, names, ws.settings)
        with open_engine(ws) as opened:
            changed: list[int] = []
            rewrite = _chdb if engine == "chdb" else _server
            # The facts keep ids too: the member's (and their referred members') rows follow the rewrite, and
            # every version that named the member leaves the store.
            facts_clickhouse.rewrite(opened, ws.settings, {names.member_id, names.pseudonym},
                                     lambda: changed.append(rewrite(opened, names)))
            facts_clickhouse.purge(opened, names.member_id, names.visitor_id)  # then merges the parts
            return changed[0]


def _duckdb(path: str, names: Pseudonyms, settings: Any) -> int:
    from qunflow.analytics.store import connect

    fresh = f"{path}.erasing"
    for leftover in (fresh, f"{fresh}.wal"):
        if os.path.exists(leftover):
            os.remove(leftover)
    with connect(path) as conn:
        where, params = _where(names)
        cursor = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM events WHERE {where}", params)
        rows = [dict(zip(COLUMNS, r, strict=True)) for r in cursor.fetchall()]
        fixed = _changed(rows, names)
        conn.execute("BEGIN")
        for row in fixed:
            conn.execute("UPDATE events SET event_id = ?, member_id = ?, visitor_id = ?, referrer_id = ?, "
                         "properties = ? WHERE seq = ?", [row["event_id"], row["member_id"], row["visitor_id"],
                                                           row["referrer_id"], row["properties"], row["seq"]])
        if fixed:  # the copy ordered by member keeps ids too (then the whole file is copied afresh, below)
            by_member.resync(conn, "SELECT unnest(?::BIGINT[])", [[row["seq"] for row in fixed]])
        # The facts keep ids too: the member's (and their referred members') rows follow the rewrite.
        refresh_members(conn, settings, [names.member_id, names.pseudonym])
        conn.execute("COMMIT")
        database = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        conn.execute("ATTACH '" + fresh.replace("'", "''") + "' AS erasing")
        conn.execute(f'COPY FROM DATABASE "{database}" TO erasing')
        conn.execute("DETACH erasing")
    os.replace(fresh, path)  # the old file, with the old values in its freed blocks, is gone
    if os.path.exists(f"{path}.wal"):
        os.remove(f"{path}.wal")
    return len(fixed)


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ch_where(names: Pseudonyms) -> str:
    ids = [names.member_id] + ([names.visitor_id] if names.visitor_id else [])
    sql = f"member_id = {_literal(names.member_id)} OR referrer_id = {_literal(names.member_id)}"
    return sql + (f" OR visitor_id = {_literal(ids[1])}" if len(ids) > 1 else "")


def _arrow(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table({name: [row[name] for row in rows] for name in COLUMNS}, schema=ARROW_SCHEMA)


def _chdb(engine: Any, names: Pseudonyms) -> int:
    session = engine.session
    found = session.query(f"SELECT {', '.join(COLUMNS)} FROM events WHERE {_ch_where(names)}", "ArrowTable")
    rows = found.to_pylist()
    if not rows:
        return 0
    for row in rows:
        if row["ts"] is not None and row["ts"].tzinfo is not None:
            row["ts"] = row["ts"].replace(tzinfo=None)
    fixed = _arrow(_changed(rows, names))  # noqa: F841 - chdb's Python() table function reads it by name
    seqs = ", ".join(str(int(r["seq"])) for r in rows)
    session.query("DROP TABLE IF EXISTS events_erasing SYNC")
    session.query("CREATE TABLE events_erasing AS events")
    session.query(f"INSERT INTO events_erasing SELECT * FROM events WHERE seq NOT IN ({seqs})")
    session.query("INSERT INTO events_erasing SELECT * FROM Python(fixed)")
    session.query("EXCHANGE TABLES events AND events_erasing")
    session.query("DROP TABLE events_erasing SYNC")  # the old parts leave the disk now, not in 8 minutes
    return len(rows)


def _server(engine: Any, names: Pseudonyms) -> int:
    client = engine.client
    result = client.query_arrow(f"SELECT {', '.join(COLUMNS)} FROM events WHERE {_ch_where(names)}")
    rows = result.to_pylist()
    if not rows:
        return 0
    for row in rows:
        if row["ts"] is not None and row["ts"].tzinfo is not None:
            row["ts"] = row["ts"].replace(tzinfo=None)
    seqs = ", ".join(str(int(r["seq"])) for r in rows)
    client.command(f"ALTER TABLE events_log DELETE WHERE seq IN ({seqs}) SETTINGS mutations_sync = 2")
    client.insert_arrow("events_log", _arrow(_changed(rows, names)))
    return len(rows)
