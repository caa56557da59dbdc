"""Reverting a run: the CLI's ``sync --revert RUN`` and the run page's "Revert this run".

``sync.revert`` decides what a revert does from the run's history and today's values;
this module reads those (the history rows, the host's contacts, one Zoho read per 100
records) and writes the decision: host fields through the adapter, Zoho fields in
batched updates of 100, deleted records brought back. A preview reads the same and
writes nothing, so what it lists is what the revert then does.

The revert is a run of its own in History (kind ``revert``, trigger ``revert:<run id>``).
A run is reverted once: a second revert of it is refused, as is the revert of a revert
(revert the original run's effects by hand, or sync again).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from .capture import suppress_capture
from .errors import ZohoSyncError
from .ledger import Ledger
from .models import RecordHistory, Run, Tombstone
from .preferences import build_mapping, get_settings, sync_mode_of
from .signals import connection_lost, run_finished, run_started, send
from .state import ZohoSyncState, release_running_credits
from .sync.context import RunReport, apply_host_changes, host_canonical, readable
from .sync.mapping import Mapping
from .sync.modes import IMPORT_ONLY
from .sync.revert import (
    REVERT_TRIGGER,
    UNDO_KEY,
    CurrentValues,
    HistoryEntry,
    RecordRevert,
    RevertPlan,
    deleted_emails,
    email_key,
    needed_ids,
    plan_revert,
    undo_values,
)
from .zoho.client import ZohoClient
from .zoho.errors import ZohoReconnectRequired
from .zoho.timefmt import parse_datetime

#: Zoho takes at most 100 records a write call (reference §2.4/2.5).
BATCH = 100
#: A revert's outcome, like a sync's: nothing failed, or some records did.
_REVERTED_STATUSES = ("succeeded", "partial")


class RevertRefused(ZohoSyncError, ValueError):
    """The run cannot be reverted; the message says why and what to do instead."""


@dataclass
class RevertOutcome:
    """What a revert did (or, previewed, would do)."""

    run_id: int
    plan: RevertPlan
    labels: dict[str, str]
    dry_run: bool
    #: The revert's own run (None for a preview).
    revert_run_id: int | None = None
    status: str = "succeeded"
    errors: list[str] = field(default_factory=list)

    def label(self, key: str) -> str:
        return self.labels.get(key, key)

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.plan.records:
            name = f"{record.direction}.{record.action}"
            counts[name] = counts.get(name, 0) + 1
            if record.skipped:
                counts["fields_skipped"] = counts.get("fields_skipped", 0) + len(record.skipped)
        return counts


def revert_run(state: ZohoSyncState, run_id: int, *, dry_run: bool) -> RevertOutcome:
    """Preview (``dry_run``) or carry out the revert of run ``run_id``.

    Raises :class:`RevertRefused` when the run cannot be reverted (unknown, a plan, still
    running, a revert itself, already reverted, or recorded before runs kept the values
    from before their writes).

    A revert is a run in History, so it is announced like one: ``run_started`` once it is
    found revertible, ``run_finished`` with a ``RunReport`` of its outcome (``failed`` with
    the error when it stopped), trigger ``revert:<run id>``, mode ``revert``.
    """
    run = _revertible_run(state.db.session, run_id)
    sender = current_app._get_current_object() if has_app_context() else None  # type: ignore[attr-defined]
    trigger = f"{REVERT_TRIGGER}{run_id}"
    send(run_started, sender, mode="revert", direction="both", trigger=trigger, dry_run=dry_run)
    began = time.monotonic()
    revert_id: list[int] = []  # the revert's own run, once written
    try:
        outcome = _revert_run(state, run, dry_run=dry_run, revert_id=revert_id)
    except Exception as exc:
        if isinstance(exc, ZohoReconnectRequired):  # as a sync run that met it would
            send(connection_lost, sender, reason=str(exc), error=exc)
        failed = RunReport(status="failed", message=str(exc), error=exc)
        _announce_end(sender, failed, revert_id, trigger, dry_run, began)
        raise
    counts = Counter(outcome.summary())
    counts["errors"] = len(outcome.errors)
    report = RunReport(
        status=outcome.status, counts=counts, message="; ".join(outcome.errors) or None
    )
    _announce_end(sender, report, revert_id, trigger, dry_run, began)
    return outcome


def _announce_end(
    sender: Any,
    report: RunReport,
    revert_id: list[int],
    trigger: str,
    dry_run: bool,
    began: float,
) -> None:
    """``run_finished`` for a revert, named by its own run (None: it stopped before one)."""
    send(
        run_finished,
        sender,
        report=report,
        run_id=revert_id[0] if revert_id else None,
        trigger=trigger,
        dry_run=dry_run,
        duration=time.monotonic() - began,
    )


def _revert_run(
    state: ZohoSyncState, run: Run, *, dry_run: bool, revert_id: list[int]
) -> RevertOutcome:
    """A revert spends credits like a run: it counts among the org's runs going on now
    until it ends (``zoho.running_credits``), however it ends."""
    client = state.client(budget=state.credit_budget())
    try:
        return _revert_with(state, run, client, dry_run=dry_run, revert_id=revert_id)
    finally:
        release_running_credits(client)


def _revert_with(
    state: ZohoSyncState, run: Run, client: ZohoClient, *, dry_run: bool, revert_id: list[int]
) -> RevertOutcome:
    session: Session = state.db.session
    run_id = run.id
    entries = _history_of(session, run_id)
    mapping = build_mapping(session, state.adapter)
    module = get_settings(session).module or ""
    meter_before = _meter_totals(client)
    zoho_read_at: dict[str, datetime] = {}
    contacts, current = _current_values(state, client, module, mapping, entries, zoho_read_at)
    plan = plan_revert(entries, current, mapping)
    if not plan.records and plan.not_revertible:
        session.rollback()
        raise RevertRefused(
            f"Run {run.id} was recorded before runs kept the values from before their "
            "changes, so it cannot be reverted; change the records back by hand."
        )
    _refuse_in_import_only(session, state, run_id, plan)
    labels = {key: next(iter(readable(mapping, {key: None}))) for key in _keys(plan)}
    outcome = RevertOutcome(run_id, plan, labels, dry_run)
    if dry_run:
        session.rollback()
        state.record_usage(session)
        session.commit()
        return outcome
    ledger = Ledger(session, get_settings(session))
    revert = ledger.start_run(
        kind="revert", mode="run", dry_run=False, trigger=f"{REVERT_TRIGGER}{run_id}"
    )
    ledger.commit()
    outcome.revert_run_id = revert.id
    revert_id.append(revert.id)
    writer = _Writer(
        state, client, ledger, revert, mapping, module, run_id, outcome, current, zoho_read_at
    )
    try:
        writer.write_host(contacts)
        writer.write_zoho()
        writer.bring_back_zoho()
        writer.record_skips()
        ledger.write_history()
    except Exception as exc:
        # What was written is committed batch by batch and recorded; the revert can be run
        # again, and its three-way check then finds those records already reverted.
        _failed(session, revert.id, exc)
        raise
    calls, credits = _meter_totals(client)
    revert.calls = calls - meter_before[0]
    revert.credits = credits - meter_before[1]
    revert.status = outcome.status = "partial" if outcome.errors else "succeeded"
    revert.counts = {**outcome.summary(), "errors": len(outcome.errors), "calls": revert.calls}
    revert.error = "; ".join(outcome.errors) or None
    revert.finished_at = datetime.now(timezone.utc)
    ledger.commit()
    state.record_usage(session)
    session.commit()
    return outcome


def _refuse_in_import_only(
    session: Session, state: ZohoSyncState, run_id: int, plan: RevertPlan
) -> None:
    """Import-only mode writes nothing to Zoho, and a revert is no way around that: one
    that would update, re-create or restore a Zoho record is refused, preview included."""
    settings = get_settings(session)
    if sync_mode_of(settings, state.config.sync_mode) != IMPORT_ONLY:
        return
    writes = [
        record
        for record in plan.records
        if record.direction == "to_zoho" and record.action in ("update", "create")
    ]
    if writes:
        session.rollback()
        raise RevertRefused(
            f"Reverting run {run_id} would write {len(writes)} Zoho "
            f"record{'s' if len(writes) != 1 else ''}, and the sync mode is import only: "
            "nothing is written to Zoho. Switch the mode (settings page, or flask zoho-sync "
            "settings --mode two_way) to revert it, or change the records in Zoho by hand."
        )


def _failed(session: Session, revert_id: int, exc: Exception) -> None:
    """Mark the revert's run failed with the reason, so it does not stay "running"."""
    session.rollback()
    row = session.get(Run, revert_id)
    if row is not None:
        row.status = "failed"
        row.error = f"The revert stopped: {type(exc).__name__}: {exc}"
        row.finished_at = datetime.now(timezone.utc)
        session.commit()


