"""The PRC working-day calendar for the service clocks of SPEC §9.4 and 9.5.

Working days follow the State Council's yearly holiday notice (statutory holidays off, adjusted
weekend working days on), counted in Asia/Shanghai, from the ``chinese-calendar`` package. The
package knows the years for which a notice has been published; for any other year this module
refuses (:class:`CalendarUnknown`) rather than guess, since a guessed deadline could be wrong by a
whole holiday week.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

SHANGHAI = ZoneInfo("Asia/Shanghai")


class CalendarUnknown(Exception):
    """The calendar has no State Council data for the year a clock needs."""


def is_working_day(day: date) -> bool:
    """Whether ``day`` is a PRC working day (adjusted weekend working days included)."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        raise CalendarUnknown(
            f"the working-day calendar has no data for {day.year}; update the chinese-calendar package"
        ) from None


def local_day(at: int) -> date:
    """The Asia/Shanghai calendar day of the Unix time ``at``."""
    return datetime.fromtimestamp(at, SHANGHAI).date()


def due_at(opened_at: int, working_days: int) -> int:
    """The end (24:00 Asia/Shanghai) of the ``working_days``-th working day after the day of ``opened_at``.

    The day of opening never counts, whatever the hour, so a request opened on a Friday evening
    before a holiday is due at the end of the second working day after the holiday begins.
    """
    if working_days < 1:
        raise ValueError("working_days must be at least 1")
    day = local_day(opened_at)
    counted = 0
    while counted < working_days:
        day += timedelta(days=1)
        if is_working_day(day):
            counted += 1
    return int(datetime.combine(day + timedelta(days=1), time(0), SHANGHAI).timestamp())


def shanghai_iso(at: int | None) -> str:
    """``at`` as an ISO 8601 time in Asia/Shanghai (empty for None), for people and CSV."""
    return "" if at is None else datetime.fromtimestamp(at, SHANGHAI).isoformat()
