"""The engine's bookkeeping in the extension's tables: links, outbox, runs, history, tombstones.

The sync engine (``flask_zoho_sync.sync``) knows no database; it is handed a ``Ledger`` and
calls these methods. Keeping every query here means the engine can be read as the algorithm
it is, and a change of storage touches one module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.attributes import set_committed_value

from .models import (
    Connection,
    FieldMap,
    LeadConversion,
    Link,
    OutboxBatch,
    OutboxEntry,
    RecordHistory,
    Run,
    ScopeExit,
    SyncSettings,
    Tombstone,
)
from .scope import scope_fingerprint
from .sync.identity import PAIR_CODE as MERGED_PAIR_CODE
from .tenancy import ALL_TENANTS, current_tenant

#: Large ``IN (...)`` lists are split so neither SQLite's nor PostgreSQL's limits are met.
_CHUNK = 500


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _row_id(row: Any) -> Any:
    """A persistent row's primary key without loading it: every commit expires the run,
    and reading ``run.id`` for a history row would reload the whole run once per batch."""
    if row is None:
        return None
    identity = sa.inspect(row).identity
    return identity[0] if identity else row.id


class PendingChange(NamedTuple):
    """One pending outbox row (``zoho_sync_outbox``), as the push reads it."""

    id: int
    contact_id: str
    operation: str  # upsert | delete
    zoho_id: str | None
    created_at: datetime
    attempts: int
    last_error: str | None
    processed_at: datetime | None


class PendingSummary(NamedTuple):
    """How many contacts have changes waiting for Zoho, and since when."""

    contacts: int
    oldest: datetime | None


def _batched_contact_ids(dialect: sa.Dialect) -> sa.Select[Any] | None:
    """``SELECT`` of every contact id listed in a batch, one per row, where the database can
    unpack a JSON list (SQLite's ``json_each``, PostgreSQL's ``json_array_elements_text``);
    ``None`` elsewhere. Counting in the database keeps a long backlog (automatic sync off
    for a month) from being loaded into Python for every status page."""
    if dialect.name == "sqlite":
        function = sa.func.json_each
    elif dialect.name == "postgresql":
        function = sa.func.json_array_elements_text
    else:
        return None
    elements = function(OutboxBatch.contact_ids).table_valued("value")
    return (
        sa.select(elements.c.value.label("contact_id"))
        .select_from(OutboxBatch)
        .join(elements, sa.true())
    )


#: Zoho rations credits per rolling 24 hours; the host's own budget uses the same window.
CREDIT_WINDOW = timedelta(hours=24)


class OrgCreditsSpent(NamedTuple):
    """The credits spent on the current tenant's Zoho org in a window."""

    #: Every run's credits, the current tenant's and those of the others on its org.
    spent: int
    #: When the oldest of those runs started (None: no run spent any).
    oldest: datetime | None
    #: The part of ``spent`` that other tenants' runs spent (0 on a single-tenant install).
    by_other_tenants: int


def _tenants_on_my_org() -> sa.Select[Any]:
    """``SELECT`` of every tenant whose connection is to the current tenant's Zoho org (it
    included), told by the org id and the API domain (an org id names an org within one
    data centre). Empty while the current tenant has no connection or no org id yet: a
    NULL org id equals nothing, so such a tenant counts its own runs alone."""
    mine = aliased(Connection)
    theirs = aliased(Connection)
    return (
        sa.select(theirs.tenant_id)
        .join(
            mine,
            sa.and_(mine.org_id == theirs.org_id, mine.api_domain == theirs.api_domain),
        )
        .where(mine.tenant_id == current_tenant())
    )