def _meter_totals(client: Any) -> tuple[int, int]:
    snapshot = client.meter.snapshot()
    return int(snapshot["total_calls"]), int(snapshot["total_credits"])


def _revertible_run(session: Session, run_id: int) -> Run:
    """The run, or a refusal that says why it cannot be reverted."""
    run = session.get(Run, run_id)
    if run is None:
        raise RevertRefused(f"There is no run {run_id}; History lists the runs and their ids.")
    if run.dry_run:
        raise RevertRefused(f"Run {run_id} was a preview: it changed nothing to revert.")
    if run.status == "running":
        raise RevertRefused(f"Run {run_id} is still running; revert it once it has finished.")
    if run.kind == "revert":
        raise RevertRefused(
            f"Run {run_id} is itself a revert (of run "
            f"{(run.trigger or '').removeprefix(REVERT_TRIGGER)}); a revert is not reverted. "
            "Edit the records again, and the next sync carries the edits across."
        )
    earlier = session.scalar(
        sa.select(Run.id).where(
            Run.trigger == f"{REVERT_TRIGGER}{run_id}",
            Run.dry_run.is_(False),
            Run.status.in_(_REVERTED_STATUSES),
        )
    )
    if earlier is not None:
        raise RevertRefused(
            f"Run {run_id} was already reverted by run {earlier}; a run is reverted once."
        )
    return run


