"""The engine's bookkeeping in the extension's tables: links, outbox, runs, history, tombstones.

The sync engine (``flask_zoho_sync.sync``) knows no database; it is handed a ``Ledger`` and
calls these methods. Keeping every query here means the engine can be read as the algorithm
it is, and a change of storage touches one module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .models import (
    Link,
    OutboxBatch,
    OutboxEntry,
    RecordHistory,
    Run,
    SyncSettings,
    Tombstone,
)

#: Large ``IN (...)`` lists are split so neither SQLite's nor PostgreSQL's limits are met.
_CHUNK = 500


def _now() -> datetime:
    return datetime.now(timezone.utc)


def pending_outbox_summary(session: Session) -> tuple[set[str], datetime | None]:
    """The contacts with changes waiting for Zoho, and since when: what status pages and the
    tick need, read without expanding batches (that is the worker's job)."""
    contacts = set(
        session.scalars(sa.select(OutboxEntry.contact_id).where(OutboxEntry.processed_at.is_(None)))
    )
    oldest = session.scalar(
        sa.select(sa.func.min(OutboxEntry.created_at)).where(OutboxEntry.processed_at.is_(None))
    )
    for created_at, entries in session.execute(
        sa.select(OutboxBatch.created_at, OutboxBatch.entries)
    ):
        contacts.update(str(entry[0]) for entry in entries or ())
        if oldest is None or (created_at is not None and created_at < oldest):
            oldest = created_at
    return contacts, oldest


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


class Ledger:
    """Reads and writes the sync's own rows for one module, in the host's session."""

    def __init__(self, session: Session, settings: SyncSettings) -> None:
        self.session = session
        self.settings = settings

    @property
    def module(self) -> str:
        return self.settings.module or ""

    # -- transactions ------------------------------------------------------------------

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    # -- links ---------------------------------------------------------------------------

    def links_by_contact(self, contact_ids: Sequence[str]) -> dict[str, Link]:
        return self._links_keyed_by("contact_id", contact_ids)

    def links_by_zoho(self, zoho_ids: Sequence[str]) -> dict[str, Link]:
        return self._links_keyed_by("zoho_id", zoho_ids)

    def _links_keyed_by(self, column: str, values: Sequence[str]) -> dict[str, Link]:
        key = getattr(Link, column)
        found: dict[str, Link] = {}
        for chunk in _chunks(list(values)):
            rows = self.session.scalars(
                sa.select(Link).where(Link.module == self.module, key.in_(chunk))
            )
            found.update({getattr(row, column): row for row in rows})
        return found

    def linked_contact_ids(self) -> list[str]:
        return list(
            self.session.scalars(
                sa.select(Link.contact_id).where(Link.module == self.module).order_by(Link.id)
            )
        )

    def linked_count(self) -> int:
        return int(
            self.session.scalar(
                sa.select(sa.func.count()).select_from(Link).where(Link.module == self.module)
            )
            or 0
        )

    def save_link(
        self,
        contact_id: str,
        zoho_id: str,
        snapshot: dict[str, Any],
        zoho_modified_at: datetime | None,
        *,
        existing: Link | None = None,
    ) -> Link:
        link = existing or Link(module=self.module, contact_id=contact_id, zoho_id=zoho_id)
        if existing is None:
            self.session.add(link)
        link.zoho_id = zoho_id
        link.snapshot = dict(snapshot)
        if zoho_modified_at is not None:
            link.zoho_modified_at = zoho_modified_at
        link.synced_at = _now()
        link.last_error = None
        return link

    def drop_link(self, link: Link) -> None:
        self.session.delete(link)

    def forget_links_of_other_modules(self) -> int:
        result = self.session.execute(sa.delete(Link).where(Link.module != self.module))
        return int(result.rowcount or 0)

    # -- tombstones ------------------------------------------------------------------------

    def bury(self, *, zoho_id: str | None, contact_id: str | None, deleted_on: str) -> None:
        self.session.add(
            Tombstone(
                module=self.module, zoho_id=zoho_id, contact_id=contact_id, deleted_on=deleted_on
            )
        )

    def buried_zoho_ids(self, zoho_ids: Sequence[str]) -> set[str]:
        buried: set[str] = set()
        for chunk in _chunks(list(zoho_ids)):
            buried.update(
                self.session.scalars(
                    sa.select(Tombstone.zoho_id).where(
                        Tombstone.module == self.module, Tombstone.zoho_id.in_(chunk)
                    )
                )
            )
        return buried

    # -- outbox ----------------------------------------------------------------------------

    def expand_outbox_batches(self) -> int:
        """Turn captured batches into per-contact outbox rows (in capture order).

        Capture writes one row per flush to keep the host's commit cheap; retries, errors
        and history are per contact, so the worker expands them here, in its own
        transaction, before it reads the outbox. Returns how many rows were made.
        """
        batches = self.session.scalars(sa.select(OutboxBatch).order_by(OutboxBatch.id)).all()
        rows = [
            {
                "contact_id": str(contact_id),
                "operation": str(operation),
                "zoho_id": zoho_id,
                "created_at": batch.created_at,
                "attempts": 0,
            }
            for batch in batches
            for contact_id, operation, zoho_id in batch.entries or ()
        ]
        if rows:
            self.session.execute(sa.insert(OutboxEntry), rows)
        if batches:
            self.session.execute(
                sa.delete(OutboxBatch).where(OutboxBatch.id.in_([batch.id for batch in batches]))
            )
            self.session.flush()
        return len(rows)

    def pending_outbox(self) -> dict[str, list[OutboxEntry]]:
        """Pending host changes grouped by contact, oldest first."""
        self.expand_outbox_batches()
        grouped: dict[str, list[OutboxEntry]] = {}
        rows = self.session.scalars(
            sa.select(OutboxEntry)
            .where(OutboxEntry.processed_at.is_(None))
            .order_by(OutboxEntry.id)
        )
        for row in rows:
            grouped.setdefault(row.contact_id, []).append(row)
        return grouped

    def finish_outbox(self, entries: Iterable[OutboxEntry], error: str | None = None) -> None:
        moment = _now()
        for entry in entries:
            entry.attempts = (entry.attempts or 0) + 1
            entry.processed_at = moment
            entry.last_error = error

    def retry_outbox_later(self, entries: Iterable[OutboxEntry], error: str) -> None:
        for entry in entries:
            entry.attempts = (entry.attempts or 0) + 1
            entry.last_error = error

    def requeue_contact(self, contact_id: str) -> None:
        """Put a contact back in the outbox (the admin pressed Retry on a failed record)."""
        self.session.add(OutboxEntry(contact_id=contact_id, operation="upsert"))

    # -- runs and history -------------------------------------------------------------------

    def start_run(self, *, kind: str, mode: str, dry_run: bool, trigger: str | None) -> Run:
        run = Run(kind=kind, mode=mode, dry_run=dry_run, trigger=trigger, status="running")
        run.counts = {}
        self.session.add(run)
        self.session.flush()
        return run

    def record(
        self,
        run: Run | None,
        *,
        direction: str,
        action: str,
        contact_id: str | None = None,
        zoho_id: str | None = None,
        changes: dict[str, Any] | None = None,
        reason: str | None = None,
        error_code: str | None = None,
    ) -> None:
        self.session.add(
            RecordHistory(
                run_id=run.id if run is not None else None,
                contact_id=contact_id,
                zoho_id=zoho_id,
                direction=direction,
                action=action,
                changes=changes or {},
                reason=reason,
                error_code=error_code,
            )
        )

    def resolve_errors(self, contact_id: str) -> None:
        """A contact that synced cleanly has no open errors any more."""
        self.session.execute(
            sa.update(RecordHistory)
            .where(
                RecordHistory.contact_id == contact_id,
                RecordHistory.action == "error",
                RecordHistory.resolved_at.is_(None),
            )
            .values(resolved_at=_now())
        )
