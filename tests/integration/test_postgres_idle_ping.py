"""The pool pings a PostgreSQL connection at checkout only when it sat idle longer than PING_IDLE_AFTER (a firewall
or NAT may have dropped it without a word), not at every checkout (store/postgres.py ping_when_stale). The
connection the server ended is in test_postgres_round_trips.py."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from qunflow.store import postgres
from qunflow.workspace import Workspace

pytestmark = pytest.mark.postgres
IDLE = 0.3  # seconds: PING_IDLE_AFTER for this test


def test_a_connection_is_pinged_at_checkout_only_after_sitting_idle(pg_workspace: Workspace,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    engine = pg_workspace.engine
    dialect = engine.dialect
    pings: list[float] = []
    real_ping = dialect.do_ping

    def counted_ping(dbapi_connection: object) -> bool:
        pings.append(time.monotonic())
        return real_ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted_ping)
    monkeypatch.setattr(postgres, "PING_IDLE_AFTER", IDLE)
    engine.pool.dispose()  # one connection from here on, so each checkout below gets the same one

    def use() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT 1")).scalar_one())

    assert use() == 1  # a new connection: just made, not pinged
    assert use() == 1  # back from the pool at once: not pinged
    assert pings == []
    time.sleep(IDLE + 0.2)
    assert use() == 1  # idle past the limit: pinged once, then used
    assert len(pings) == 1
    assert use() == 1  # used a moment ago: not pinged again
    assert len(pings) == 1
    assert engine.pool.checkedout() == 0


def test_a_checkout_works_when_the_connection_has_a_descriptor_past_1024(pg_workspace: Workspace) -> None:
    """The checkout's look for input from the server (a local check) takes any descriptor: a busy process (many
    connections, files, sockets) gives a new connection one of 1024 or more, which select() refuses."""
    import os
    import resource

    engine = pg_workspace.engine
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if max(soft, hard if hard != resource.RLIM_INFINITY else 4096) < 1200:
        pytest.skip(f"the process may open {soft} files (hard limit {hard}): too few for a descriptor past 1024")
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    held: list[int] = []
    engine.pool.dispose()  # first: the descriptors it frees are taken below too
    try:
        while not held or held[-1] < 1030:  # every free descriptor up to there: the next ones are past 1024
            held.append(os.open(os.devnull, os.O_RDONLY))
        for _ in range(2):  # a new connection, then it again from the pool: looked at for input
            with engine.connect() as conn:
                assert conn.connection.driver_connection.fileno() > 1024
                assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        for fd in held:
            os.close(fd)
        engine.pool.dispose()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