def _history_of(session: Session, run_id: int) -> list[HistoryEntry]:
    rows = session.execute(
        sa.select(
            RecordHistory.id,
            RecordHistory.direction,
            RecordHistory.action,
            RecordHistory.contact_id,
            RecordHistory.zoho_id,
            RecordHistory.changes,
        )
        .where(RecordHistory.run_id == run_id)
        .order_by(RecordHistory.id)
    )
    return [HistoryEntry(*row) for row in rows]


def _current_values(
    state: ZohoSyncState,
    client: Any,
    module: str,
    mapping: Mapping,
    entries: Sequence[HistoryEntry],
    zoho_read_at: dict[str, datetime],
) -> tuple[dict[str, Any], CurrentValues]:
    """Today's values of what the run touched: the host's contacts (and, for contacts the
    run deleted, whether their email is back), and Zoho's records, one read per 100, with
    the version read of each (``zoho_read_at``, filled here) for the conditional write."""
    adapter = state.adapter
    contact_ids, zoho_ids = needed_ids(entries)
    deleted_in_zoho = [
        entry.zoho_id
        for entry in entries
        if entry.direction == "to_zoho" and entry.action == "delete" and entry.zoho_id
    ]
    zoho_ids += deleted_in_zoho
    contacts = adapter.get_many(contact_ids) if contact_ids else {}
    host = {
        contact_id: (
            host_canonical(mapping, adapter, contacts[contact_id])
            if contact_id in contacts
            else None
        )
        for contact_id in contact_ids
    }
    zoho: dict[str, Any] = dict.fromkeys(zoho_ids)
    if zoho_ids:
        for record in client.get_records(module, zoho_ids, mapping.zoho_api_names()):
            zoho[str(record["id"])] = mapping.zoho_to_canonical(record)
            if record.get("Modified_Time"):
                zoho_read_at[str(record["id"])] = parse_datetime(record["Modified_Time"])
    key = email_key(mapping)
    emails = deleted_emails(entries, key)
    back = frozenset(adapter.find_many_by_email(emails)) if emails else frozenset()
    buried = frozenset(
        state.db.session.scalars(
            sa.select(Tombstone.zoho_id).where(
                Tombstone.module == module, Tombstone.zoho_id.in_(deleted_in_zoho)
            )
        )
        if deleted_in_zoho
        else ()
    )
    current = CurrentValues(host=host, zoho=zoho, host_emails=back, email_key=key, buried=buried)
    return contacts, current


