"""An update that overwrites no Zoho edit the sync has not merged, and sends nothing to a
record Zoho no longer has (``checked_update``).

Its own module because two writers share it: the push's updates of the module's records,
and the writes to the Contacts followed from converted leads (``sync.conversion``), which
must be guarded the same way (a write to a Contact deleted or merged away in Zoho is not
sent, and an edit made there is merged first, not overwritten).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from flask_zoho_sync.zoho.results import RecordResult
from flask_zoho_sync.zoho.timefmt import ZohoTimeFormatError, parse_datetime

#: Per-record codes that mean "try again later", not "this record is bad".
TRANSIENT_CODES = frozenset({"RECORD_LOCKED", "ALREADY_MODIFIED", "LIMIT_EXCEEDED"})

#: Zoho's answer for a record changed since the sync last read it (reference §2.3). The push
#: gives the same verdict itself when its re-read before the write shows such a change.
CHANGED_IN_ZOHO = "ALREADY_MODIFIED"

#: The verdict on an update of a record the re-read no longer finds in Zoho: Zoho's own
#: for an update of a deleted record, given without sending it.
GONE_FROM_ZOHO = "INVALID_DATA"
GONE_MESSAGE = "the record is no longer in Zoho (deleted there)"


def version_of(record: dict[str, Any]) -> datetime | None:
    try:
        return parse_datetime(record["Modified_Time"]) if record.get("Modified_Time") else None
    except ZohoTimeFormatError:
        return None


@dataclass
class WriteAnswer:
    """Zoho's verdicts on one batch, with what the re-read before it found."""

    results: list[RecordResult]
    #: Records the re-read found changed in Zoho (not sent), by Zoho id.
    moved: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The Modified_Time each sent record had when re-read, by Zoho id.
    read: dict[str, datetime] = field(default_factory=dict)


@dataclass
class Reread:
    """What the re-read before an update batch found (step 1 of ``checked_update``); a plan
    that has not read Zoho otherwise (a push-only plan) makes the same read to foresee it."""

    #: Records changed in Zoho since the version the sync holds (not sent), by Zoho id.
    moved: dict[str, dict[str, Any]]
    #: The Modified_Time of each record to be sent, by Zoho id.
    read: dict[str, datetime]
    #: Positions in the batch of the records to send.
    sending: list[int]
    #: The newest Modified_Time among them (the conditional write's condition).
    newest: datetime | None
    #: The Zoho ids the re-read did not return: Zoho no longer has them (deleted there), and
    #: would refuse their update (INVALID_DATA, "the id given seems to be invalid"); they
    #: are not sent, which saves the write's credit.
    missing: set[str]

    @classmethod
    def of(
        cls,
        client: Any,
        module: str,
        ids: list[str],
        seen: Sequence[datetime | None],
        fields: list[str],
    ) -> Reread:
        current = {
            str(record.get("id")): record for record in client.get_records(module, ids, fields)
        }
        found = cls({}, {}, [], None, set())
        for position, (zoho_id, held) in enumerate(zip(ids, seen, strict=True)):
            record = current.get(zoho_id)
            if record is None:
                found.missing.add(zoho_id)
                continue
            version = version_of(record)
            if version is not None and held is not None and version > held:
                found.moved[zoho_id] = record
                continue
            found.sending.append(position)
            if version is not None:
                found.read[zoho_id] = version
                if found.newest is None or version > found.newest:
                    found.newest = version
        return found


def checked_update(
    client: Any,
    module: str,
    payloads: list[dict[str, Any]],
    seen: Sequence[datetime | None],
    fields: list[str],
) -> WriteAnswer:
    """Update records without overwriting a Zoho edit the sync has not merged yet.

    Zoho has no transaction around a read and a write, so the window in which a Zoho user's
    edit can be overwritten is closed in two steps, both per batch (no call per record):

    1. The batch's records are re-read (one call per 100 ids) as late as possible, on the
       sending thread just before the write. A record whose Modified_Time is newer than the
       version the sync holds (``seen``) is not sent; it comes back as ``CHANGED_IN_ZOHO``
       with the record read, for the pull's merge. A record the re-read does not return is
       gone from Zoho: it is not sent either, and fails with Zoho's code for it.
    2. The write is conditional (``If-Unmodified-Since``, reference §2.3) on the newest
       Modified_Time of the records it sends: an edit that lands while the write is on its
       way makes Zoho refuse that record with ``ALREADY_MODIFIED`` instead of overwriting it.

    What remains is an edit in the same clock second as the newest record of the batch was
    last modified (Zoho's times have whole seconds); the notification check
    (``sync.inflight_check``) catches that one where a channel is registered.

    Runs on a worker thread: it touches no session, only the client and plain values.
    """
    ids = [str(payload["id"]) for payload in payloads]
    reread = Reread.of(client, module, ids, seen, fields)
    moved, read, sending, newest = reread.moved, reread.read, reread.sending, reread.newest
    results: list[RecordResult | None] = [None] * len(payloads)
    if sending:
        answers = client.update(
            module, [payloads[position] for position in sending], if_unmodified_since=newest
        )
        for position, answer in zip(sending, answers, strict=True):
            results[position] = replace(answer, index=position)
    for position, zoho_id in enumerate(ids):
        if zoho_id in reread.missing:
            results[position] = RecordResult(
                index=position,
                ok=False,
                code=GONE_FROM_ZOHO,
                status="error",
                message=GONE_MESSAGE,
                action=None,
                duplicate_field=None,
                record_id=None,
                modified_time=None,
            )
        elif zoho_id in moved:
            results[position] = RecordResult(
                index=position,
                ok=False,
                code=CHANGED_IN_ZOHO,
                status="error",
                message="changed in Zoho after the sync last read it",
                action=None,
                duplicate_field=None,
                record_id=None,
                modified_time=None,
            )
    return WriteAnswer([result for result in results if result is not None], moved, read)
