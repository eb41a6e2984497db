"""`qunflow serve` posts the weekly report by itself: real processes, real clock, a webhook on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from qunflow.settings import WEEKDAYS
from qunflow.web.report import chromium
from qunflow.workspace import init_workspace
from tests.access import log_in
from tests.conftest import free_port
from tests.webhook import Webhook

QUNFLOW = [sys.executable, "-c", "from qunflow.cli.main import main; main()"]


def last_week() -> str:
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    year, week, _ = (today - timedelta(weeks=1)).isocalendar()
    return f"{year}-W{week:02d}"


class Serve:
    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.process = subprocess.Popen([*QUNFLOW, "serve", "--port", str(self.port), "--workspace", str(home)],
                                        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(self.url("/healthz"), timeout=1)
                return
            except httpx.TransportError:
                assert self.process.poll() is None, self.process.stderr.read()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "qunflow serve did not start"
                time.sleep(0.2)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(20)


def wait_for(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.timeout(240)
def test_two_servers_and_a_restart_post_last_week_once(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    ws.close()
    today = WEEKDAYS[datetime.now(ZoneInfo("Asia/Shanghai")).weekday()]
    with Webhook() as hook:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUNFLOW_")}
        env.update(QUNFLOW_REPORT_WEBHOOK=hook.url, QUNFLOW_REPORT_DAY=today, QUNFLOW_REPORT_TIME="00:00",
                   QUNFLOW_REPORT_LANG="en", QUNFLOW_PUBLIC_URL="http://127.0.0.1:1")
        servers = [Serve(ws.home, env), Serve(ws.home, env)]  # two processes over one workspace
        try:
            wait_for(lambda: hook.received, 120)  # the first check runs a few seconds after start
            time.sleep(8)  # both servers have checked by now (and rendered the PDF, if one did)
        finally:
            for server in servers:
                server.stop()
        assert len(hook.received) == 1 and hook.received[0]["text"].startswith(f"qunflow weekly {last_week()}:")

        restarted = Serve(ws.home, env)
        try:
            time.sleep(8)  # past its first check
            path = f"/console/reports/{hook.received[0]['report']}"
            assert httpx.get(restarted.url(path)).status_code == 303  # the report link leads to the login
            with httpx.Client(base_url=restarted.url("")) as client:
                log_in(client, ws)
                assert client.get(path).status_code == 200
        finally:
            restarted.stop()
    assert len(hook.received) == 1
    reports = sorted(p.name for p in (ws.home / "reports").iterdir())
    assert reports == ([f"{last_week()}.html", f"{last_week()}.pdf"] if chromium() else [f"{last_week()}.html"])
    status = subprocess.run([*QUNFLOW, "report", "status", "--workspace", str(ws.home)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and f"{last_week()} │ posted" in status.stdout.replace("┃", "│")


def test_serve_refuses_a_wrong_schedule_with_one_line(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    ws.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUNFLOW_")}
    for name, value, message in [("QUNFLOW_REPORT_TIME", "9:00pm", "must be a 24-hour time like 09:00"),
                                 ("QUNFLOW_REPORT_DAY", "weekend", "must be a weekday name"),
                                 ("QUNFLOW_REPORT_WEBHOOK", "chat.example.com/hook", "must be an http(s) URL"),
                                 ("QUNFLOW_REPORT_LANG", "fr", "must be zh or en")]:
        result = subprocess.run([*QUNFLOW, "serve", "--port", str(free_port()), "--workspace", str(ws.home)],
                                env={**env, name: value}, stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 2 and result.stderr.count("\n") == 1
        assert result.stderr.startswith(f"error: {name}: ") and message in result.stderr