def _keys(plan: RevertPlan) -> set[str]:
    keys: set[str] = set()
    for record in plan.records:
        keys.update(record.values)
        keys.update(skipped.key for skipped in record.skipped)
    return keys


def _skipped(mapping: Mapping, record: RecordRevert) -> dict[str, dict[str, Any]]:
    """Fields left as they are, by the name an admin knows, with both values."""
    return {
        next(iter(readable(mapping, {item.key: None}))): {
            "run wrote": item.wrote,
            "now": item.current,
        }
        for item in record.skipped
    }


@dataclass
class _Writer:
    """What the revert's writes share: where they go, how they are recorded, what failed."""

    state: ZohoSyncState
    client: Any
    ledger: Ledger
    revert: Run
    mapping: Mapping
    module: str
    run_id: int
    outcome: RevertOutcome
    current: CurrentValues
    #: The Zoho versions the three-way check read, by Zoho id, for the conditional write.
    read_at: dict[str, datetime]

    def record(self, record: RecordRevert, now: dict[str, Any] | None, reason: str = "") -> None:
        """The revert's history row for one record it wrote: each field as [was, now]."""
        was = now or {}
        self.ledger.record(
            self.revert,
            direction=record.direction,
            action=record.action,
            contact_id=record.contact_id,
            zoho_id=record.zoho_id,
            changes={
                "fields": readable(
                    self.mapping,
                    {key: [was.get(key), value] for key, value in record.values.items()}
                    if now is not None
                    else record.values,
                ),
                "skipped": _skipped(self.mapping, record),
                UNDO_KEY: undo_values(
                    None if now is None else {key: was.get(key) for key in record.values},
                    record.values,
                ),
            },
            reason=f"reverted run {self.run_id}{reason}",
        )

    def record_skips(self) -> None:
        """Records the revert left alone, with the reason, so History shows them too."""
        for record in self.outcome.plan.records:
            if record.action != "skip":
                continue
            self.ledger.record(
                self.revert,
                direction=record.direction,
                action="skip",
                contact_id=record.contact_id,
                zoho_id=record.zoho_id,
                changes={"skipped": _skipped(self.mapping, record)},
                reason=f"not reverted: {record.reason}",
            )

    def refused(self, record: RecordRevert, result: Any) -> None:
        """Zoho refused this record's revert (``ALREADY_MODIFIED``: edited in Zoho since
        the revert read it): it fails alone, with Zoho's reason, in the outcome and the
        history."""
        reason = (
            f"Zoho refused record {record.zoho_id or '(new)'}: {result.code} "
            f"{result.message or ''}".strip()
        )
        record.action, record.reason = "error", reason
        self.outcome.errors.append(reason)
        self.ledger.record(
            self.revert,
            direction=record.direction,
            action="error",
            contact_id=record.contact_id,
            zoho_id=record.zoho_id,
            reason=f"not reverted: {reason}",
            error_code=result.code or "ERROR",
        )

    def write_host(self, contacts: dict[str, Any]) -> None:
        """Put the host's before-values back and re-create the contacts the run deleted.

        These are host edits like an admin's: change capture sees them, so the next push
        carries them to Zoho (a re-created contact gets its Zoho record again and its link).
        """
        adapter, mapping = self.state.adapter, self.mapping
        for record in self.outcome.plan.of("to_host", "update"):
            contact = contacts[record.contact_id or ""]
            now = host_canonical(mapping, adapter, contact)
            apply_host_changes(adapter, contact, mapping.canonical_to_host(record.values))
            self.record(record, now)
        for record in self.outcome.plan.of("to_host", "create"):
            contact = adapter.create()
            apply_host_changes(adapter, contact, mapping.canonical_to_host(record.values))
            adapter.flush()
            _unbury(self.ledger.session, zoho_id=record.zoho_id, contact_id=record.contact_id)
            record.contact_id = adapter.contact_id(contact)
            self.record(record, None)
        self.ledger.commit()

    def write_zoho(self) -> None:
        """Write Zoho's before-values back, 100 records a call.

        The write is conditional on the versions the three-way check read (reference §2.3):
        a record edited in Zoho since then is refused, not overwritten, and listed as failed.
        """
        updates = self.outcome.plan.of("to_zoho", "update")
        for start in range(0, len(updates), BATCH):
            chunk = updates[start : start + BATCH]
            payloads = [
                {"id": record.zoho_id, **self.mapping.canonical_to_zoho(record.values)}
                for record in chunk
            ]
            versions = [self.read_at[r.zoho_id] for r in chunk if r.zoho_id in self.read_at]
            results = self.client.update(
                self.module, payloads, if_unmodified_since=max(versions) if versions else None
            )
            for record, result in zip(chunk, results, strict=True):
                if not result.ok:
                    self.refused(record, result)
                    continue
                self.record(record, dict(self.current.zoho.get(record.zoho_id or "") or {}))
            self.ledger.commit()

    def bring_back_zoho(self) -> None:
        """The Zoho records the run deleted: from Zoho's recycle bin when the app allows it
        (``ZOHO_SYNC_REVERT_FROM_RECYCLE_BIN``), otherwise, or when the bin no longer has
        one, re-created from their last synced values, 100 a call (docs/zoho-api-notes.md)."""
        creates = self.outcome.plan.of("to_zoho", "create")
        if self.state.config.revert_from_recycle_bin:
            creates = [record for record in creates if not self._restore(record)]
            self.ledger.commit()
        for start in range(0, len(creates), BATCH):
            chunk = creates[start : start + BATCH]
            payloads = [
                self.mapping.prepare_outgoing(self.mapping.canonical_to_zoho(record.values), True)[
                    0
                ]
                for record in chunk
            ]
            results = self.client.insert(self.module, payloads)
            for record, result in zip(chunk, results, strict=True):
                if not result.ok:
                    self.refused(record, result)
                    continue
                _unbury(self.ledger.session, zoho_id=record.zoho_id, contact_id=record.contact_id)
                record.zoho_id = result.record_id
                self.record(record, None, "; re-created in Zoho")
            self.ledger.commit()

    def _restore(self, record: RecordRevert) -> bool:
        """Restore one record from Zoho's recycle bin; False when the bin does not have it
        (purged, or past Zoho's 60 days), so it is re-created instead.

        A restored record keeps its old Modified_Time, so no incremental pull would see it
        come back: it is linked here, to a contact re-created from the same values (unless a
        contact with its email exists again, which the next full sync links by email).
        """
        result = self.client.restore_from_recycle_bin(str(record.zoho_id))
        if not result.ok:
            return False
        _unbury(self.ledger.session, zoho_id=record.zoho_id, contact_id=record.contact_id)
        if result.code == "SCHEDULED":
            self.record(record, None, "; Zoho restores it from its recycle bin in the background")
            return True
        email = record.values.get(self.current.email_key or "")
        adapter = self.state.adapter
        if isinstance(email, str) and adapter.find_many_by_email([email]):
            self.record(record, None, "; restored from Zoho's recycle bin")
            return True
        with suppress_capture(self.ledger.session):
            contact = adapter.create()
            apply_host_changes(adapter, contact, self.mapping.canonical_to_host(record.values))
            adapter.flush()
        contact_id = adapter.contact_id(contact)
        self.ledger.save_link(contact_id, str(record.zoho_id), record.values, None)
        record.contact_id = contact_id
        self.record(
            record, None, f"; restored from Zoho's recycle bin, linked to contact {contact_id}"
        )
        return True


