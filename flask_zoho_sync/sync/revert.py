"""Taking a run back: what its history rows say it changed, checked against today's values.

A run's history rows carry, under :data:`UNDO_KEY`, the canonical values each record held
before the run wrote it and the values the run wrote (``undo_values``). A revert puts the
before-values back on the side the run wrote, field by field, and only where that side
still holds what the run wrote (the three-way check): a value changed again since, by a
person or a later run, is newer knowledge than the run's and is listed as skipped, with
both values, instead of being clobbered.

Each side is reverted where the run wrote it: a pull's changes in the host, a push's in
Zoho. What the revert writes is then an edit on that side like any other, and the next
sync carries it across, so the pair converges on the values from before the run.

Records the run deleted come back on the side it deleted them: a contact from its stored
values, a Zoho record re-created from its last synced values (the sync links them again
on its next pass). A record that has come back since (the same email in the host, the
same id in Zoho) is not made twice.

Here is the algorithm only: no database, no Flask. ``flask_zoho_sync.undo`` reads the
history and today's values, and writes what :func:`plan_revert` decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from typing import Any

from flask_zoho_sync.sync.mapping import Mapping

#: Key of a history row's ``changes`` holding ``{"before": {...}, "after": {...}}``:
#: canonical values by mapping key, as the run found and left the side it wrote.
UNDO_KEY = "undo"

#: What a revert row's ``trigger`` starts with; the reverted run's id follows.
REVERT_TRIGGER = "revert:"


def undo_values(
    before: MappingABC[str, Any] | None, after: MappingABC[str, Any] | None
) -> dict[str, Any]:
    """The values a history row keeps so that its change can be taken back.

    ``before`` None means the record did not exist before (a create); ``after`` None means
    it does not exist after (a delete). Values are canonical, so JSON can hold them.
    """
    return {
        "before": None if before is None else dict(before),
        "after": None if after is None else dict(after),
    }


@dataclass(frozen=True)
class HistoryEntry:
    """One history row of the run being reverted, as plain values."""

    id: int
    direction: str  # to_host | to_zoho
    action: str  # create | update | delete | link | error
    contact_id: str | None
    zoho_id: str | None
    changes: MappingABC[str, Any]

    @property
    def undo(self) -> MappingABC[str, Any] | None:
        value = self.changes.get(UNDO_KEY) if isinstance(self.changes, MappingABC) else None
        return value if isinstance(value, MappingABC) else None


@dataclass(frozen=True)
class SkippedField:
    """A field changed again since the run: left as it is now."""

    key: str
    wrote: Any
    current: Any


@dataclass
class RecordRevert:
    """What the revert does to one record.

    ``action`` is ``update`` (put ``values`` back), ``create`` (bring a deleted record back
    with ``values``) or ``skip`` (nothing: ``reason`` says why).
    """

    direction: str
    action: str
    contact_id: str | None
    zoho_id: str | None
    values: dict[str, Any] = field(default_factory=dict)
    skipped: list[SkippedField] = field(default_factory=list)
    reason: str | None = None
    history_id: int | None = None


@dataclass
class RevertPlan:
    """Everything a revert does, record by record; the preview shows exactly this."""

    records: list[RecordRevert] = field(default_factory=list)
    #: History rows of the run that a revert leaves as they are, and why, by kind.
    not_revertible: dict[str, int] = field(default_factory=dict)

    def of(self, direction: str, action: str) -> list[RecordRevert]:
        return [
            record
            for record in self.records
            if record.direction == direction and record.action == action
        ]

    @property
    def writes(self) -> int:
        return sum(1 for record in self.records if record.action in ("update", "create"))


@dataclass(frozen=True)
class CurrentValues:
    """Today's values of the records the run touched, read by the caller.

    ``host`` and ``zoho`` map a contact id / Zoho id to canonical values, or to None when
    the record no longer exists. ``host_emails`` are the (lower-cased) emails of host
    contacts that exist today, for records the run deleted.
    """

    host: MappingABC[str, MappingABC[str, Any] | None]
    zoho: MappingABC[str, MappingABC[str, Any] | None]
    host_emails: frozenset[str] = frozenset()
    #: The mapping key of the host's email field (the one bound to Zoho's Email).
    email_key: str | None = None
    #: Zoho ids the sync holds as deleted in the module it syncs now (its tombstones): a
    #: record the run deleted in another module (the module was switched since) is not
    #: re-created in this one. None: not known, every record qualifies.
    buried: frozenset[str] | None = None


def _writes_fields(entry: HistoryEntry) -> bool:
    """An update, or a pull's link of an existing contact (it wrote Zoho's values)."""
    return entry.action == "update" or (entry.action == "link" and entry.direction == "to_host")


def needed_ids(entries: Iterable[HistoryEntry]) -> tuple[list[str], list[str]]:
    """The contact ids and Zoho ids whose current values the revert must read."""
    contacts: dict[str, None] = {}
    records: dict[str, None] = {}
    for entry in entries:
        if entry.undo is None or not _writes_fields(entry):
            continue
        if entry.direction == "to_host" and entry.contact_id:
            contacts[entry.contact_id] = None
        elif entry.direction == "to_zoho" and entry.zoho_id:
            records[entry.zoho_id] = None
    return list(contacts), list(records)


def email_key(mapping: Mapping) -> str | None:
    """The mapping key of the host field bound to Zoho's Email, if any."""
    for binding in mapping.active_bindings():
        if binding.zoho_api_name == "Email":
            return binding.key
    return None


