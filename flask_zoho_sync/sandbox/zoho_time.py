"""Zoho's date and time formats as Zoho's server reads and writes them.

Written from the reference (zoho-crm-api.md §2.2, §6.1, §6.2, §8) and deliberately not shared
with the client (``flask_zoho_sync/zoho/timefmt.py``): the sandbox exists to hold the client
to Zoho's format, and a parser both sides shared would let one mistake pass on both.
tests/sandbox/test_formats_agree.py runs the same inputs through both readings.

What Zoho's server takes, and so what the sandbox takes, for a DateTime (field values,
``If-Modified-Since``/``If-Unmodified-Since``, ``channel_expiry``, bulk-read criteria):

* ``yyyy-MM-ddTHH:mm:ss`` followed by an offset ``±HH:mm``; any offset names an instant.
* No offset is refused (``INVALID_DATA``, §8): a wall-clock time is no instant.
* No fractional seconds: Zoho's format has none (§8), and bulk-read criteria say outright
  that milliseconds are not supported (§6.1). Missing seconds are refused for the same reason.
* ``Z`` is read as ``+00:00``. Zoho never writes it, but it is ISO 8601's spelling of the zero
  offset and the reference says only that an offset is required; refusing it would be a rule
  the reference does not give.

What Zoho writes: the same shape, in the org's (here: API user's) zone, whole seconds, never
``Z`` (``+00:00`` for UTC), so the same instant can come back with a different offset.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone, tzinfo

UTC = timezone.utc

#: ``yyyy-MM-ddTHH:mm:ss±HH:mm`` (or ``Z``), nothing more, nothing less.
_ZOHO_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:(Z)|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_ZOHO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
#: Real offsets run from -12:00 to +14:00; the widest any time library accepts is ±18:00.
_MAX_OFFSET = timedelta(hours=18)


class ZohoTimeRefused(ValueError):
    """A value Zoho would refuse as a DateTime or Date; ``reason`` says which rule it broke."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(f"{value!r} is not a Zoho {reason}")
        self.value = value
        self.reason = reason


def parse_datetime(text: object) -> datetime:
    """Read a DateTime the way Zoho's server does; the result is aware, in the given offset."""
    if not isinstance(text, str):
        raise ZohoTimeRefused(text, "datetime")
    match = _ZOHO_DATETIME.fullmatch(text)
    if match is None:
        raise ZohoTimeRefused(text, "datetime")
    if match.group(7):
        raise ZohoTimeRefused(text, "datetime without milliseconds")
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    if match.group(8):
        offset = timedelta(0)
    else:
        sign = -1 if match.group(9) == "-" else 1
        hours, minutes = int(match.group(10)), int(match.group(11))
        if minutes > 59:
            raise ZohoTimeRefused(text, "datetime")
        offset = sign * timedelta(hours=hours, minutes=minutes)
        if abs(offset) > _MAX_OFFSET:
            raise ZohoTimeRefused(text, "datetime")
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError:  # 2026-02-30, 24:00:00, a leap second...
        raise ZohoTimeRefused(text, "datetime") from None


def format_datetime(moment: datetime, zone: tzinfo) -> str:
    """Write an instant as Zoho does: in ``zone``, whole seconds, ``±HH:mm`` (never ``Z``)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("an instant needs a time zone; a naive datetime names none")
    local = moment.astimezone(zone).replace(microsecond=0)
    offset = local.utcoffset() or timedelta(0)
    if offset.total_seconds() % 60:
        # Local mean time (Amsterdam before 1937 was +00:19:32) fits no ``±HH:mm``; cutting
        # the seconds would name another instant, so say the same instant in UTC instead.
        local, offset = moment.astimezone(UTC).replace(microsecond=0), timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{local:%Y-%m-%dT%H:%M:%S}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def parse_date(text: object) -> date:
    """Read a Date field value: ``yyyy-MM-dd`` exactly (§8), a real calendar day."""
    if not isinstance(text, str):
        raise ZohoTimeRefused(text, "date")
    match = _ZOHO_DATE.fullmatch(text)
    if match is None:
        raise ZohoTimeRefused(text, "date")
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError:
        raise ZohoTimeRefused(text, "date") from None


def format_date(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}"


def parse_bulk_csv_datetime(text: str, zone: tzinfo) -> datetime:
    """A Bulk Write CSV date-time in Zoho's default ``MM/dd/yyyy HH:mm:ss``, read in ``zone``
    (§6.2): the cell carries no offset, so the org's zone supplies it. In the hour a DST
    change repeats, the earlier reading wins, as a wall clock read forwards would say."""
    try:
        wall = datetime.strptime(text, "%m/%d/%Y %H:%M:%S")
    except ValueError:
        raise ZohoTimeRefused(text, "bulk write datetime (MM/dd/yyyy HH:mm:ss)") from None
    return wall.replace(tzinfo=zone, fold=0)


def parse_bulk_csv_date(text: str) -> date:
    """A Bulk Write CSV date in Zoho's default ``MM/dd/yyyy`` (§6.2)."""
    try:
        return datetime.strptime(text, "%m/%d/%Y").date()
    except ValueError:
        raise ZohoTimeRefused(text, "bulk write date (MM/dd/yyyy)") from None


def parse_control_instant(text: object) -> datetime:
    """An instant given to the sandbox's own control API (not Zoho's wire): any ISO 8601
    instant Python reads, fractions included, as long as it names its offset."""
    try:
        moment = datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise ZohoTimeRefused(text, "ISO 8601 instant") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ZohoTimeRefused(text, "ISO 8601 instant with an offset")
    return moment
