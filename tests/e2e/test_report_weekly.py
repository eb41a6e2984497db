"""`qunflow report weekly`: HTML and PDF with the dashboard's numbers, and a summary posted to a webhook."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.services.report import parse_week
from qunflow.sim.demo import Simulation
from qunflow.web.report import chromium
from qunflow.workspace import Workspace

runner = CliRunner()


@pytest.fixture(scope="module")
def community(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    from qunflow.workspace import init_workspace

    ws = init_workspace(tmp_path_factory.mktemp("report") / "ws")
    Simulation(ws, days=21, seed=5).run()
    return ws


def invoke(ws: Workspace, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["report", "weekly", *args, "--workspace", str(ws.home)])


def test_html_report_in_both_languages(community: Workspace, tmp_path: Path) -> None:
    zh, en = tmp_path / "zh.html", tmp_path / "en.html"
    assert invoke(community, "--out", str(zh)).exit_code == 0
    assert invoke(community, "--out", str(en), "--lang", "en").exit_code == 0
    html = en.read_text()
    assert "Community weekly report" in html and "<svg" in html and "M1 join conversion" in html
    assert "http" not in html.split("<body>")[0]  # nothing loaded from elsewhere: CSS is inline
    assert "社群周报" in zh.read_text()


def test_pdf_report_is_printed_by_chromium(community: Workspace, tmp_path: Path) -> None:
    if chromium() is None:
        pytest.skip("a PDF report needs Chromium: apt-get install chromium")
    out = tmp_path / "week.pdf"
    result = invoke(community, "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes()[:5] == b"%PDF-" and out.stat().st_size > 10_000


def test_summary_is_posted_to_a_webhook(community: Workspace, tmp_path: Path) -> None:
    received: list[dict] = []  # type: ignore[type-arg]

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    result = invoke(community, "--out", str(tmp_path / "w.html"), "--lang", "en", "--post", url)
    thread.join(10)
    server.server_close()
    assert result.exit_code == 0, result.stderr
    assert received and received[0]["text"].startswith("qunflow weekly ") and "new members" in received[0]["text"]


def test_bad_report_input_exits_2(community: Workspace, tmp_path: Path) -> None:
    assert invoke(community, "--out", str(tmp_path / "w.docx")).exit_code == 2
    assert invoke(community, "--out", str(tmp_path / "w.html"), "--week", "2026-13").exit_code == 2
    assert invoke(community, "--out", str(tmp_path / "w.html"), "--week", "2026-W54").exit_code == 2
    assert invoke(community, "--out", str(tmp_path / "w.html"), "--lang", "fr").exit_code == 2
    assert invoke(community, "--out", str(tmp_path / "x.html"), "--post", "ftp://x").exit_code == 2


def test_default_week_is_the_last_complete_one() -> None:
    from datetime import date

    assert parse_week(None, date(2026, 3, 4)).label == "2026-W09"  # a Wednesday in W10
    assert parse_week("2026-W01", date(2026, 3, 4)).monday == date(2025, 12, 29)


def test_report_status_shows_the_schedule_and_a_failed_post(workspace: Workspace,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from qunflow.services.report_schedule import run_scheduled_report
    from qunflow.workspace import open_workspace
    from tests.webhook import Webhook

    status = runner.invoke(app, ["report", "status", "--workspace", str(workspace.home)])
    assert status.exit_code == 0 and "schedule: off" in status.stdout
    with Webhook(answers=[502]) as hook:
        monkeypatch.setenv("QUNFLOW_REPORT_WEBHOOK", hook.url + "?key=bot-secret")
        monkeypatch.setenv("QUNFLOW_REPORT_DAY", "tuesday")
        ws = open_workspace(workspace.home)
        ws.clock = lambda: datetime(2026, 3, 10, 2, 0, tzinfo=UTC).replace(tzinfo=None)  # Tue 10:00 Shanghai
        assert run_scheduled_report(ws, runner="t", formats=("html",)) == "failed"
        ws.close()
    status = runner.invoke(app, ["report", "status", "--workspace", str(workspace.home)])
    assert status.exit_code == 0, status.stderr
    out = status.stdout
    assert "every tuesday 09:00 Asia/Shanghai, posted to 127.0.0.1" in out and "bot-secret" not in out
    assert "2026-W10" in out and "failed" in out and "answered 502" in out


@pytest.mark.parametrize("line, message", [
    ('report_day = "Montag"', "setting report_day: 'Montag' must be a weekday name"),
    ('report_time = "24:00"', "setting report_time: '24:00' must be a 24-hour time like 09:00"),
    ('report_webhook = "hooks.example.com"', "setting report_webhook: 'hooks.example.com' must be an http(s) URL"),
    ('report_lang = "ja"', "setting report_lang: 'ja' must be zh or en"),
])
def test_a_wrong_schedule_in_the_settings_file_is_one_line_and_exit_2(workspace: Workspace, line: str,
                                                                      message: str) -> None:
    path = workspace.home / "qunflow.toml"
    key = line.split(" =")[0]
    text = "".join(line + "\n" if old.startswith(key + " =") else old for old in path.read_text().splitlines(True))
    assert line in text
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["report", "status", "--workspace", str(workspace.home)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and message in result.stderr
