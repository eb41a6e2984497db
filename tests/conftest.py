"""Shared fixtures: real workspaces (SQLite, PostgreSQL), a real server on loopback."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import create_engine, text

from qunflow.domain.access import TOKEN_SCOPES
from qunflow.services.tokens import create_token
from qunflow.workspace import Workspace, init_workspace
from tests.clickhouse_http import ClickHouseHTTPServer

PG_ENV = "QUNFLOW_TEST_POSTGRES_URL"
DATABASE_ENV = "QUNFLOW_DATABASE_URL"


def _loopback(address: object) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths and the like stay on this machine
        return True
    host = str(address[0])
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


def _guarded(connect: Any) -> Any:
    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
            raise AssertionError(f"a test opened a connection off the loopback, to {address!r}: tests reach "
                                 "platforms only through local servers (tests/fakes/)")
        return connect(self, address)
    return guarded


@pytest.fixture(autouse=True, scope="session")
def loopback_only() -> Iterator[None]:
    """Fails any test that connects anywhere but 127.0.0.0/8 or ::1 (the internet, a LAN, a real platform)."""
    original = socket.socket.connect, socket.socket.connect_ex
    socket.socket.connect = _guarded(original[0])  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded(original[1])  # type: ignore[method-assign]
    yield
    socket.socket.connect, socket.socket.connect_ex = original  # type: ignore[method-assign]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests (@pytest.mark.long, the property tests over every engine) first, in their own order:
    each starts with the run beside the short ones, none is left running alone at its end."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(autouse=True, scope="session")
def shared_browser() -> Iterator[None]:
    """Stops the Chromium the browser tests of this process shared (tests/e2e/browser.py)."""
    yield
    from tests.e2e.browser import close_browser

    close_browser()


def _postgres_admin_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The files of a SQLite state database at the newest schema, made once per test process: running every
    migration costs a workspace 0.12 s of CPU, a copy of this 0.02 s."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv(DATABASE_ENV, raising=False)
        ws = init_workspace(tmp_path_factory.mktemp("migrated") / "ws")
    ws.close()
    return sorted(ws.home.glob("qunflow.db*"))


@pytest.fixture
def workspace(tmp_path: Path, migrated_database: list[Path]) -> Iterator[Workspace]:
    """A fresh workspace on the embedded default (SQLite); its database starts as a copy of
    `migrated_database`, so init_workspace finds it up to date (tests of the migrations run them for real)."""
    home = tmp_path / "ws"
    if DATABASE_ENV not in os.environ:  # a test that points the workspace at PostgreSQL gets no copy
        home.mkdir()
        for path in migrated_database:
            shutil.copyfile(path, home / path.name)
    ws = init_workspace(home)
    yield ws
    ws.close()


@pytest.fixture
def pg_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    admin_url = _postgres_admin_url()
    if not admin_url:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test); "
                    ".ci/run sets it")
    from qunflow.store.db import normalise_url

    admin = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"qf_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL at {PG_ENV} is not reachable: {exc}")
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_workspace(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A fresh workspace whose state database is PostgreSQL."""
    monkeypatch.setenv(DATABASE_ENV, pg_url)
    ws = init_workspace(tmp_path / "pgws")
    yield ws
    ws.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_workspace(request: pytest.FixtureRequest) -> Workspace:
    """The same test on both state databases."""
    name = "workspace" if request.param == "sqlite" else "pg_workspace"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseHTTPServer]:
    """A ClickHouse HTTP server (chdb in a child process) on loopback; tests take a database each (fresh_url)."""
    pytest.importorskip("chdb", reason="the ClickHouse server tests need chdb: pip install -e '.[test]'")
    pytest.importorskip("clickhouse_connect", reason="the ClickHouse server tests need clickhouse-connect")
    with ClickHouseHTTPServer(tmp_path_factory.mktemp("clickhouse")) as server:
        yield server


def use_clickhouse(ws: Workspace, url: str) -> Workspace:
    """Point a workspace's analytics at a ClickHouse server."""
    ws.settings.analytics_engine = "clickhouse"
    ws.settings.clickhouse_url = url
    return ws


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    def __init__(self, ws: Workspace) -> None:
        from qunflow.web.app import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(ws), host="127.0.0.1", port=self.port, log_level="warning",
                                proxy_headers=False)  # as `qunflow serve`: the app reads trusted_proxies
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live_server(workspace: Workspace) -> Iterator[LiveServer]:
    """The real app served by uvicorn on a loopback port."""
    with LiveServer(workspace) as server:
        yield server


@pytest.fixture
def api_token(workspace: Workspace) -> str:
    return create_token(workspace.engine, "tests", sorted(TOKEN_SCOPES))