def org_credits_spent_since(session: Session, since: datetime) -> OrgCreditsSpent:
    """Credits spent since ``since`` by the runs of every tenant connected to the current
    tenant's Zoho org, and how many of them by other tenants.

    Zoho rations credits per org, not per connection: two sites of a platform connected to
    one org draw on one allowance, so each must count the other's spending, or together
    they spend the org's budget twice. This is the one statement that looks past the
    current tenant (``ALL_TENANTS``), and only at runs of tenants on the same org; on a
    single-tenant install that is the tenant's own runs, in one query as before.
    """
    me = current_tenant()
    of_others = sa.case((Run.tenant_id != me, Run.credits), else_=0)
    spent, oldest, by_others = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(Run.credits), 0),
            sa.func.min(Run.started_at),
            sa.func.coalesce(sa.func.sum(of_others), 0),
        )
        .where(
            Run.started_at >= since,
            Run.credits > 0,
            sa.or_(Run.tenant_id == me, Run.tenant_id.in_(_tenants_on_my_org())),
        )
        .execution_options(**{ALL_TENANTS: True})
    ).one()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=timezone.utc)
    return OrgCreditsSpent(int(spent or 0), oldest, int(by_others or 0))


def credits_spent_since(session: Session, since: datetime) -> tuple[int, datetime | None]:
    """Credits spent on the current tenant's Zoho org since ``since`` (every tenant's on
    it, :func:`org_credits_spent_since`), and when the oldest of those runs started."""
    spent, oldest, _by_others = org_credits_spent_since(session, since)
    return spent, oldest


#: What an interrupted run's History row says happened to it.
INTERRUPTED_REASON = (
    "The worker stopped before this run finished (it was killed or restarted, or lost its "
    "database or Redis). Changes it had not sent stayed queued and went with a later run."
)


def close_interrupted_runs(session: Session) -> int:
    """Close runs a dead worker left "running", so History never shows a run forever going.

    Only the holder of the run lock calls this: with the lock held, no run can be going on.
    """
    closed = session.execute(
        sa.update(Run)
        .where(Run.status == "running", Run.dry_run.is_(False))
        .values(
            status="interrupted",
            finished_at=datetime.now(timezone.utc),
            error=INTERRUPTED_REASON,
        )
    ).rowcount
    session.commit()
    return int(closed or 0)


def pending_outbox_summary(session: Session) -> PendingSummary:
    """The contacts with changes waiting for Zoho, and since when, for status and the tick.

    Changes wait in two forms: batches capture wrote and no worker has expanded yet, and
    per-contact rows not yet processed. Both count, a contact once, without expanding
    anything (that is the worker's job, in its own transaction).
    """
    entries = sa.select(OutboxEntry.contact_id.label("contact_id")).where(
        OutboxEntry.processed_at.is_(None)
    )
    oldest_entry = session.scalar(
        sa.select(sa.func.min(OutboxEntry.created_at)).where(OutboxEntry.processed_at.is_(None))
    )
    oldest_batch = session.scalar(sa.select(sa.func.min(OutboxBatch.created_at)))
    oldest = min((m for m in (oldest_entry, oldest_batch) if m is not None), default=None)
    if oldest_batch is None:
        count = session.scalar(
            sa.select(sa.func.count(sa.distinct(OutboxEntry.contact_id))).where(
                OutboxEntry.processed_at.is_(None)
            )
        )
        return PendingSummary(int(count or 0), oldest)
    batched = _batched_contact_ids(session.connection().dialect)
    if batched is not None:
        either = sa.union(entries, batched).subquery()  # UNION, not UNION ALL: distinct ids
        count = session.scalar(sa.select(sa.func.count()).select_from(either))
        return PendingSummary(int(count or 0), oldest)
    contacts = set(session.scalars(entries))
    for ids in session.scalars(sa.select(OutboxBatch.contact_ids)):
        contacts.update(ids or ())
    return PendingSummary(len(contacts), oldest)


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _outbox_rows(batches: Iterable[Any]) -> list[dict[str, Any]]:
    """The per-contact outbox rows that captured batches stand for, in batch order, so a
    contact's last operation comes last."""
    return [
        {
            "contact_id": str(contact_id),
            "operation": batch.operation,
            "zoho_id": (batch.zoho_ids or {}).get(contact_id),
            "created_at": batch.created_at,
            "attempts": 0,
        }
        for batch in sorted(batches, key=lambda batch: batch.id)
        for contact_id in batch.contact_ids or ()
    ]


