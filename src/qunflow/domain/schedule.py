"""Calendar arithmetic on local (workspace time zone) days and times: when the weekly report is due, and
the YYYY-MM-DD days that commands and query strings name."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from qunflow.errors import InvalidInput

# Days and times from outside are held to these years: far enough for any community's history, and far
# enough from datetime's limits (years 1 and 9999) that a period, a time zone or a retention window added
# to them cannot overflow (an overflow was a 500).
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2999, 12, 31)
DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?$"


def parse_day(value: str | None, name: str) -> date | None:
    """A YYYY-MM-DD day from a query string or option (None when absent), or InvalidInput naming `name`."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value) if re.fullmatch(DAY_PATTERN, value) else None
    except ValueError:
        day = None
    if day is None:
        raise InvalidInput(f"{name} must be a date like 2026-01-31, got {value[:40]!r}",
                           zh=f"{name} 须为日期,例如 2026-01-31;收到的是 {value[:40]!r}")
    return _in_range(day, name)


def parse_utc_time(value: str | None, name: str) -> datetime | None:
    """An ISO time (`2026-01-31T09:00:00Z`; no offset means UTC) as naive UTC, None when absent, or
    InvalidInput naming `name`."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value) if re.fullmatch(TIME_PATTERN, value) else None
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidInput(f"{name} must be a time like 2026-01-31T09:00:00Z, got {value[:40]!r}",
                           zh=f"{name} 须为时间,例如 2026-01-31T09:00:00Z;收到的是 {value[:40]!r}")
    _in_range(moment.date(), name)
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _in_range(day: date, name: str) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput(f"{name} must be between {FIRST_DAY} and {LAST_DAY}, got {day}",
                           zh=f"{name} 须在 {FIRST_DAY} 到 {LAST_DAY} 之间,收到的是 {day}")
    return day


FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)


def last_slot(now: datetime, weekday: int, at: time) -> datetime:
    """The latest scheduled moment (weekday, at) not after `now` (all naive local times)."""
    days_back = (now.weekday() - weekday) % 7
    slot = datetime.combine(now.date() - timedelta(days=days_back), at)
    return slot if slot <= now else slot - timedelta(weeks=1)


def next_slot(now: datetime, weekday: int, at: time) -> datetime:
    """The first scheduled moment after `now`."""
    return last_slot(now, weekday, at) + timedelta(weeks=1)


def due_week(now: datetime, weekday: int, at: time) -> date:
    """The Monday of the ISO week to post at `now`: the week before the latest slot's week.

    Only the latest slot counts, so weeks missed while nothing ran are not posted afterwards.
    """
    slot = last_slot(now, weekday, at).date()
    return slot - timedelta(days=slot.weekday() + 7)


def retry_delay(attempts: int) -> timedelta:
    """Backoff after the n-th failed attempt: 1, 2, 4 ... minutes, at most an hour."""
    return min(FIRST_RETRY * 2 ** min(max(attempts - 1, 0), 10), LONGEST_RETRY)
