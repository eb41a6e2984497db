"""CLI failures are one line on stderr with exit code 2, never a traceback (issue 12): a missing output folder,
a port out of range or taken, an unreachable database; `entry qr` while public_url is this machine; `serve`
says where the console is."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qunflow.cli.main import app
from tests.conftest import free_port

runner = CliRunner()
QUNFLOW = [sys.executable, "-c", "from qunflow.cli.main import main; main()"]


def invoke(ws: Path, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [*args, "--workspace", str(ws)], env=env)


def one_line_refusal(result, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws)]).exit_code == 0
    assert invoke(ws, "channel", "add", "web", "--kind", "website").exit_code == 0
    assert invoke(ws, "entry", "add", "site", "--channel", "web").exit_code == 0
    return ws


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


PUBLIC = {"QUNFLOW_PUBLIC_URL": "https://join.example.com"}


def test_entry_qr_into_a_missing_folder_is_one_line(home: Path, tmp_path: Path) -> None:
    one_line_refusal(invoke(home, "entry", "qr", "site", "-o", str(tmp_path / "missing" / "x.png"), env=PUBLIC),
                     "does not exist")
    assert not (tmp_path / "missing").exists()


def test_entry_qr_refuses_a_loopback_public_url_unless_allowed(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "site.png"
    one_line_refusal(invoke(home, "entry", "qr", "site", "-o", str(out)), "public_url", "--allow-loopback")
    assert not out.exists()
    one_line_refusal(invoke(home, "entry", "qr", "site", "-o", str(out),
                            env={"QUNFLOW_PUBLIC_URL": "http://localhost:8000"}), "public_url")
    assert invoke(home, "entry", "qr", "site", "-o", str(out), "--allow-loopback").exit_code == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    out.unlink()
    assert invoke(home, "entry", "qr", "site", "-o", str(out), env=PUBLIC).exit_code == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_other_output_files_in_missing_folders_are_one_line(home: Path, tmp_path: Path) -> None:
    one_line_refusal(invoke(home, "report", "weekly", "--out", str(tmp_path / "nope" / "r.html")), "nope")


def test_serve_refuses_a_port_out_of_range(home: Path) -> None:
    one_line_refusal(invoke(home, "serve", "--port", "99999"), "--port")
    one_line_refusal(invoke(home, "serve", "--port", "0"), "--port")


def test_serve_refuses_a_busy_port_at_once(home: Path, busy_port: int) -> None:
    one_line_refusal(invoke(home, "serve", "--port", str(busy_port)), str(busy_port), "in use")


def test_an_unreachable_database_is_one_line_without_its_password(home: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    url = f"postgresql://qunflow:s3cret-pw@127.0.0.1:{closed}/qunflow"
    result = invoke(home, "group", "list", env={"QUNFLOW_DATABASE_URL": url})
    one_line_refusal(result, "cannot open the database", str(closed))
    assert "s3cret-pw" not in result.stderr
    sqlite = invoke(home, "entry", "list", env={"QUNFLOW_DATABASE_URL": "sqlite:////no/such/folder/q.db"})
    one_line_refusal(sqlite, "cannot open the database")


def test_demo_with_a_busy_port_fails_before_simulating(tmp_path: Path, busy_port: int) -> None:
    started = time.monotonic()
    result = subprocess.run([*QUNFLOW, "demo", "--port", str(busy_port)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "in use" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 30  # not after minutes of simulation
    assert not (tmp_path / "qunflow-demo").exists()


def test_serve_prints_the_console_url(home: Path) -> None:
    port = free_port()
    process = subprocess.Popen([*QUNFLOW, "serve", "--port", str(port), "--workspace", str(home)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert f"http://127.0.0.1:{port}/console" in first
