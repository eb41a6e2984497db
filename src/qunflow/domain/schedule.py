"""Calendar arithmetic on local (workspace time zone) days and times: when the weekly report is due, and
the YYYY-MM-DD days that commands and query strings name."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from qunflow.errors import InvalidInput


def parse_day(value: str | None, name: str) -> date | None:
    """A YYYY-MM-DD day from a query string or option (None when absent), or InvalidInput naming `name`."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a date like 2026-01-31, got {value[:40]!r}") from None


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
