"""Accounting periods: calendar months keyed YYYYMM (SPEC §4)."""

from __future__ import annotations

import calendar
import re
from datetime import date

_PERIOD = re.compile(r"^(\d{4})(0[1-9]|1[0-2])$")


class InvalidPeriod(ValueError):
    pass


def parse_period(value: str | int) -> int:
    """'202501' or 202501 → 202501; anything else raises with a message that shows the expected form."""
    text = str(value).strip()
    m = _PERIOD.match(text)
    if not m or int(m.group(1)) < 1900:
        raise InvalidPeriod(f"{value!r} is not a period: write it as YYYYMM, e.g. 202501 for January 2025")
    return int(text)


def next_period(period: int) -> int:
    y, m = divmod(period, 100)
    return (y + 1) * 100 + 1 if m == 12 else period + 1


def previous_period(period: int) -> int:
    y, m = divmod(period, 100)
    return (y - 1) * 100 + 12 if m == 1 else period - 1


def last_day(period: int) -> date:
    y, m = divmod(period, 100)
    return date(y, m, calendar.monthrange(y, m)[1])


def label(period: int) -> str:
    """202501 → '2025-01' (journal entry names, descriptions)."""
    return f"{period // 100:04d}-{period % 100:02d}"
