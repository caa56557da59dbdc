"""What a Zoho notification said one update wrote, for the check after our own writes.

A channel registered with ``return_affected_field_values`` tells, for each updated record,
the fields the update changed and their new values (reference §5). Those values are the
only trace Zoho leaves of an edit that our own write then overwrote: the record itself then
shows our values, stamped with our Modified_Time and the sync user as Modified_By.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class NotifiedWrite:
    """One record's update as a notification reported it."""

    zoho_id: str
    #: Zoho's ``server_time`` of the notification (aware UTC, milliseconds kept).
    at: datetime
    #: Zoho field API name -> value as the API renders it.
    values: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"zoho_id": self.zoho_id, "at": self.at.isoformat(), "values": self.values}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NotifiedWrite:
        return cls(str(data["zoho_id"]), datetime.fromisoformat(data["at"]), dict(data["values"]))
