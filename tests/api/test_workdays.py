"""The PRC working-day clock (SPEC §9.4): holidays, adjusted working weekends, Asia/Shanghai days."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from api.workdays import SHANGHAI, CalendarUnknown, due_at, is_working_day


def _at(text: str) -> int:
    """Unix seconds of a wall-clock time in Asia/Shanghai."""
    return int(datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp())


def test_the_2026_national_day_holiday_is_skipped() -> None:
    # Opened on Wednesday 30 September; 1-7 October are off; Thursday 8 and Friday 9 count.
    assert due_at(_at("2026-09-30T10:00:00"), 2) == _at("2026-10-10T00:00:00")


def test_an_adjusted_working_saturday_counts() -> None:
    assert date(2026, 10, 10).weekday() == 5 and is_working_day(date(2026, 10, 10))
    # Opened on Thursday 8 October: Friday 9 and the working Saturday 10 count.
    assert due_at(_at("2026-10-08T09:00:00"), 2) == _at("2026-10-11T00:00:00")


def test_an_ordinary_weekend_does_not_count() -> None:
    # Friday 16 October: Saturday 17 and Sunday 18 are off; Monday 19 and Tuesday 20 count.
    assert due_at(_at("2026-10-16T09:00:00"), 2) == _at("2026-10-21T00:00:00")
    assert due_at(_at("2026-10-16T09:00:00"), 5) == _at("2026-10-24T00:00:00")


def test_a_friday_evening_before_the_spring_festival() -> None:
    # Friday 13 February 2026, 21:30: the working Saturday 14 counts, 15-23 are off, Tuesday 24 counts.
    assert due_at(_at("2026-02-13T21:30:00"), 2) == _at("2026-02-25T00:00:00")
    # The day of opening never counts, even a minute after midnight.
    assert due_at(_at("2026-02-13T00:01:00"), 2) == _at("2026-02-25T00:00:00")


def test_days_are_counted_in_asia_shanghai_not_utc() -> None:
    # 23:30 on Friday 13 February in Shanghai is still Friday; 00:30 on Saturday 14 is Saturday
    # (both are Friday in UTC), so the later one is due one working day later.
    friday, saturday = _at("2026-02-13T23:30:00"), _at("2026-02-14T00:30:00")
    assert due_at(friday, 2) == _at("2026-02-25T00:00:00")
    assert due_at(saturday, 2) == _at("2026-02-26T00:00:00")


def test_a_year_the_calendar_does_not_know_is_refused() -> None:
    with pytest.raises(CalendarUnknown, match="2027"):
        due_at(_at("2026-12-30T10:00:00"), 5)  # would run into January 2027
    with pytest.raises(CalendarUnknown):
        is_working_day(date(2003, 5, 6))


def test_zero_working_days_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        due_at(_at("2026-10-08T09:00:00"), 0)