def _unbury(session: Session, *, zoho_id: str | None, contact_id: str | None) -> None:
    """Remove the tombstone of a pairing the revert brings back, so it is not kept out
    (or deleted again) as a deleted record."""
    conditions = []
    if zoho_id:
        conditions.append(Tombstone.zoho_id == zoho_id)
    if contact_id:
        conditions.append(Tombstone.contact_id == contact_id)
    if conditions:
        session.execute(sa.delete(Tombstone).where(sa.or_(*conditions)))


_SIDES = {"to_host": "this app", "to_zoho": "Zoho"}


def revert_lines(outcome: RevertOutcome) -> list[str]:
    """The revert (or its preview) in words, record by record: what goes back, what is
    brought back, what is left alone and why, and any field skipped with both values."""
    verb = "would" if outcome.dry_run else "did"
    lines: list[str] = []
    for record in outcome.plan.records:
        side = _SIDES.get(record.direction, record.direction)
        name = (
            f"contact {record.contact_id}"
            if record.direction == "to_host"
            else f"Zoho record {record.zoho_id}"
        )
        if record.action == "update":
            values = ", ".join(
                f"{outcome.label(key)} = {value!r}" for key, value in record.values.items()
            )
            lines.append(f"{side}: {name}: put back {values}")
        elif record.action == "create":
            lines.append(f"{side}: {name} (deleted by the run): brought back")
        else:
            lines.append(f"{side}: {name}: not reverted: {record.reason}")
        for skipped in record.skipped:
            lines.append(
                f"    skipped {outcome.label(skipped.key)}: changed since the run "
                f"(the run wrote {skipped.wrote!r}, it is now {skipped.current!r})"
            )
    for kind, count in sorted(outcome.plan.not_revertible.items()):
        direction, _, action = kind.partition(".")
        lines.append(
            f"{_SIDES.get(direction, direction)}: {count} {action} row(s) of the run "
            "cannot be reverted (creates and links, or rows recorded before runs kept "
            "their before-values)"
        )
    head = (
        f"Revert of run {outcome.run_id} (preview): "
        if outcome.dry_run
        else f"Revert of run {outcome.run_id} (run {outcome.revert_run_id}): {outcome.status}; "
    )
    head += f"{outcome.plan.writes} record(s) {verb} change"
    return [head, *lines, *(f"error: {error}" for error in outcome.errors)]


def outcome_as_dict(outcome: RevertOutcome) -> dict[str, Any]:
    """The revert for ``--json``: every record with its values and skipped fields."""
    return {
        "run": outcome.run_id,
        "revert_run": outcome.revert_run_id,
        "dry_run": outcome.dry_run,
        "status": outcome.status,
        "counts": outcome.summary(),
        "records": [
            {
                "direction": record.direction,
                "action": record.action,
                "contact_id": record.contact_id,
                "zoho_id": record.zoho_id,
                "values": {outcome.label(key): value for key, value in record.values.items()},
                "skipped": [
                    {"field": outcome.label(item.key), "run_wrote": item.wrote, "now": item.current}
                    for item in record.skipped
                ],
                "reason": record.reason,
            }
            for record in outcome.plan.records
        ],
        "not_revertible": outcome.plan.not_revertible,
        "errors": outcome.errors,
    }
