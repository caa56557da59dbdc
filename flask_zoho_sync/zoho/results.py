"""What Zoho said about each record of a write, and about each deleted record.

Zoho answers a multi-record write with one ``data[]`` element per input record, in input
order, whatever the HTTP status (reference §2.4, §2.6, §4.4). These value objects are the
client's reading of one such element; the engine stores ``record_id`` and
``modified_time`` as its echo-suppression marker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .timefmt import ZohoTimeFormatError, parse_datetime


@dataclass(frozen=True)
class RecordResult:
    """Zoho's verdict on one record of a write or delete.

    ``index`` is the record's position in the caller's list (not in the HTTP chunk), so
    callers can zip results with their input however the client split it.
    """

    index: int
    ok: bool
    code: str | None
    status: str | None
    message: str | None
    action: str | None  # "insert" | "update" (upsert only) | None
    duplicate_field: str | None
    record_id: str | None
    modified_time: datetime | None  # aware UTC
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_element(cls, index: int, element: Any) -> RecordResult:
        """Read one ``data[]`` element; tolerant of missing keys because failed elements
        carry fewer of them than successful ones."""
        if not isinstance(element, dict):
            element = {}
        details = element.get("details") if isinstance(element.get("details"), dict) else {}
        code = element.get("code")
        status = element.get("status")
        ok = code == "SUCCESS" or (code is None and status == "success")
        record_id = details.get("id") if ok else None
        action = element.get("action")
        duplicate_field = element.get("duplicate_field")
        message = element.get("message")
        return cls(
            index=index,
            ok=ok,
            code=code if isinstance(code, str) else None,
            status=status if isinstance(status, str) else None,
            message=message if isinstance(message, str) else None,
            action=action if action in ("insert", "update") else None,
            duplicate_field=duplicate_field if isinstance(duplicate_field, str) else None,
            record_id=str(record_id) if record_id is not None else None,
            modified_time=_optional_datetime(details.get("Modified_Time")),
            details=dict(details),
        )


@dataclass(frozen=True)
class DeletedRecord:
    """One entry of ``GET /{module}/deleted``.

    ``display_name`` and ``deleted_by`` are null for permanent deletions (reference §2.8).
    """

    id: str
    type: str
    deleted_time: datetime | None  # aware UTC
    display_name: str | None
    deleted_by: dict[str, Any] | None

    @classmethod
    def from_element(cls, element: dict[str, Any]) -> DeletedRecord:
        deleted_by = element.get("deleted_by")
        return cls(
            id=str(element["id"]),
            type=str(element.get("type") or ""),
            deleted_time=_optional_datetime(element.get("deleted_time")),
            display_name=element.get("display_name"),
            deleted_by=deleted_by if isinstance(deleted_by, dict) else None,
        )


def _optional_datetime(value: Any) -> datetime | None:
    """Parse a Zoho datetime, or None: a bad timestamp on one element must not cost the
    caller the verdicts on the other 99 records of the batch."""
    if not value:
        return None
    try:
        return parse_datetime(value)
    except ZohoTimeFormatError:
        return None
