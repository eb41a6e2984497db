"""What one join costs qunflow, measured so that other load on the machine hardly moves it: CPU seconds of
the handling thread per 1,000 joins (time.thread_time: the fake platform's threads are not counted), and the
SQL statements and commits per join (SQLAlchemy event listeners; SQLite's trace, or on PostgreSQL what psycopg
sent, and its round trips). On PostgreSQL (--postgres ADMIN_URL: a fresh database per platform, made and
dropped through that URL) also how long each join holds the event log's lock
(store/eventlog.py EVENT_LOCK_KEY), as the server sees it: pg_locks sampled every 2 ms (bench_connectors.py's
LockSampler) gives the share of the time it is held, times the run's wall time per join. No other process
waits for it here: `bench_connectors.py --postgres --workers N` samples the waits between processes.

The updates go through the same code as `qunflow serve`'s /hooks/<platform> minus uvicorn and FastAPI:
`services.inbound.receive` with the platform's own body and headers (Telegram: the updates FakeTelegram
queued for its webhook, the approvals' chat_member and service-message updates included, taken off its
queue in order; WeCom: FakeWeCom's encrypted add_external_contact callbacks, handed to receive in the
calling thread), one after another in one thread, against the local fake servers.

--trace then prints what one more join sent to PostgreSQL, statement by statement, each transaction ending at
its COMMIT or ROLLBACK (which commits a join makes, and where its round trips go).

Run: python bench/probe_join_cost.py [--platform telegram|wecom|both] [--joins 300] [--profile N] [--trace]
     [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import re
import sqlite3
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_connectors import LockSampler, cli, make_workspace, state_database  # noqa: E402

SECRET = "probe-secret"
# A statement's start in what psycopg sends (a value bound on the client that held "; SELECT" would count too).
STATEMENT = re.compile(r"(?:^|;)\s*(?:SELECT|INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
URL = "http://127.0.0.1:9"  # nothing listens: the fakes' webhooks are taken over by the probe


class Counts:
    """Statements as SQLite ran them (its trace callback: those qunflow runs on the driver's cursor too, e.g.
    store.plain.read_plain and the event log's inserts), those SQLAlchemy executed, and commits. On PostgreSQL
    the statements psycopg sent (an executemany counts once) and its round trips: each statement or command
    (BEGIN, COMMIT, ROLLBACK: psycopg sends a transaction's BEGIN on its own) outside a pipeline, and each
    pipeline."""

    def __init__(self) -> None:
        self.statements = 0
        self.sqlalchemy = 0
        self.commits = 0
        self.round_trips = 0
        self.pooled: weakref.WeakSet[Any] = weakref.WeakSet()  # qunflow's connections (not the lock sampler's)
        self.trace: list[str] | None = None  # --trace: what was sent to PostgreSQL, one line each

    def listen(self) -> None:
        event.listen(Pool, "connect", self._connect)
        event.listen(Engine, "before_cursor_execute", self._statement)
        event.listen(Engine, "commit", self._commit)

    def listen_psycopg(self) -> None:
        import psycopg

        counts = self
        execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany
        command, pipeline = psycopg.Connection._exec_command, psycopg.Connection.pipeline

        def traced(connection: Any, query: Any) -> None:
            if counts.trace is not None:
                text = query if isinstance(query, str) else bytes(query).decode()
                pipelined = " (pipeline)" if connection._pipeline is not None else ""
                counts.trace.append(f"  conn {id(connection) % 10_000:04d}{pipelined}: {' '.join(text.split())[:150]}")

        def sent(connection: Any, query: Any) -> None:
            if connection not in counts.pooled:
                return
            if connection.info.transaction_status == 0 and not connection.autocommit:  # idle
                traced(connection, "BEGIN")  # sent by psycopg first (counted by counted_command)
            traced(connection, query)
            if connection._pipeline is None:
                counts.round_trips += 1
            if isinstance(query, str):  # each of a query's statements (store.postgres.one_query sends several)
                counts.statements += len(STATEMENT.findall(query))
            elif query == "COMMIT":  # sent as a statement around SQLAlchemy (engine/limits.py): no commit event
                counts.commits += 1

        def counted_execute(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            sent(cursor.connection, query)
            return execute(cursor, query, *args, **kwargs)

        def counted_executemany(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            sent(cursor.connection, query)
            return executemany(cursor, query, *args, **kwargs)

        def counted_command(connection: Any, *args: Any, **kwargs: Any) -> Any:
            if connection in counts.pooled:
                counts.round_trips += connection._pipeline is None
                if args[0] != b"BEGIN":  # traced by sent, before its statement
                    traced(connection, args[0])
            return command(connection, *args, **kwargs)

        @contextmanager
        def counted_pipeline(connection: Any) -> Iterator[Any]:
            outer = connection._pipeline is None
            with pipeline(connection) as open_pipeline:
                yield open_pipeline
            if outer and connection in counts.pooled:
                counts.round_trips += 1

        psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign]
        psycopg.Cursor.executemany = counted_executemany  # type: ignore[method-assign]
        psycopg.Connection._exec_command = counted_command  # type: ignore[method-assign]
        psycopg.Connection.pipeline = counted_pipeline  # type: ignore[method-assign, assignment]

    def _connect(self, dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(self._traced)
        else:
            self.pooled.add(dbapi_connection)

    def _traced(self, sql: str) -> None:
        if sql.lstrip()[:6].upper() in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            self.statements += 1

    def _statement(self, *_args: Any) -> None:
        self.sqlalchemy += 1

    def _commit(self, *_args: Any) -> None:
        self.commits += 1


def measure(name: str, joins: int, warm: int, one: Callable[[int], None], counts: Counts,
            profile: int, trace: bool) -> dict[str, Any]:
    for i in range(warm):
        one(i)
    statements, sqlalchemy, commits, trips = counts.statements, counts.sqlalchemy, counts.commits, counts.round_trips
    postgres = "QUNFLOW_DATABASE_URL" in os.environ
    with ExitStack() as stack:
        sampler = stack.enter_context(LockSampler(os.environ["QUNFLOW_DATABASE_URL"], 0.002)) if postgres else None
        cpu, wall = time.thread_time(), time.perf_counter()
        for i in range(warm, warm + joins):
            one(i)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    result = {"platform": name, "joins": joins, "cpu_s_per_1000": round(cpu / joins * 1000, 2),
              "wall_ms_per_join": round(wall / joins * 1000, 2),
              # as SQLite ran them (its trace), or as psycopg sent them
              "statements_per_join": round((counts.statements - statements) / joins, 2),
              "sqlalchemy_statements_per_join": round((counts.sqlalchemy - sqlalchemy) / joins, 2),
              "commits_per_join": round((counts.commits - commits) / joins, 2)}
    if postgres:
        result["round_trips_per_join"] = round((counts.round_trips - trips) / joins, 2)
    if sampler is not None and sampler.samples:
        share = sampler.held / sampler.samples
        result.update({"event_lock_held_share": round(share, 3), "lock_samples": sampler.samples,
                       "event_lock_held_ms_per_join": round(share * wall / joins * 1000, 2)})
    if profile:
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        for i in range(warm + joins, warm + joins + profile):
            one(i)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats("qunflow|pydantic|json|logging", 80)
    if trace:
        counts.trace = []
        one(warm + joins + profile)
        print(f"{name}: one join as sent to PostgreSQL", *counts.trace, sep="\n")
        counts.trace = None
    return result


def telegram(home: Path, joins: int, warm: int, counts: Counts, profile: int, trace: bool) -> dict[str, Any]:
    from tests.fakes.telegram_server import TOKEN, FakeTelegram, Limits

    from qunflow.services.inbound import receive
    from qunflow.services.join import entry_invite
    from qunflow.workspace import open_workspace

    total = warm + joins + profile + trace
    with FakeTelegram(limits=Limits(bot_per_second=1_000_000)) as fake:
        chat = fake.make_group("Newbies")
        cli(home, "connect", "telegram", "--bot-token", TOKEN, "--api-base", fake.api_base, "--mode", "webhook",
            "--webhook-secret", SECRET)
        with fake._lock:
            fake.webhook = None  # the probe takes the updates off the queue itself
        cli(home, "group", "add", "newbie-1", "--tier", "newbie", "--platform", "telegram", "--external-id", chat,
            "--capacity", str(total + 100))
        cli(home, "channel", "add", "ads", "--kind", "ad")
        cli(home, "entry", "add", "tg-ads", "--channel", "ads", "--platform", "telegram")
        ws = open_workspace(home)
        link = entry_invite(ws, "tg-ads")[2].url
        people = [fake.person(f"Person {i}") for i in range(total)]
        headers = {"content-type": "application/json", "x-telegram-bot-api-secret-token": SECRET}

        def one(i: int) -> None:
            fake.open_link(people[i], link)
            while True:
                with fake._lock:
                    if not fake._pending:
                        return
                    update = fake._pending.popleft() if hasattr(fake._pending, "popleft") else fake._pending.pop(0)
                receive(ws, "telegram", "POST", {}, headers, json.dumps(update).encode())

        result = measure("telegram", joins, warm, one, counts, profile, trace)
        assert len(fake.members(chat)) == total, "every request was approved"
        assert len({m["user_id"] for m in fake.sent() if m["private"]}) == total, "every person was welcomed"
        ws.close()
    return result


def wecom(home: Path, joins: int, warm: int, counts: Counts, profile: int, trace: bool) -> dict[str, Any]:
    from tests.fakes.wecom_server import FakeWeCom

    from qunflow.services.inbound import receive
    from qunflow.services.join import entry_invite
    from qunflow.workspace import open_workspace

    total = warm + joins + profile + trace
    with FakeWeCom(staff=("zhangsan",)) as fake:
        group = fake.make_group("zhangsan", "新人群")
        cli(home, "connect", "wecom", "--corp-id", fake.corp_id, "--secret", fake.secret, "--callback-token",
            fake.token, "--aes-key", fake.aes_key, "--api-base", fake.api_base)
        cli(home, "group", "add", "newbie-1", "--tier", "newbie", "--platform", "wecom", "--external-id", group)
        cli(home, "channel", "add", "ads", "--kind", "ad")
        cli(home, "entry", "add", "wc-ads", "--channel", "ads", "--platform", "wecom")
        ws = open_workspace(home)
        entry_invite(ws, "wc-ads")
        [config_id] = [c for c, way in fake.state.contact_ways.items() if way["state"] == "wc-ads"]

        class InProcess(httpx.BaseTransport):
            """FakeWeCom's callback, handled in the calling thread as /hooks/wecom would handle it."""

            def handle_request(self, request: httpx.Request) -> httpx.Response:
                inbound = receive(ws, "wecom", request.method, dict(request.url.params), dict(request.headers),
                                  request.read())
                return httpx.Response(200, content=inbound.reply, headers={"content-type": inbound.media_type})

        fake.callback_url = f"{URL}/hooks/wecom"
        fake.callback_client = httpx.Client(transport=InProcess())

        def one(i: int) -> None:
            fake.add_contact(f"wmPROBE{i:06d}", f"客户{i}", config_id)

        result = measure("wecom", joins, warm, one, counts, profile, trace)
        welcomed = {w["external_userid"] for w in fake.welcome_messages()}
        assert len(welcomed) == total, f"every contact was welcomed ({len(welcomed)} of {total})"
        ws.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", choices=("telegram", "wecom", "both"), default="both")
    parser.add_argument("--joins", type=int, default=300)
    parser.add_argument("--warm", type=int, default=30, help="joins before the measured ones (not counted)")
    parser.add_argument("--profile", type=int, default=0, help="then profile this many more joins")
    parser.add_argument("--trace", action="store_true",
                        help="then print what one more join sent to PostgreSQL (with --postgres)")
    parser.add_argument("--sqlite-synchronous", choices=("full", "normal"), default="full")
    parser.add_argument("--postgres", metavar="ADMIN_URL",
                        help="state database on PostgreSQL: a fresh database per platform, made through this URL")
    args = parser.parse_args()
    counts = Counts()
    counts.listen()
    if args.postgres:
        counts.listen_psycopg()
    runs = {"telegram": telegram, "wecom": wecom}
    with tempfile.TemporaryDirectory(prefix="qunflow-probe-") as name:
        for platform in ("telegram", "wecom") if args.platform == "both" else (args.platform,):
            home = Path(name) / platform
            with state_database(args.postgres):
                make_workspace(home, URL, args.sqlite_synchronous)
                result = runs[platform](home, args.joins, args.warm, counts, args.profile,
                                        args.trace and bool(args.postgres))
            database = "postgresql" if args.postgres else "sqlite"
            print(json.dumps({**result, "database": database, "load": [round(v, 2) for v in os.getloadavg()]}),
                  flush=True)


if __name__ == "__main__":
    main()