def deleted_emails(entries: Iterable[HistoryEntry], key: str | None) -> list[str]:
    """Emails of the contacts the run deleted in the host (to find any that came back)."""
    emails: list[str] = []
    if key is None:
        return emails
    for entry in entries:
        undo = entry.undo
        if entry.direction == "to_host" and entry.action == "delete" and undo:
            email = (undo.get("before") or {}).get(key)
            if isinstance(email, str) and email.strip():
                emails.append(email.strip().lower())
    return emails


def plan_revert(
    entries: Iterable[HistoryEntry], current: CurrentValues, mapping: Mapping
) -> RevertPlan:
    """Decide, record by record, what reverting the run does (no reads, no writes)."""
    plan = RevertPlan()
    for entry in entries:
        if entry.action == "error":
            continue  # the run changed nothing there
        undo = entry.undo
        if undo is None:
            kind = f"{entry.direction}.{entry.action}"
            plan.not_revertible[kind] = plan.not_revertible.get(kind, 0) + 1
            continue
        if _writes_fields(entry):
            plan.records.append(_revert_update(entry, undo, current, mapping))
        elif entry.action == "delete":
            plan.records.append(_revert_delete(entry, undo, current))
        else:
            kind = f"{entry.direction}.{entry.action}"
            plan.not_revertible[kind] = plan.not_revertible.get(kind, 0) + 1
    return plan


def _revert_update(
    entry: HistoryEntry,
    undo: MappingABC[str, Any],
    current: CurrentValues,
    mapping: Mapping,
) -> RecordRevert:
    """Put back each field that still holds what the run wrote; skip the others."""
    to_host = entry.direction == "to_host"
    now = (
        current.host.get(entry.contact_id or "")
        if to_host
        else current.zoho.get(entry.zoho_id or "")
    )
    record = RecordRevert(
        entry.direction, "update", entry.contact_id, entry.zoho_id, history_id=entry.id
    )
    if now is None:
        record.action = "skip"
        record.reason = (
            "the contact was deleted since the run"
            if to_host
            else "the Zoho record was deleted since the run"
        )
        return record
    before = undo.get("before") or {}
    after = undo.get("after") or {}
    for key, wrote in after.items():
        if key not in before:
            continue
        try:
            same = mapping.values_equal(key, now.get(key), wrote)
        except KeyError:
            same = False
        if not same:
            record.skipped.append(SkippedField(key, wrote, now.get(key)))
        elif not mapping.values_equal(key, now.get(key), before[key]):
            record.values[key] = before[key]
    if not record.values:
        record.action = "skip"
        record.reason = (
            "every field the run wrote was changed again since"
            if record.skipped
            else "it already holds the values from before the run"
        )
    return record


def _revert_delete(
    entry: HistoryEntry, undo: MappingABC[str, Any], current: CurrentValues
) -> RecordRevert:
    """Bring back a record the run deleted, unless it has come back since."""
    before = dict(undo.get("before") or {})
    record = RecordRevert(
        entry.direction,
        "create",
        entry.contact_id,
        entry.zoho_id,
        values=before,
        history_id=entry.id,
    )
    if not before:
        record.action = "skip"
        record.reason = "the run kept none of its values"
        return record
    if entry.direction == "to_host":
        email = before.get(current.email_key) if current.email_key else None
        if isinstance(email, str) and email.strip().lower() in current.host_emails:
            record.action = "skip"
            record.reason = f"a contact with the email {email} exists again"
    elif current.buried is not None and entry.zoho_id not in current.buried:
        record.action = "skip"
        record.reason = (
            "the run deleted it in another Zoho module than the one synced now, or it was "
            "brought back since"
        )
    elif current.zoho.get(entry.zoho_id or "") is not None:
        record.action = "skip"
        record.reason = "the Zoho record exists again (restored from Zoho's recycle bin?)"
    return record
