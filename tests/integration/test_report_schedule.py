"""The scheduled weekly report on SQLite and PostgreSQL, against a real webhook receiver on loopback.

Time is driven through the workspace clock; every "runner" is a separate Workspace (its own database
engine), as a restarted or second `qunflow serve` process would be.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import insert, select

from qunflow.services.ingest import ingest_batch
from qunflow.services.report_schedule import report_problem, run_scheduled_report, schedule_status
from qunflow.store.tables import report_posts
from qunflow.workspace import Workspace
from tests.access import log_in
from tests.conftest import LiveServer
from tests.webhook import Webhook

ZONE = ZoneInfo("Asia/Shanghai")


def utc(local: str) -> datetime:
    """A naive UTC clock reading for a Shanghai wall-clock time."""
    return datetime.fromisoformat(local).replace(tzinfo=ZONE).astimezone(UTC).replace(tzinfo=None)


class Clock:
    def __init__(self, local: str) -> None:
        self.now = utc(local)

    def set(self, local: str) -> None:
        self.now = utc(local)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def runners(any_workspace: Workspace) -> Iterator[Any]:
    """make(url, clock, **settings): a new runner on the same workspace and state database."""
    made: list[Workspace] = []

    def make(url: str, clock: Clock, **settings: Any) -> Workspace:
        values = {"report_webhook": url, "report_lang": "en", "timezone": "Asia/Shanghai", **settings}
        ws = Workspace(any_workspace.settings.model_copy(update=values), clock=clock)
        made.append(ws)
        return ws

    yield make
    for ws in made:
        ws.close()


def joins(ws: Workspace, count: int, day: str) -> None:
    batch = [{"event_id": f"j-{day}-{n}", "type": "joined", "ts": f"{day}T10:00:00+08:00",
              "member_id": f"m-{day}-{n}", "channel": "ads"} for n in range(count)]
    assert not ingest_batch(ws.engine, batch).errors


def posts(ws: Workspace) -> dict[str, dict[str, Any]]:
    with ws.engine.connect() as conn:
        return {row["week"]: dict(row) for row in conn.execute(select(report_posts)).mappings()}


def test_each_week_is_posted_once_across_rounds_and_restarts(any_workspace: Workspace, runners: Any) -> None:
    joins(any_workspace, 3, "2026-03-04")  # 2026-W10
    clock = Clock("2026-03-09 09:00")  # Monday of W11, the slot itself
    with Webhook() as hook:
        first = runners(hook.url, clock)
        assert run_scheduled_report(first, runner="a", formats=("html",)) == "posted"
        assert run_scheduled_report(first, runner="a", formats=("html",)) == "waiting"
        clock.set("2026-03-12 18:00")
        restarted = runners(hook.url, clock)  # a new process: nothing in memory
        assert run_scheduled_report(restarted, runner="b", formats=("html",)) == "waiting"
        clock.set("2026-03-16 09:01")
        assert run_scheduled_report(restarted, runner="b", formats=("html",)) == "posted"
        assert run_scheduled_report(first, runner="a", formats=("html",)) == "waiting"
    texts = [body["text"] for body in hook.received]
    assert len(texts) == 2
    assert texts[0].startswith("qunflow weekly 2026-W10: 3 new members") and "2026-W11: 0 new members" in texts[1]
    assert {week: row["status"] for week, row in posts(any_workspace).items()} == {"2026-W10": "posted",
                                                                                   "2026-W11": "posted"}


def test_two_runners_at_the_same_moment_post_a_week_once(any_workspace: Workspace, runners: Any) -> None:
    clock = Clock("2026-03-09 09:00:30")
    with Webhook(delay=0.5) as hook:  # a slow webhook keeps the first post in flight while others try
        workers = [runners(hook.url, clock) for _ in range(2)]
        outcomes: list[str] = []
        threads = [threading.Thread(target=lambda ws=ws, n=n: outcomes.append(
            run_scheduled_report(ws, runner=f"r{n}", formats=("html",)))) for n, ws in enumerate(workers * 3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sorted(outcomes) == ["posted"] + ["waiting"] * 5
    assert len(hook.received) == 1 and posts(any_workspace)["2026-W10"]["attempts"] == 1


def test_a_failing_webhook_is_retried_with_backoff_until_it_answers(any_workspace: Workspace,
                                                                    runners: Any) -> None:
    clock = Clock("2026-03-09 09:05")
    with Webhook(answers=[500, 503]) as hook:
        ws = runners(hook.url, clock)
        assert run_scheduled_report(ws, runner="a", formats=("html",)) == "failed"
        failed = posts(any_workspace)["2026-W10"]
        assert failed["status"] == "failed" and "answered 500" in failed["error"] and "bot is muted" in failed["error"]
        assert failed["next_attempt_at"] == clock.now + timedelta(minutes=1)
        assert report_problem(ws) is not None and report_problem(ws)["week"] == "2026-W10"  # type: ignore[index]
        clock.now += timedelta(seconds=59)
        assert run_scheduled_report(ws, runner="a", formats=("html",)) == "waiting"  # backing off
        clock.now += timedelta(seconds=1)
        assert run_scheduled_report(ws, runner="a", formats=("html",)) == "failed"
        assert posts(any_workspace)["2026-W10"]["next_attempt_at"] == clock.now + timedelta(minutes=2)
        clock.now += timedelta(minutes=2)
        assert run_scheduled_report(runners(hook.url, clock), runner="b", formats=("html",)) == "posted"
        assert run_scheduled_report(ws, runner="a", formats=("html",)) == "waiting"
    assert hook.statuses == [500, 503, 200] and len(hook.delivered) == 1
    done = posts(any_workspace)["2026-W10"]
    assert (done["status"], done["attempts"], done["error"], done["posted_at"]) == ("posted", 3, None, clock.now)
    assert report_problem(ws) is None


def test_an_unreachable_webhook_is_a_failure_to_retry(any_workspace: Workspace, runners: Any) -> None:
    with Webhook() as hook:
        url = hook.url  # closed when the block ends: nothing listens there any more
    ws = runners(url, Clock("2026-03-09 10:00"))
    assert run_scheduled_report(ws, runner="a", formats=("html",)) == "failed"
    assert "did not answer" in posts(any_workspace)["2026-W10"]["error"]


def test_weeks_missed_while_nothing_ran_post_only_the_latest(any_workspace: Workspace, runners: Any) -> None:
    clock = Clock("2026-03-09 09:00")
    with Webhook() as hook:
        ws = runners(hook.url, clock)
        run_scheduled_report(ws, runner="a", formats=("html",))
        clock.set("2026-04-08 12:00")  # down for four Mondays
        assert run_scheduled_report(ws, runner="a", formats=("html",)) == "posted"
        assert run_scheduled_report(ws, runner="a", formats=("html",)) == "waiting"
    assert [body["text"].split(":")[0] for body in hook.received] == ["qunflow weekly 2026-W10",
                                                                     "qunflow weekly 2026-W14"]
    assert sorted(posts(any_workspace)) == ["2026-W10", "2026-W14"]


def test_a_runner_that_stopped_mid_way_is_taken_over_only_if_nothing_was_sent(any_workspace: Workspace,
                                                                              runners: Any) -> None:
    def left_behind(week: str, status: str, at: datetime) -> None:  # what a killed process leaves
        with any_workspace.engine.begin() as conn:
            conn.execute(insert(report_posts).values(week=week, status=status, claimed_by="gone:1",
                                                     claimed_at=at - timedelta(minutes=11), attempts=1))

    clock = Clock("2026-03-09 09:30")
    with Webhook() as hook:
        ws = runners(hook.url, clock)
        left_behind("2026-W10", "sending", clock.now)  # its post may have gone out: never again
        assert run_scheduled_report(ws, runner="a", formats=("html",)) == "waiting"
        assert run_scheduled_report(ws, runner="a", formats=("html",)) == "waiting"
        clock.set("2026-03-16 09:00")
        left_behind("2026-W11", "claimed", clock.now)  # stopped before sending: take it over
        assert run_scheduled_report(ws, runner="a", formats=("html",)) == "posted"
    assert len(hook.received) == 1 and "2026-W11" in hook.received[0]["text"]
    rows = posts(any_workspace)
    assert (rows["2026-W11"]["status"], rows["2026-W11"]["attempts"]) == ("posted", 2)
    assert rows["2026-W10"]["status"] == "unknown" and "qunflow report weekly --post" in rows["2026-W10"]["error"]
    assert report_problem(ws) is None  # the newest week is fine; the status command lists W10


def test_a_fresh_claim_of_another_runner_is_left_alone(any_workspace: Workspace, runners: Any) -> None:
    clock = Clock("2026-03-09 09:00")
    with any_workspace.engine.begin() as conn:
        conn.execute(insert(report_posts).values(week="2026-W10", status="sending", claimed_by="busy:1",
                                                 claimed_at=clock.now - timedelta(minutes=9), attempts=1))
    with Webhook() as hook:
        assert run_scheduled_report(runners(hook.url, clock), runner="a", formats=("html",)) == "waiting"
    assert hook.received == [] and posts(any_workspace)["2026-W10"]["status"] == "sending"


def test_without_a_webhook_the_schedule_is_off(any_workspace: Workspace, runners: Any) -> None:
    ws = runners("", Clock("2026-03-09 09:00"))
    assert run_scheduled_report(ws) == "off" and posts(any_workspace) == {}
    assert not schedule_status(ws).enabled


def test_the_report_is_written_linked_and_served(workspace: Workspace) -> None:
    joins(workspace, 2, "2026-03-05")
    settings = workspace.settings.model_copy(update={"public_url": "https://qf.example.com/", "report_lang": "zh"})
    with Webhook() as hook:
        ws = Workspace(settings.model_copy(update={"report_webhook": hook.url}), clock=Clock("2026-03-09 09:00"))
        assert run_scheduled_report(ws, runner="a", formats=("html",)) == "posted"
        ws.close()
    text, name = hook.received[0]["text"], hook.received[0]["report"]
    assert text.startswith("qunflow 周报 2026-W10:新入群 2") and name == "2026-W10.html"
    assert text.endswith("完整周报:https://qf.example.com/console/reports/2026-W10.html")
    html = (workspace.home / "reports" / "2026-W10.html").read_text(encoding="utf-8")
    assert "社群周报 2026-W10" in html and "<svg" in html
    with LiveServer(workspace) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get("/console/reports/2026-W10.html").status_code == 303  # log in first
        log_in(client, workspace)
        served = client.get("/console/reports/2026-W10.html")
        assert served.status_code == 200 and served.text == html
        for missing in ("2026-W11.html", "..%2Fqunflow.toml", "qunflow.db"):
            assert client.get(f"/console/reports/{missing}").status_code == 404


def test_status_shows_the_schedule_and_the_posts(workspace: Workspace) -> None:
    clock = Clock("2026-03-11 15:00")  # a Wednesday
    with Webhook(answers=[500]) as hook:
        ws = Workspace(workspace.settings.model_copy(update={"report_webhook": hook.url + "?token=secret",
                                                             "report_day": "friday", "report_time": "17:30"}),
                       clock=clock)
        run_scheduled_report(ws, runner="a", formats=("html",))
        info = schedule_status(ws)
        ws.close()
    assert (info.enabled, info.webhook_host, info.slot) == (True, "127.0.0.1", "friday 17:30 Asia/Shanghai")
    assert info.next_run == datetime(2026, 3, 13, 17, 30) and info.next_week == "2026-W10"
    assert info.due_week == "2026-W09" and [p["week"] for p in info.posts] == ["2026-W09"]
    assert info.posts[0]["status"] == "failed"


def test_the_console_alerts_while_the_newest_post_has_failed(workspace: Workspace) -> None:
    clock = Clock("2026-03-09 09:00")
    with Webhook(answers=[500]) as hook:
        ws = Workspace(workspace.settings.model_copy(update={"report_webhook": hook.url}), clock=clock)
        with LiveServer(ws) as server, httpx.Client(base_url=server.url, timeout=60) as client:
            log_in(client, ws)
            assert 'id="report-problem"' not in client.get("/console?lang=en").text
            run_scheduled_report(ws, runner="a", formats=("html",))
            alert = client.get("/console?lang=en").text
            assert 'id="report-problem"' in alert and "2026-W10 was not posted" in alert and "answered 500" in alert
            assert "周报 2026-W10 未能发送" in client.get("/console?lang=zh").text
            clock.now += timedelta(minutes=1)
            assert run_scheduled_report(ws, runner="a", formats=("html",)) == "posted"
            assert 'id="report-problem"' not in client.get("/console?lang=en").text
        ws.close()
