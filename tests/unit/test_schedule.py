"""When the weekly report is due (local times; Monday is weekday 0)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from qunflow.domain.schedule import due_week, last_slot, next_slot, retry_delay

NINE = time(9, 0)


def test_the_previous_iso_week_is_due_from_monday_nine_oclock() -> None:
    # 2026-03-09 is the Monday of 2026-W11; the week before (W10) starts on 2026-03-02.
    assert due_week(datetime(2026, 3, 9, 9, 0), 0, NINE) == date(2026, 3, 2)
    assert due_week(datetime(2026, 3, 15, 23, 59), 0, NINE) == date(2026, 3, 2)  # all week long
    # One minute before the slot, the slot that counts is the Monday before: W09 is (still) due.
    assert due_week(datetime(2026, 3, 9, 8, 59), 0, NINE) == date(2026, 2, 23)


def test_a_friday_slot_reports_the_full_week_before_its_own() -> None:
    assert due_week(datetime(2026, 3, 13, 18, 0), 4, time(17, 30)) == date(2026, 3, 2)
    assert due_week(datetime(2026, 3, 13, 17, 0), 4, time(17, 30)) == date(2026, 2, 23)


def test_after_weeks_of_downtime_only_the_latest_week_is_due() -> None:
    assert due_week(datetime(2026, 4, 8, 12, 0), 0, NINE) == date(2026, 3, 30)


def test_weeks_across_a_year_end() -> None:
    assert due_week(datetime(2027, 1, 4, 9, 0), 0, NINE) == date(2026, 12, 28)  # 2026-W53
    assert date(2026, 12, 28).isocalendar()[:2] == (2026, 53)


def test_next_slot_is_strictly_after_now() -> None:
    assert next_slot(datetime(2026, 3, 9, 9, 0), 0, NINE) == datetime(2026, 3, 16, 9, 0)
    assert next_slot(datetime(2026, 3, 9, 8, 59), 0, NINE) == datetime(2026, 3, 9, 9, 0)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
       st.integers(0, 6), st.times())
def test_slots_bracket_now_and_the_due_week_ends_before_the_slot(now: datetime, weekday: int, at: time) -> None:
    last, upcoming = last_slot(now, weekday, at), next_slot(now, weekday, at)
    assert last <= now < upcoming and upcoming - last == timedelta(weeks=1)
    assert last.weekday() == weekday and last.time() == at
    monday = due_week(now, weekday, at)
    assert monday.weekday() == 0 and monday + timedelta(days=7) <= last.date() < monday + timedelta(days=14)


def test_retries_back_off_from_a_minute_to_at_most_an_hour() -> None:
    delays = [retry_delay(n) for n in (1, 2, 3, 7, 8, 1000)]  # the 7th would be 64 minutes
    assert delays[:3] == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert delays[3:] == [timedelta(hours=1)] * 3
