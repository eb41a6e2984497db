"""The weekly report: one ISO week's join cohort, with trend against the week before."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from qunflow.engine.notifier import post_json
from qunflow.errors import InvalidInput, PlatformError
from qunflow.services.dashboard import Dashboard, build_dashboard
from qunflow.workspace import Workspace

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
HISTORY_WEEKS = 8


@dataclass(frozen=True)
class Week:
    label: str
    monday: date

    @property
    def sunday(self) -> date:
        return self.monday + timedelta(days=6)


def parse_week(text: str | None, today: date) -> Week:
    """`2026-W09`, or by default the last complete ISO week before today."""
    if text is None:
        monday = today - timedelta(days=today.weekday() + 7)
    else:
        match = WEEK.match(text)
        if not match:
            raise InvalidInput(f"week {text!r} must look like 2026-W09", zh=f"周 {text!r} 的格式应类似 2026-W09")
        try:
            monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
        except ValueError as exc:
            raise InvalidInput(f"week {text!r} does not exist", zh=f"周 {text!r} 不存在") from exc
    year, number, _ = monday.isocalendar()
    return Week(f"{year}-W{number:02d}", monday)


def weekly_board(ws: Workspace, week: Week, today: date) -> Dashboard:
    """Joins of the week, measured as of the day the report is made (`today` in the reporting zone).

    As of the week's own Sunday, M1 (7 days after a view), D7 and M5 (30 days) could never have a
    value for the week's joins; as of the day it is made, every window that has closed by then counts.
    """
    return build_dashboard(ws, week.monday, week.sunday, today,
                           history_start=week.monday - timedelta(weeks=HISTORY_WEEKS - 1))


def summary_text(board: Dashboard, week: Week, lang: str) -> str:
    """A few lines for a team chat."""
    t = board.total

    def pct(key: str) -> str:
        value = t.get(key)
        return "—" if value is None else f"{value:.1%}"

    if lang == "zh":
        return (f"qunflow 周报 {week.label}:新入群 {t.get('cohort_size', 0)},入群转化 {pct('join_conversion')},"
                f"次日留存 {pct('retention_d1')},首日任务 {pct('task_completion_d1')},"
                f"已转化 {t.get('converted', 0)}(进行中 {t.get('in_progress', 0)});统计截至 {board.as_of}")
    return (f"qunflow weekly {week.label}: {t.get('cohort_size', 0)} new members, join conversion "
            f"{pct('join_conversion')}, D1 retention {pct('retention_d1')}, Day-1 tasks "
            f"{pct('task_completion_d1')}, converted {t.get('converted', 0)} ({t.get('in_progress', 0)} in progress); "
            f"as of {board.as_of}")


def post_summary(url: str, text: str, report_name: str) -> None:
    """POST {"text": ...} (the shape Slack-, Feishu- and WeCom-style bots accept through an adapter)."""
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"webhook {url!r} must be an http(s) URL", zh=f"webhook {url!r} 须为 http(s) 地址")
    payload: dict[str, Any] = {"text": text, "report": report_name}
    error = post_json(url, payload, timeout=10)
    if error is not None:
        raise PlatformError(error, zh=f"周报推送失败:{error}")
