"""Zoho's date and time formats, in one place.

Zoho writes DateTime values as ``yyyy-MM-ddTHH:mm:ss±HH:mm`` in the API user's time zone,
with no milliseconds, and rejects input without an offset (reference §8). The same format is
used for ``If-Modified-Since``. Everything the sync compares or stores as a watermark is an
aware UTC datetime; these helpers are the only place where strings and instants meet.
"""

from __future__ import annotations

from datetime import date, datetime, timezone, tzinfo

UTC = timezone.utc


class ZohoTimeFormatError(ValueError):
    """A date or datetime string that is not in Zoho's format."""


def format_datetime(moment: datetime, zone: tzinfo | None = None) -> str:
    """Write an aware datetime as Zoho expects it, optionally shown in ``zone``.

    Naive datetimes are refused: which zone they were meant in is exactly the question that
    causes skipped or duplicated records in incremental syncs (lessons-from-peers §4.4).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ZohoTimeFormatError(
            f"{moment!r} has no time zone; attach one before sending it to Zoho"
        )
    if zone is not None:
        moment = moment.astimezone(zone)
    return moment.replace(microsecond=0).isoformat()


def parse_datetime(text: str) -> datetime:
    """Read a Zoho DateTime into an aware UTC datetime."""
    if not isinstance(text, str):
        raise ZohoTimeFormatError(f"expected a datetime string, got {type(text).__name__}")
    candidate = text.strip()
    if candidate.endswith("Z"):
        candidate = candidate[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError as exc:
        raise ZohoTimeFormatError(f"{text!r} is not an ISO 8601 datetime") from exc
    if moment.tzinfo is None:
        raise ZohoTimeFormatError(f"{text!r} has no UTC offset; Zoho always sends one")
    return moment.astimezone(UTC)


def format_date(day: date) -> str:
    """Write a Zoho Date (``yyyy-MM-dd``)."""
    if isinstance(day, datetime):
        day = day.date()
    return day.isoformat()


def parse_date(text: str) -> date:
    """Read a Zoho Date (``yyyy-MM-dd``)."""
    try:
        return date.fromisoformat(str(text).strip()[:10])
    except ValueError as exc:
        raise ZohoTimeFormatError(f"{text!r} is not a yyyy-MM-dd date") from exc


def utc_now() -> datetime:
    """Now as an aware UTC datetime (the one clock the sync compares against)."""
    return datetime.now(UTC)