class Ledger:
    """Reads and writes the sync's own rows for one module, in the host's session."""

    def __init__(self, session: Session, settings: SyncSettings) -> None:
        self.session = session
        self.settings = settings
        #: History rows not yet written: inserted together (one executemany) before the
        #: next commit or read of history, instead of an ORM object per row.
        self._history: list[dict[str, Any]] = []
        self._history_run: Any = None  # the run of the last history row, and its key
        self._history_run_id: Any = None
        #: Whether history may hold unresolved errors (None: not looked yet). A push of
        #: 100,000 clean records then skips an UPDATE per batch resolving nothing.
        self._open_errors: bool | None = None
        #: The settings a run started with (``pin_settings``), compared before its writes.
        self._pinned: tuple[Any, ...] | None = None
        #: Called before every commit while a run is going (the engine's settings check).
        self.guard: Callable[[], None] | None = None
        #: Whether history holds any merged pair (None: not looked yet; ``held_unlinked``).
        self._any_pairs: bool | None = None
        #: Whether the module has lead conversions (None: not asked yet).
        self._any_conversions: bool | None = None
        #: Told of each failed record as it is recorded (the ``record_failed`` signal).
        self.on_failed_record: Callable[[dict[str, Any]], None] | None = None
        #: Told of each mapping row paused mid-run, with its Zoho field, host key and reason
        #: (the ``mapping_field_paused`` signal).
        self.on_mapping_paused: Callable[[str, str, str], None] | None = None

    @property
    def module(self) -> str:
        return self.settings.module or ""

    @cached_property
    def run_module(self) -> str:
        """The module as this ledger first read it, for the queries an import makes per
        page: each commit expires the settings object, and reading ``module`` again loads
        the whole row, Zoho's field metadata included. A run syncs one module throughout."""
        return self.module

    # -- transactions ------------------------------------------------------------------

    def commit(self) -> None:
        if self.guard is not None:
            self.guard()
        self.write_history()
        self.session.commit()

    def rollback(self) -> None:
        self._history.clear()
        self.session.rollback()

    # -- the settings a run started with ----------------------------------------------

    def _settings_fingerprint(self) -> tuple[Any, ...]:
        """The stored values a run's mapping was built from, read past the session's copy
        (a column query is not answered from the identity map) and without flushing."""
        with self.session.no_autoflush:
            row = self.session.execute(
                sa.select(
                    SyncSettings.module,
                    SyncSettings.time_zone,
                    SyncSettings.conflict_policy,
                    SyncSettings.sync_mode,
                ).where(SyncSettings.id == _row_id(self.settings))
            ).one_or_none()
            maps = self.session.execute(
                sa.select(
                    FieldMap.kind,
                    FieldMap.host_key,
                    FieldMap.zoho_field,
                    FieldMap.direction,
                    FieldMap.policy,
                    FieldMap.inverted,
                    FieldMap.overwrite,
                ).order_by(FieldMap.kind, FieldMap.host_key)
            ).all()
            scope = scope_fingerprint(self.session)
        return (
            tuple(row) if row is not None else None,
            tuple(tuple(m) for m in maps),
            scope,
        )

    def pin_settings(self) -> None:
        """Remember the settings as the run's mapping is built from them. No version column
        is needed: the values themselves are compared, so saving a form unchanged does not
        stop a run."""
        self._pinned = self._settings_fingerprint()

    def settings_change(self) -> str | None:
        """What changed since ``pin_settings``, in words, or None."""
        if self._pinned is None:
            return None
        current = self._settings_fingerprint()
        if current == self._pinned:
            return None
        (before, maps_before, scope_before), (after, _, scope_after) = self._pinned, current
        if after is None:
            return "the sync settings were deleted"
        if before is not None and before[0] != after[0]:
            return f"the module was switched from {before[0]} to {after[0]}"
        if before is not None and before[1] != after[1]:
            return f"the time zone changed from {before[1]} to {after[1]}"
        if before is not None and before[2] != after[2]:
            return "the default conflict policy changed"
        if before is not None and before[3] != after[3]:
            return f"the sync mode changed from {before[3] or 'the default'} to {after[3]}"
        if scope_before != scope_after and maps_before == current[1]:
            return "what syncs (the scope or the match key) changed"
        return "the field mapping changed"

    def pause_mapping(self, zoho_field: str, reason: str) -> None:
        """Pause the mapping rows writing ``zoho_field`` (Zoho refused the field itself,
        ``sync.drift``); committed with the batch. Not part of the pinned settings, so the
        run goes on without the row rather than stopping."""
        rows = self.session.scalars(sa.select(FieldMap).where(FieldMap.zoho_field == zoho_field))
        for row in rows:
            newly = row.paused_reason is None
            row.paused_reason = reason
            if newly and self.on_mapping_paused is not None:
                self.on_mapping_paused(row.zoho_field, row.host_key, reason)

    # -- pairs let go because a side left the scope (sync.scope) --------------------------

    def scope_exits(
        self, *, contact_ids: Sequence[str] = (), zoho_ids: Sequence[str] = ()
    ) -> dict[str, ScopeExit]:
        """The module's scope exits of these contacts (keyed by contact id) or records (by
        Zoho id), whichever ids are given."""
        column, values = ("zoho_id", zoho_ids) if zoho_ids else ("contact_id", contact_ids)
        key = getattr(ScopeExit, column)
        found: dict[str, ScopeExit] = {}
        for chunk in _chunks(list(values)):
            rows = self.session.scalars(
                sa.select(ScopeExit).where(ScopeExit.module == self.run_module, key.in_(chunk))
            )
            found.update({getattr(row, column): row for row in rows})
        return found

    def has_scope_exits(self) -> bool:
        """Whether any pair of the module was let go for leaving the scope; asked once per
        ledger (a run), so a sync that never used a scope makes no query per batch."""
        known = self.__dict__.get("_has_scope_exits")
        if known is None:
            known = (
                self.session.scalar(
                    sa.select(ScopeExit.id).where(ScopeExit.module == self.run_module).limit(1)
                )
                is not None
            )
            self.__dict__["_has_scope_exits"] = known
        return bool(known)

    def note_scope_exit(
        self, contact_id: str | None, zoho_id: str | None, *, side: str, action: str
    ) -> None:
        """Remember that this pair was let go because its ``side`` left the scope."""
        self.__dict__["_has_scope_exits"] = True
        self.session.add(
            ScopeExit(
                module=self.run_module,
                contact_id=contact_id,
                zoho_id=zoho_id,
                side=side,
                action=action,
            )
        )

    def clear_scope_exits(self, exits: Iterable[ScopeExit]) -> None:
        """The record came back into scope: it syncs again."""
        for row in exits:
            self.session.delete(row)

    # -- links ---------------------------------------------------------------------------

    def links_by_contact(self, contact_ids: Sequence[str]) -> dict[str, Link]:
        return self._links_keyed_by("contact_id", contact_ids)

    def links_by_zoho(self, zoho_ids: Sequence[str]) -> dict[str, Link]:
        return self._links_keyed_by("zoho_id", zoho_ids)

    def _links_keyed_by(
        self, column: str, values: Sequence[str], module: str | None = None
    ) -> dict[str, Link]:
        key = getattr(Link, column)
        module = self.module if module is None else module
        found: dict[str, Link] = {}
        for chunk in _chunks(list(values)):
            rows = self.session.scalars(
                sa.select(Link).where(Link.module == module, key.in_(chunk))
            )
            found.update({getattr(row, column): row for row in rows})
        return found

    def links_in_module(
        self, module: str, *, contact_ids: Sequence[str] = (), zoho_ids: Sequence[str] = ()
    ) -> dict[str, Link]:
        """:meth:`links_by_contact` or :meth:`links_by_zoho` (whichever ids are given) for a
        module the caller read once: ``self.module`` reloads the settings row after every
        commit, a query per batch on a push that commits per batch."""
        column, values = ("zoho_id", zoho_ids) if zoho_ids else ("contact_id", contact_ids)
        return self._links_keyed_by(column, values, module)

    def linked_zoho_ids(self, zoho_ids: Sequence[str]) -> set[str]:
        """Which of these Zoho records are linked, without loading their links."""
        return self._present(Link.zoho_id, Link.module, zoho_ids)

    def _present(
        self, column: sa.ColumnElement[Any], module: sa.ColumnElement[Any], values: Sequence[str]
    ) -> set[str]:
        """Which of ``values`` the module's rows hold in ``column``, a chunk per query."""
        found: set[str] = set()
        for chunk in _chunks(list(values)):
            found.update(
                self.session.scalars(
                    sa.select(column).where(module == self.run_module, column.in_(chunk))
                )
            )
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

    def new_link_row(
        self,
        contact_id: str,
        zoho_id: str,
        snapshot: dict[str, Any],
        zoho_modified_at: datetime | None,
        *,
        module: str | None = None,
    ) -> dict[str, Any]:
        """A link as :meth:`save_link` would store it, as a row for :meth:`write_links`.

        ``module`` is the run's module, read once per run: after every commit ``self.module``
        reloads the expired settings row, a query a 100-record batch need not pay for.
        """
        return {
            "module": self.module if module is None else module,
            "contact_id": contact_id,
            "zoho_id": zoho_id,
            "snapshot": dict(snapshot),
            "zoho_modified_at": zoho_modified_at,
            "synced_at": _now(),
            "last_error": None,
        }

    def write_links(
        self, new: Sequence[dict[str, Any]], changed: Sequence[tuple[Link, dict[str, Any]]]
    ) -> None:
        """Save a batch of links with one INSERT and one UPDATE (executemany), not a flush
        of an ORM object per link: at 100 records a call that flush was most of a push's
        own time. Rows come from :meth:`new_link_row`; ``changed`` pairs an existing link
        with its row.

        The ORM objects of changed links get the new values as their committed state, so
        what the session shows agrees with the database, and none of them is left dirty
        to be flushed later over the rows written here. A ``zoho_modified_at`` of None
        keeps the stored one, as :meth:`save_link` does.
        """
        table = Link.__table__
        if new:
            self.session.execute(table.insert(), list(new))
        if not changed:
            return
        rows = []
        for link, row in changed:
            modified = row["zoho_modified_at"] or link.zoho_modified_at
            rows.append(
                {
                    "b_id": link.id,
                    "b_zoho_id": row["zoho_id"],
                    "b_snapshot": row["snapshot"],
                    "b_zoho_modified_at": modified,
                    "b_synced_at": row["synced_at"],
                }
            )
            for key, value in (
                ("zoho_id", row["zoho_id"]),
                ("snapshot", row["snapshot"]),
                ("zoho_modified_at", modified),
                ("synced_at", row["synced_at"]),
                ("last_error", None),
            ):
                set_committed_value(link, key, value)
        columns = table.c
        self.session.execute(
            table.update()
            .where(columns.id == sa.bindparam("b_id"))
            .values(
                zoho_id=sa.bindparam("b_zoho_id", type_=columns.zoho_id.type),
                snapshot=sa.bindparam("b_snapshot", type_=columns.snapshot.type),
                zoho_modified_at=sa.bindparam(
                    "b_zoho_modified_at", type_=columns.zoho_modified_at.type
                ),
                synced_at=sa.bindparam("b_synced_at", type_=columns.synced_at.type),
                last_error=None,
            ),
            rows,
        )

    def drop_link(self, link: Link) -> None:
        self.session.delete(link)

    def drop_links(self, links: Iterable[Link]) -> None:
        """Delete links with one DELETE per 500, not an ORM delete each for the next flush.

        The objects leave the session (a link not yet flushed is simply forgotten), so no
        later flush touches rows that are gone; read what you need of them first.
        """
        stored: list[Any] = []
        for link in links:
            identity = sa.inspect(link).identity
            if identity is not None:
                stored.append(identity[0])
            self.session.expunge(link)
        for chunk in _chunks(stored):
            self.session.execute(
                sa.delete(Link)
                .where(Link.id.in_(chunk))
                .execution_options(synchronize_session=False)
            )

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

    def bury_many(self, pairs: Iterable[tuple[str | None, str | None]], *, deleted_on: str) -> None:
        """:meth:`bury` for many ``(zoho_id, contact_id)`` pairs, one INSERT (executemany)."""
        module = self.run_module
        rows = [
            {"module": module, "zoho_id": zoho_id, "contact_id": contact, "deleted_on": deleted_on}
            for zoho_id, contact in pairs
        ]
        if rows:
            self.session.execute(sa.insert(Tombstone), rows)

    def buried_zoho_ids(self, zoho_ids: Sequence[str]) -> set[str]:
        return self._present(Tombstone.zoho_id, Tombstone.module, zoho_ids)

    def known_deleted(self, zoho_ids: Sequence[str]) -> set[str]:
        """The records the sync already holds as deleted in Zoho: buried, and linked to no
        contact. Zoho's notification of such a deletion (most often one the push made)
        tells nothing new, and a pull skips them whatever Zoho says of them, so reading
        them back would only spend calls."""
        buried = self.buried_zoho_ids(zoho_ids)
        return buried - self.linked_zoho_ids(list(buried)) if buried else set()

    # -- outbox ----------------------------------------------------------------------------

    def expand_outbox_batches(self) -> int:
        """Turn captured batches into per-contact outbox rows; returns how many were made.

        Capture writes one row per flush and operation to keep the host's commit cheap;
        retries, errors and history are per contact, so the worker expands them here, in
        its own transaction, before it reads the outbox. The rows keep their batch's
        ``created_at`` and are inserted in batch order, so a contact's last operation gets
        the highest id and stays last.

        The batches are claimed and removed by one ``DELETE ... RETURNING`` (a subquery
        ``FOR UPDATE SKIP LOCKED`` on PostgreSQL): a second worker expanding at the same
        time gets only batches the first did not take, never the same ones again, and does
        not wait for the first to commit. SQLite admits one writer at a time: the second
        waits for the first to commit, or is refused ("database is locked", and its run is
        retried), and then finds the batches gone. A rollback of the worker's transaction
        puts the batches back.
        """
        session = self.session
        # Look before writing: on SQLite even a DELETE that matches nothing takes the
        # database's write lock until the worker commits, and hosts' writes would wait.
        if session.scalar(sa.select(OutboxBatch.id).limit(1)) is None:
            return 0
        claimed = sa.select(OutboxBatch.id).with_for_update(skip_locked=True)
        columns = (
            OutboxBatch.id,
            OutboxBatch.created_at,
            OutboxBatch.operation,
            OutboxBatch.contact_ids,
            OutboxBatch.zoho_ids,
        )
        if session.connection().dialect.delete_returning:
            batches = session.execute(
                sa.delete(OutboxBatch)
                .where(OutboxBatch.id.in_(claimed.scalar_subquery()))
                .returning(*columns)
                .execution_options(synchronize_session=False)
            ).all()
        else:  # MySQL and SQLite before 3.35: lock the rows, then delete them
            batches = session.execute(
                sa.select(*columns).order_by(OutboxBatch.id).with_for_update(skip_locked=True)
            ).all()
            for chunk in _chunks([batch.id for batch in batches]):
                session.execute(
                    sa.delete(OutboxBatch)
                    .where(OutboxBatch.id.in_(chunk))
                    .execution_options(synchronize_session=False)
                )
        rows = _outbox_rows(batches)
        if rows:
            session.execute(sa.insert(OutboxEntry), rows)
        return len(rows)

    def pending_outbox(self, *, expand: bool = True) -> dict[str, list[PendingChange]]:
        """Pending host changes grouped by contact, oldest first.

        Batches capture wrote since the last call are expanded first, in this transaction:
        the caller commits them with its first commit, or a rollback puts them back. A plan
        (``expand=False``) reads them as they are instead: its transaction lasts as long as
        it reads Zoho, minutes for a large first sync, and on SQLite a write in it would
        keep the host's own writes out all that time.

        The rows come back as plain values, not ORM objects: a large backlog is held for
        the whole run, an ORM object costs several times the memory, and each commit of
        the run would expire it, so reading it again would cost a query per row.
        """
        if expand:
            self.expand_outbox_batches()
        grouped: dict[str, list[PendingChange]] = {}
        rows = self.session.execute(
            sa.select(*(getattr(OutboxEntry, name) for name in PendingChange._fields))
            .where(OutboxEntry.processed_at.is_(None))
            .order_by(OutboxEntry.id)
        )
        for row in rows:
            change = PendingChange(*row)
            grouped.setdefault(change.contact_id, []).append(change)
        if not expand:
            for change in self._unexpanded_changes():
                grouped.setdefault(change.contact_id, []).append(change)
        return grouped

    def _unexpanded_changes(self) -> Iterator[PendingChange]:
        """The captured batches as the rows expanding them would make, in the same order
        (after every row already expanded); their id is 0, as they have no row yet."""
        batches = self.session.execute(
            sa.select(
                OutboxBatch.id,
                OutboxBatch.created_at,
                OutboxBatch.operation,
                OutboxBatch.contact_ids,
                OutboxBatch.zoho_ids,
            )
        ).all()
        for row in _outbox_rows(batches):
            yield PendingChange(id=0, last_error=None, processed_at=None, **row)

    def finish_outbox(
        self, entries: Iterable[PendingChange | OutboxEntry], error: str | None = None
    ) -> None:
        self._count_attempt(entries, processed_at=_now(), last_error=error)

    def retry_outbox_later(
        self, entries: Iterable[PendingChange | OutboxEntry], error: str
    ) -> None:
        self._count_attempt(entries, last_error=error)

    def _count_attempt(self, entries: Iterable[PendingChange | OutboxEntry], **values: Any) -> None:
        """One UPDATE per 500 rows, not one per row."""
        stored: list[Any] = []
        for entry in entries:
            if isinstance(entry, PendingChange):
                stored.append(entry.id)
                continue
            identity = sa.inspect(entry).identity
            if identity is None:  # not flushed yet: no row to update in bulk
                entry.attempts = (entry.attempts or 0) + 1
                for key, value in values.items():
                    setattr(entry, key, value)
                continue
            stored.append(identity[0])
            self.session.expire(entry, ["attempts", *values])
        for chunk in _chunks(stored):
            self.session.execute(
                sa.update(OutboxEntry)
                .where(OutboxEntry.id.in_(chunk))
                .values(attempts=sa.func.coalesce(OutboxEntry.attempts, 0) + 1, **values)
                .execution_options(synchronize_session=False)
            )

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
        if run is not self._history_run:
            # An import records a row per record for one run: the run's key is looked up
            # once, not inspected per row. Kept only once the run has a key.
            run_id = _row_id(run)
            self._history_run, self._history_run_id = (
                (run, run_id) if run_id is not None else (None, None)
            )
        else:
            run_id = self._history_run_id
        self._history.append(
            {
                "run_id": run_id,
                "contact_id": contact_id,
                "zoho_id": zoho_id,
                "direction": direction,
                "action": action,
                "changes": changes or {},
                "reason": reason,
                "error_code": error_code,
                "created_at": _now(),
                # resolved_at is left out: NULL, without a bind per row of an import.
            }
        )
        if action == "error":
            self._open_errors = True
            if self.on_failed_record is not None:
                self.on_failed_record(self._history[-1])
        if error_code == MERGED_PAIR_CODE:
            self._any_pairs = True

    def write_history(self) -> None:
        """Insert the history rows recorded since the last write, in one statement."""
        if self._history:
            rows, self._history = self._history, []
            # Core's executemany: no ORM bookkeeping for rows nothing reads back here.
            self.session.execute(RecordHistory.__table__.insert(), rows)

    def resolve_errors(self, contact_ids: Sequence[str]) -> None:
        """Contacts that synced cleanly have no open errors any more."""
        if self._open_errors is None:
            self._open_errors = (
                self.session.scalar(
                    sa.select(RecordHistory.id)
                    .where(RecordHistory.action == "error", RecordHistory.resolved_at.is_(None))
                    .limit(1)
                )
                is not None
            )
        if not self._open_errors:
            return
        self.write_history()
        moment = _now()
        for chunk in _chunks(list(contact_ids)):
            self.session.execute(
                sa.update(RecordHistory)
                .where(
                    RecordHistory.contact_id.in_(chunk),
                    RecordHistory.action == "error",
                    RecordHistory.resolved_at.is_(None),
                )
                .values(resolved_at=moment)
            )

    # -- contacts a Zoho merge paired ------------------------------------------------------

    def held_unlinked(self, contact_ids: Sequence[str]) -> set[str]:
        """Contacts a merge in Zoho paired with another (``sync.identity``): while the pair
        is open, and for good once the admin kept both, they stay unlinked, so the push
        must not create a record for them (that would undo the Zoho user's merge). One
        query a ledger answers "no pair ever" for every later call."""
        if self._any_pairs is None:
            self._any_pairs = (
                self.session.scalar(
                    sa.select(RecordHistory.id)
                    .where(RecordHistory.error_code == MERGED_PAIR_CODE)
                    .limit(1)
                )
                is not None
            )
        if not self._any_pairs or not contact_ids:
            return set()
        self.write_history()  # a pair this run's pull found is in the buffer yet
        held: set[str] = set()
        for chunk in _chunks(list(contact_ids)):
            held.update(
                self.session.scalars(
                    sa.select(RecordHistory.contact_id).where(
                        RecordHistory.contact_id.in_(chunk),
                        RecordHistory.error_code == MERGED_PAIR_CODE,
                        sa.or_(
                            RecordHistory.action == "keep",
                            sa.and_(
                                RecordHistory.action == "error",
                                RecordHistory.resolved_at.is_(None),
                            ),
                        ),
                    )
                )
            )
        return held

    # -- lead conversions (sync.conversion) --------------------------------------------------

    def conversions_by_contact(self, contact_ids: Sequence[str]) -> dict[str, LeadConversion]:
        """The converted leads of these contacts, by contact id: one query per 500 ids, and
        none at all (a push asks per batch) while the module has no conversion."""
        if not self._has_conversions():
            return {}
        found: dict[str, LeadConversion] = {}
        for chunk in _chunks(list(contact_ids)):
            rows = self.session.scalars(
                sa.select(LeadConversion).where(
                    LeadConversion.module == self.run_module, LeadConversion.contact_id.in_(chunk)
                )
            )
            found.update({row.contact_id: row for row in rows})
        return found

    def converted_lead_ids(self, lead_ids: Sequence[str]) -> set[str]:
        """Which of these leads the sync has already seen converted."""
        return self._present(LeadConversion.lead_id, LeadConversion.module, lead_ids)

    def record_conversion(self, **values: Any) -> LeadConversion:
        """Keep a conversion (``LeadConversion``'s columns but ``module``)."""
        row = LeadConversion(module=self.run_module, **values)
        self.session.add(row)
        self._any_conversions = True
        return row

    def _has_conversions(self) -> bool:
        """Whether the module has any conversion, asked once per ledger (a run)."""
        if self._any_conversions is None:
            of_module = LeadConversion.module == self.run_module
            first = self.session.scalar(sa.select(LeadConversion.id).where(of_module).limit(1))
            self._any_conversions = first is not None
        return self._any_conversions

    def followed_conversions(self) -> list[LeadConversion]:
        """Conversions whose contacts the sync follows to their Contact records."""
        return list(
            self.session.scalars(
                sa.select(LeadConversion)
                .where(LeadConversion.module == self.run_module, LeadConversion.outcome == "follow")
                .order_by(LeadConversion.id)
            )
        )
