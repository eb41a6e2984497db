"""The weekly report on a schedule: post the previous ISO week's summary once per week, durably.

Each week has one row in `report_posts`. A runner claims it (a unique insert, or a guarded update of a
failed row whose backoff is over) before writing the report files, marks it `sending` right before the
webhook call and `posted` or `failed` after, so restarts and concurrent `qunflow serve` processes
post a week at most once. A runner that died mid-way leaves a stale row: still `claimed` (nothing was
sent) is taken over; `sending` (the post may have gone out) becomes `unknown` and is not retried,
so a crash never posts twice and never drops silently (status and console show it).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from qunflow.domain.schedule import due_week, next_slot, retry_delay
from qunflow.services.report import Week, post_summary, summary_text, weekly_board
from qunflow.store.tables import report_posts
from qunflow.workspace import Workspace

log = logging.getLogger("qunflow.report")

LEASE = timedelta(minutes=10)  # a claim older than this belongs to a runner that stopped
FORMATS = ("html", "pdf")
REPORTS_FOLDER = "reports"


@dataclass(frozen=True)
class ScheduleStatus:
    enabled: bool
    webhook_host: str  # the URL itself may carry a bot token: show only where it goes
    slot: str  # "monday 09:00 Asia/Shanghai"
    next_run: datetime  # local time
    next_week: str  # the week the next run posts
    due_week: str  # the week due now (posted already, or posted by the next round of `qunflow serve`)
    posts: list[dict[str, Any]]  # newest week first


def runner_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}"


def local_now(ws: Workspace) -> datetime:
    """The workspace clock (naive UTC) as naive local time in the workspace's zone."""
    return ws.clock().replace(tzinfo=UTC).astimezone(ws.settings.zone).replace(tzinfo=None)


def week_due(ws: Workspace) -> Week:
    settings = ws.settings
    monday = due_week(local_now(ws), settings.report_weekday, settings.report_clock)
    year, number, _ = monday.isocalendar()
    return Week(f"{year}-W{number:02d}", monday)


def run_scheduled_report(ws: Workspace, *, runner: str | None = None, formats: tuple[str, ...] = FORMATS) -> str:
    """One round of the schedule; returns what happened ("off", "waiting", "posted", "failed")."""
    url = ws.settings.report_webhook
    if not url:
        return "off"
    runner = runner or runner_id()
    week = week_due(ws)
    if not _claim(ws, week.label, runner):
        return "waiting"  # posted, being posted by someone else, or backing off
    try:
        text, name = _prepare(ws, week, formats)
        _set(ws, week.label, runner, status="sending")
        post_summary(url, text, name)
    except Exception as exc:  # any failure (report, network, webhook) is recorded and retried later
        _fail(ws, week.label, runner, exc)
        log.warning("weekly report %s not posted: %s", week.label, exc)
        return "failed"
    _set(ws, week.label, runner, status="posted", posted_at=ws.clock(), error=None, next_attempt_at=None)
    log.info("weekly report %s posted", week.label)
    return "posted"


def _claim(ws: Workspace, week: str, runner: str) -> bool:
    now = ws.clock()
    try:
        with ws.engine.begin() as conn:
            conn.execute(insert(report_posts).values(week=week, status="claimed", claimed_by=runner,
                                                     claimed_at=now, attempts=1))
        return True
    except IntegrityError:
        pass  # the week has a row: take it over only if it is retryable
    t = report_posts.c
    with ws.engine.begin() as conn:
        # A runner that stopped while posting: the webhook may have answered; do not post again.
        conn.execute(update(report_posts)
                     .where(t.week == week, t.status == "sending", t.claimed_at < now - LEASE)
                     .values(status="unknown", error="the runner stopped while posting; check the chat and "
                                                    "resend with `qunflow report weekly --post` if it is missing"))
        taken = conn.execute(
            update(report_posts)
            .where(t.week == week,
                   ((t.status == "failed") & (t.next_attempt_at <= now))
                   | ((t.status == "claimed") & (t.claimed_at < now - LEASE)))
            .values(status="claimed", claimed_by=runner, claimed_at=now, attempts=t.attempts + 1))
    return taken.rowcount == 1


def _set(ws: Workspace, week: str, runner: str, **values: Any) -> None:
    t = report_posts.c
    with ws.engine.begin() as conn:
        conn.execute(update(report_posts).where(t.week == week, t.claimed_by == runner).values(**values))


def _fail(ws: Workspace, week: str, runner: str, exc: Exception) -> None:
    t = report_posts.c
    with ws.engine.begin() as conn:
        attempts = conn.execute(select(t.attempts).where(t.week == week)).scalar_one()
    _set(ws, week, runner, status="failed", error=str(exc)[:1000],
         next_attempt_at=ws.clock() + retry_delay(attempts))


def _prepare(ws: Workspace, week: Week, formats: tuple[str, ...]) -> tuple[str, str]:
    """Write the report files into reports/; the summary text, with a link when public_url is set."""
    from qunflow.web.report import chromium, report_html, write_report  # rendering is the web layer's

    lang = ws.settings.report_lang
    board = weekly_board(ws, week, local_now(ws).date())
    html = report_html(board, week, lang, ws.settings.timezone)
    folder = ws.home / REPORTS_FOLDER
    folder.mkdir(exist_ok=True)
    written: list[Path] = []
    for kind in formats:
        if kind == "pdf" and chromium() is None:
            log.warning("no Chromium: the weekly report %s is written as HTML only", week.label)
            continue
        path = folder / f"{week.label}.{kind}"
        write_report(html, path)
        written.append(path)
    name = written[0].name if written else f"{week.label}.html"
    text = summary_text(board, week, lang)
    if ws.settings.public_url and written:
        link = f"{ws.settings.public_url.rstrip('/')}/console/reports/{name}"
        text += ("\n完整周报:" if lang == "zh" else "\nFull report: ") + link
    return text, name


def schedule_status(ws: Workspace, limit: int = 8) -> ScheduleStatus:
    """The schedule and its latest posts, for `qunflow report status`."""
    s = ws.settings
    with ws.engine.connect() as conn:
        rows = conn.execute(select(report_posts).order_by(report_posts.c.week.desc()).limit(limit)).mappings()
        posts = [dict(row) for row in rows]
    upcoming = next_slot(local_now(ws), s.report_weekday, s.report_clock)
    next_week = (upcoming.date() - timedelta(weeks=1)).isocalendar()
    return ScheduleStatus(bool(s.report_webhook), urlsplit(s.report_webhook).hostname or "",
                          f"{s.report_day} {s.report_time} {s.timezone}", upcoming,
                          f"{next_week.year}-W{next_week.week:02d}", week_due(ws).label, posts)


def report_problem(ws: Workspace) -> dict[str, Any] | None:
    """The newest week's post when it failed or its outcome is unknown (the console shows it)."""
    if not ws.settings.report_webhook:
        return None
    with ws.engine.connect() as conn:
        row = conn.execute(select(report_posts).order_by(report_posts.c.week.desc()).limit(1)).mappings().first()
    return dict(row) if row is not None and row["status"] in ("failed", "unknown") else None
