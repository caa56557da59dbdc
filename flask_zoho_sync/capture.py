"""Change capture: the host's contact writes become outbox rows in the host's own transaction.

Why session events and an outbox table, rather than enqueueing a job per change:

* The outbox rows are written by the same connection, in the same transaction, as the
  host's change. A rolled-back transaction or SAVEPOINT takes its rows with it, and a
  committed change always leaves a row behind, even when Redis is down at commit time. The
  row, not the job, is the source of truth; ``after_commit`` only sends a cheap wake-up.
* Listeners are attached to the host's session factory (Flask-SQLAlchemy's ``db.session``
  or a ``sessionmaker``), never to the global :class:`~sqlalchemy.orm.Session` class, so
  other sessions in the process (other apps, scripts, the test suite) are left alone.

What counts as a change
    Inserts and deletes of the contact model always count. An update counts only when an
    attribute named by ``watched_attributes()`` really changed: a watched column whose new
    value differs from the old one, or a watched relationship (the groups) whose collection
    gained or lost members. Writes to unwatched columns (``last_login``, counters) and
    assignments of the value already held write nothing.

The same-value pitfall
    After ``expire_on_commit``, assigning an attribute that was never reloaded records no old
    value: history says ``added=[v], deleted=[]`` whether or not ``v`` is new. We do not turn
    on ``active_history`` for the host's columns: that changes the host's own model for every
    session and costs one SELECT per *object* on assignment. Instead ``before_flush`` judges
    each dirty contact and reads the attributes whose old value is unknown in one batched
    SELECT per flush (500 keys per statement) from the database, which at that moment still
    holds the pre-flush values. Where no old value can be had (a composite primary key, an
    attribute set by a later ``before_flush`` hook) the change is assumed real: a spurious
    row costs one no-op at push time, a missed change loses data.

Group membership
    Changes to the watched relationship's collection count, from either side: if the group
    model has its own relationship over the same association table (``Group.contacts``),
    adding a contact there is captured too. Core statements on the association table
    (``session.execute(delete(contact_groups).where(...))``) are captured like bulk
    statements below. Not captured: rows removed by the database's ``ON DELETE CASCADE`` when
    a group is deleted through a model that has no relationship to contacts; call
    :func:`mark_dirty` for the members first.

Bulk statements
    ``session.execute(update(Contact)...)`` and ``delete(Contact)`` (ORM-enabled or on
    ``Contact.__table__``) bypass the flush. ``do_orm_execute`` captures them: a bulk UPDATE
    whose SET clause touches no watched column is ignored; otherwise the affected primary
    keys are read first with ``SELECT pk FROM contact WHERE <same criteria>`` (one extra
    indexed SELECT per statement; after an autoflush, like the statement itself), then the
    statement runs and the rows are written. "Bulk UPDATE by primary key" (a list of
    parameter dictionaries) takes the keys from the parameters without a SELECT. Under
    concurrent writers, a row that starts matching the WHERE clause between that SELECT and
    the UPDATE is not captured; hosts that need certainty there, and every write the session
    cannot see (``text()`` SQL, ``connection.execute``, ``bulk_save_objects``, bulk INSERT
    without primary keys in its parameters), call :func:`mark_dirty` in the same transaction.

Coalescing
    One entry per contact per transaction and operation: a contact edited in three flushes
    of one transaction is listed once as an ``upsert``. Deduplication remembers which
    contacts already have an entry per transaction level (``session.info``); a rolled-back
    savepoint forgets its own, a released one hands them to its parent. An upsert followed
    by a delete writes both entries, in order, and the push keeps the last.

The batch form of the outbox
    What a flush captured is written as one ``zoho_sync_outbox_batch`` row per operation
    (the contact ids as a JSON list, and for deletes their linked Zoho ids), not one
    ``zoho_sync_outbox`` row per contact: inserting 1,000 rows was most of capture's cost on
    the host's commit. The information is the same; ``Ledger.pending_outbox`` expands
    batches into per-contact rows in the worker's transaction (retries, errors and history
    stay per contact), and the status counts read both tables.

Cost
    Per flush: one pass over ``session.dirty`` in ``before_flush`` that judges each dirty
    contact and works out its id once, a lighter pass in ``after_flush`` that only looks for
    contacts the first did not judge changed (a later hook may have dirtied them), a SELECT
    only when old values are unknown, and one small INSERT per operation.
    ``bench/bench_capture.py`` measures it against the goal of a host commit of 1,000
    contact updates at most 10% slower.
"""

from __future__ import annotations

import logging
import operator
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import (
    LoaderCallableStatus,
    Mapper,
    ORMExecuteState,
    Session,
    SessionTransaction,
    scoped_session,
    sessionmaker,
)
from sqlalchemy.orm.attributes import get_history, instance_state
from sqlalchemy.orm.base import PASSIVE_NO_INITIALIZE
from sqlalchemy.orm.state import InstanceState

from .models import Link, OutboxBatch
from .tenancy import current_tenant, tenant_context

log = logging.getLogger(__name__)

#: ``session.info`` flag: while truthy, nothing is captured (the sync engine writing Zoho's
#: changes into the host, inside ``suppress_capture``).
CAPTURE_SUPPRESSED = "zoho_sync.capture_suppressed"

#: Per-session bookkeeping, namespaced so the host's own ``session.info`` keys are safe.
_FRAMES = "zoho_sync.capture_frames"
_PREFETCHED = "zoho_sync.capture_prefetched"
_JUDGED = "zoho_sync.capture_judged"

#: Primary keys per ``IN (...)`` list: well under SQLite's and PostgreSQL's parameter limits.
_CHUNK = 500

_NO_VALUE = LoaderCallableStatus.NO_VALUE

UPSERT = "upsert"
DELETE = "delete"

LinkLookup = Callable[[Connection, list[str]], dict[str, str]]
OnCommit = Callable[[list[str]], None]
#: ``(connection, contact_ids) -> {contact_id: tenant key}`` of contacts that still exist.
TenantLookup = Callable[[Connection, list[str]], dict[str, str]]

#: ``session.info`` key: the tenants whose outbox the transaction wrote to.
_TENANTS = "zoho_sync_capture_tenants"
SessionTarget = scoped_session[Any] | sessionmaker[Any]

#: Which handle listens on which session class, so module-level :func:`mark_dirty` can
#: reach the handle's ``link_lookup`` and ``on_commit`` from a session alone.
_HANDLES: weakref.WeakKeyDictionary[type, CaptureHandle] = weakref.WeakKeyDictionary()

#: A transaction level's captured contacts: contact id -> the last operation written.
Frame = dict[str, str]


def _link_table() -> sa.Table:
    return Link.__table__  # type: ignore[return-value]


def default_link_lookup(connection: Connection, contact_ids: list[str]) -> dict[str, str]:
    """The Zoho ids linked to ``contact_ids``, read on the flushing connection.

    Deletes need the Zoho id now: by push time the host row is gone and the link is the only
    way to find the Zoho record. A contact linked in two modules (only possible mid-switch)
    gets its most recently synced link.
    """
    table = _link_table()
    found: dict[str, str] = {}
    for chunk in _chunks(contact_ids):
        rows = connection.execute(
            sa.select(table.c.contact_id, table.c.zoho_id)
            .where(table.c.contact_id.in_(chunk))
            .order_by(table.c.synced_at)
        )
        for contact_id, zoho_id in rows:
            found[contact_id] = zoho_id
    return found


#: Prepared once: capture runs on every flush of the host.
_INSERT_BATCH = sa.insert(OutboxBatch.__table__)


def _link_tenants(connection: Connection, contact_ids: list[str]) -> dict[str, str]:
    """The tenant of each deleted contact's link (the host row is gone by now)."""
    table = _link_table()
    found: dict[str, str] = {}
    for chunk in _chunks(contact_ids):
        rows = connection.execute(
            sa.select(table.c.contact_id, table.c.tenant_id).where(table.c.contact_id.in_(chunk))
        )
        found.update({contact_id: tenant for contact_id, tenant in rows})
    return found


def _by_tenant(
    connection: Connection, changes: Frame, tenant_lookup: TenantLookup | None
) -> dict[str, Frame]:
    """``changes`` split by the tenant each contact belongs to: a host editing several
    tenants' contacts in one transaction (a platform admin, a script) fills each tenant's
    outbox, not the request's. Without a tenant column every change is the current
    tenant's."""
    if tenant_lookup is None:
        return {current_tenant(): changes}
    upserts = [contact_id for contact_id, op in changes.items() if op == UPSERT]
    deletes = [contact_id for contact_id, op in changes.items() if op == DELETE]
    tenants = tenant_lookup(connection, upserts) if upserts else {}
    if deletes:
        tenants.update(_link_tenants(connection, deletes))
    split: dict[str, Frame] = {}
    for contact_id, operation in changes.items():
        tenant = tenants.get(contact_id) or current_tenant()
        split.setdefault(tenant, {})[contact_id] = operation
    return split


def _write_rows(
    connection: Connection,
    changes: Frame,
    link_lookup: LinkLookup,
    tenant_lookup: TenantLookup | None = None,
) -> set[str]:
    """Each tenant's share of ``changes`` as batch rows (:func:`_write_tenant_rows`);
    returns the tenants written to."""
    split = _by_tenant(connection, changes, tenant_lookup)
    for tenant, share in split.items():
        _write_tenant_rows(connection, share, link_lookup, tenant)
    return set(split)


def _write_tenant_rows(
    connection: Connection, changes: Frame, link_lookup: LinkLookup, tenant: str
) -> None:
    """Write a flush's changes as one batch row per operation; deletes carry Zoho ids.

    A row per contact was most of capture's cost on the host's commit (inserting 1,000 rows
    took about 2 ms on SQLite and 6 ms on PostgreSQL); one row holding the ids as a JSON
    list costs a single small INSERT however many contacts changed. The worker expands
    batches into per-contact outbox rows (``Ledger.pending_outbox``). Each contact has one
    operation per flush, so splitting a flush by operation loses no ordering.
    """
    now = datetime.now(timezone.utc)
    if DELETE not in changes.values():
        upserts, deletes = list(changes), []
    else:
        upserts = [contact_id for contact_id, op in changes.items() if op == UPSERT]
        deletes = [contact_id for contact_id, op in changes.items() if op == DELETE]
    # Every row names every column: an executemany takes its columns from the first row.
    rows: list[dict[str, Any]] = []
    if upserts:
        rows.append(
            {
                "created_at": now,
                "operation": UPSERT,
                "contact_ids": upserts,
                "zoho_ids": None,
                "tenant_id": tenant,
            }
        )
    if deletes:
        linked = link_lookup(connection, deletes)
        zoho_ids = {contact: linked[contact] for contact in deletes if contact in linked}
        rows.append(
            {
                "created_at": now,
                "operation": DELETE,
                "contact_ids": deletes,
                "zoho_ids": zoho_ids,
                "tenant_id": tenant,
            }
        )
    connection.execute(_INSERT_BATCH, rows)


def _comparator(column: sa.Column[Any]) -> Callable[[Any, Any], Any]:
    """``column.type.compare_values``, or ``operator.eq`` where that is all it does.

    Most types (strings, numbers, dates) keep ``TypeEngine``'s ``x == y``; calling the C
    function directly gives the same verdict without a Python call per attribute, which
    counts when a flush holds thousands of contacts.
    """
    type_ = column.type
    if type(type_).compare_values is sa.types.TypeEngine.compare_values:
        return operator.eq
    return type_.compare_values


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _real_session(session: Session | scoped_session[Any]) -> Session:
    return session() if isinstance(session, scoped_session) else session


def is_suppressed(session: Session | scoped_session[Any]) -> bool:
    """Whether writes through ``session`` are currently not captured."""
    return bool(session.info.get(CAPTURE_SUPPRESSED))


@contextmanager
def suppress_capture(session: Session | scoped_session[Any]) -> Iterator[None]:
    """Write into the host without capturing the writes (the sync applying Zoho's changes).

    Capture decides at flush time, so the block flushes on the way in (the host's own
    pending edits are captured, not swallowed by the suppression) and, unless it is left by
    an exception, on the way out (the block's edits are written while still suppressed and
    do not echo back to Zoho when the caller commits later). Blocks nest; the previous value
    of the flag is restored on exit.
    """
    info = session.info
    session.flush()
    previous = info.get(CAPTURE_SUPPRESSED)
    info[CAPTURE_SUPPRESSED] = (previous or 0) + 1
    try:
        yield
        session.flush()
    finally:
        if previous is None:
            info.pop(CAPTURE_SUPPRESSED, None)
        else:
            info[CAPTURE_SUPPRESSED] = previous


@dataclass
class _Plan:
    """What ``watched_attributes()`` means on the model, worked out once per distinct set."""

    watched: frozenset[str]
    columns: dict[str, sa.Column[Any]]
    #: watched column -> how its type compares an old and a new value
    compare: dict[str, Callable[[Any, Any], Any]]
    relationships: frozenset[str]
    #: association table -> its column holding the contact's primary key
    link_tables: dict[sa.Table, sa.Column[Any]]
    #: other mappers' relationships over those association tables (``Group.contacts``)
    reverse: dict[Mapper[Any], tuple[str, ...]] = field(default_factory=dict)


class CaptureHandle:
    """The listeners :func:`install_capture` attached; ``remove()`` detaches them."""

    def __init__(
        self,
        target: SessionTarget,
        *,
        model: type[Any],
        watched_attributes: Callable[[], frozenset[str]],
        link_lookup: LinkLookup | None,
        on_commit: OnCommit | None,
        tenant_lookup: TenantLookup | None = None,
    ) -> None:
        self.target = target
        self.model = model
        self.watched_attributes = watched_attributes
        self.link_lookup = link_lookup or default_link_lookup
        self.on_commit = on_commit
        self.tenant_lookup = tenant_lookup
        mapper: Mapper[Any] = sa.inspect(model)
        self.mapper = mapper
        self.table: sa.Table = mapper.local_table  # type: ignore[assignment]
        self._pk_columns = list(mapper.primary_key)
        self._pk_keys = [mapper.get_property_by_column(c).key for c in self._pk_columns]
        #: SET-clause keys (column keys and attribute keys) -> attribute keys
        self._attribute_of = {prop.columns[0].key: prop.key for prop in mapper.column_attrs}
        self._attribute_of.update({prop.key: prop.key for prop in mapper.column_attrs})
        self._tables = {self.table}
        self._plan_cache: _Plan | None = None
        self._listeners: list[tuple[str, Callable[..., Any]]] = [
            ("before_flush", self._before_flush),
            ("after_flush", self._after_flush),
            ("do_orm_execute", self._do_orm_execute),
            ("after_commit", self._after_commit),
            ("after_transaction_end", self._after_transaction_end),
        ]
        self.installed = False

    # -- lifecycle --------------------------------------------------------------------------

    def _session_class(self) -> type:
        factory = (
            self.target.session_factory if isinstance(self.target, scoped_session) else self.target
        )
        if not isinstance(factory, sessionmaker):
            raise TypeError("install_capture needs a scoped_session over a sessionmaker, or one")
        return factory.class_

    def install(self) -> None:
        session_class = self._session_class()
        if session_class in _HANDLES:
            raise RuntimeError(
                "Change capture is already installed on this session; remove() it first."
            )
        for name, listener in self._listeners:
            event.listen(self.target, name, listener)
        _HANDLES[session_class] = self
        self.installed = True

    def remove(self) -> None:
        """Detach every listener (idempotent): for tests and re-initialisation."""
        if not self.installed:
            return
        for name, listener in self._listeners:
            event.remove(self.target, name, listener)
        session_class = self._session_class()
        if _HANDLES.get(session_class) is self:
            del _HANDLES[session_class]
        self.installed = False

    # -- what is watched --------------------------------------------------------------------

    def _plan(self) -> _Plan:
        watched = self.watched_attributes()
        plan = self._plan_cache
        if plan is not None and plan.watched == watched:
            return plan
        columns: dict[str, sa.Column[Any]] = {}
        relationships: set[str] = set()
        link_tables: dict[sa.Table, sa.Column[Any]] = {}
        for name in watched:
            if name in self.mapper.column_attrs:
                columns[name] = self.mapper.column_attrs[name].columns[0]  # type: ignore[assignment]
            elif name in self.mapper.relationships:
                relationships.add(name)
                prop = self.mapper.relationships[name]
                if prop.secondary is not None and len(prop.synchronize_pairs) == 1:
                    secondary: sa.Table = prop.secondary  # type: ignore[assignment]
                    link_tables[secondary] = prop.synchronize_pairs[0][1]  # type: ignore[assignment]
        compare = {name: _comparator(column) for name, column in columns.items()}
        plan = _Plan(watched, columns, compare, frozenset(relationships), link_tables)
        self._plan_cache = plan
        return plan

    def _reverse_keys(self, plan: _Plan, mapper: Mapper[Any]) -> tuple[str, ...]:
        """Relationships of another model over a watched association table, cached."""
        keys = plan.reverse.get(mapper)
        if keys is None:
            keys = tuple(
                prop.key
                for prop in mapper.relationships
                if prop.secondary is not None
                and prop.secondary in plan.link_tables
                and issubclass(prop.mapper.class_, self.model)
            )
            plan.reverse[mapper] = keys
        return keys

    # -- identities -------------------------------------------------------------------------

    def _contact_id(self, state: InstanceState[Any]) -> str | None:
        """The contact's primary key as text, without ever emitting SQL.

        Persistent rows carry it in their identity key; rows inserted by the current flush
        only in their attribute dictionary (the key is assigned after ``after_flush``).
        """
        if state.key is not None:
            identity = state.key[1]
        else:
            identity = tuple(state.dict.get(key) for key in self._pk_keys)
            if any(value is None for value in identity):
                return None
        if len(identity) == 1:
            return str(identity[0])
        return ",".join(str(value) for value in identity)

    # -- flush events -----------------------------------------------------------------------

    def _before_flush(self, session: Session, flush_context: Any, instances: Any) -> None:
        """Judge every dirty contact now, while the database still holds the old values.

        Attributes assigned without a loaded old value are read back in one batched SELECT
        per flush. The contacts found changed are kept, with their ids, for ``after_flush``,
        so that each contact is judged once and its id worked out once; ``after_flush``
        re-judges only contacts found unchanged or not seen here (a later ``before_flush``
        hook may have changed them).
        """
        info = session.info
        info.pop(_PREFETCHED, None)
        info.pop(_JUDGED, None)
        if info.get(CAPTURE_SUPPRESSED):
            return
        plan = self._plan()
        model = self.model
        changed = self._changed
        contact_id = self._contact_id
        #: contact -> its primary key (or its id as text), turned into text in one go later
        judged: dict[InstanceState[Any], Any] = {}
        unknown: dict[Any, tuple[InstanceState[Any], list[str]]] = {}
        single_key = len(self._pk_columns) == 1
        # One list reused for every contact: a fresh one each would be thousands of
        # allocations per flush, and the garbage collector runs on allocations.
        keys: list[str] = []
        for obj in session.dirty:
            if not isinstance(obj, model):
                continue
            state = instance_state(obj)
            if not state.committed_state:
                continue
            if not changed(state, plan, None, keys):
                if not keys:
                    continue  # unchanged so far; ``after_flush`` looks again
                if single_key and state.key is not None:
                    unknown[state.key[1][0]] = (state, keys)
                    keys = []
                    continue
                # Old values that cannot be read back: assume a change.
            keys.clear()
            key = state.key
            if single_key and key is not None:
                judged[state] = key[1][0]
            else:
                found = contact_id(state)
                if found is not None:
                    judged[state] = found
        info[_JUDGED] = judged
        if unknown:
            info[_PREFETCHED] = self._judge_by_reading_back(session, plan, unknown, judged)

    def _judge_by_reading_back(
        self,
        session: Session,
        plan: _Plan,
        unknown: dict[Any, tuple[InstanceState[Any], list[str]]],
        judged: dict[InstanceState[Any], Any],
    ) -> dict[InstanceState[Any], dict[str, Any]]:
        """Judge the contacts whose assigned attributes had no loaded old value (``unknown``,
        by primary key) on old values read back in one SELECT per chunk of keys; the changed
        ones join ``judged``. Returns what was read, for ``after_flush``."""
        wanted = sorted({key for _, keys in unknown.values() for key in keys})
        pk = self._pk_columns[0]
        columns = plan.columns
        connection = session.connection(bind_arguments={"mapper": self.mapper})
        prefetched: dict[InstanceState[Any], dict[str, Any]] = {}
        for chunk in _chunks(list(unknown)):
            statement = sa.select(pk, *(columns[key] for key in wanted)).where(pk.in_(chunk))
            for row in connection.execute(statement):
                state, keys = unknown[row[0]]
                values = dict(zip(wanted, row[1:], strict=True))
                prefetched[state] = {key: values[key] for key in keys}
        for state, _ in unknown.values():
            if self._changed(state, plan, prefetched.get(state)):
                found = self._contact_id(state)
                if found is not None:
                    judged[state] = found
        return prefetched

    def _changed(
        self,
        state: InstanceState[Any],
        plan: _Plan,
        known: Mapping[str, Any] | None,
        unknown: list[str] | None = None,
    ) -> bool:
        """Whether a persistent contact's watched attributes really changed in this flush.

        Only attributes with a ``committed_state`` entry were assigned, so unmodified ones
        cost nothing; that is what keeps 1,000 updated contacts cheap. An old value that was
        never loaded is taken from ``known`` (read from the database before the flush);
        failing that it is listed in ``unknown`` if given, or else counts as a change.
        """
        committed = state.committed_state
        compare = plan.compare
        current: dict[str, Any] | None = None
        for key in committed:
            comparator = compare.get(key)
            if comparator is None:
                if key in plan.relationships:
                    history = get_history(state.obj(), key, PASSIVE_NO_INITIALIZE)
                    if history.added or history.deleted:
                        return True
                continue
            old = committed[key]
            if old is _NO_VALUE:
                if known is not None and key in known:
                    old = known[key]
                elif unknown is not None:
                    unknown.append(key)
                    continue
                else:
                    return True
            if current is None:
                current = state.dict
            new = current.get(key, _NO_VALUE)
            if new is _NO_VALUE or not comparator(old, new):
                return True
        return False

    def _collect_reverse(
        self, plan: _Plan, state: InstanceState[Any], changes: Frame, *, whole: bool
    ) -> None:
        """Contacts whose membership changed through the group side of the association."""
        for key in self._reverse_keys(plan, state.mapper):
            history = get_history(state.obj(), key, PASSIVE_NO_INITIALIZE)
            members = [*history.added, *history.deleted]
            if whole:
                members.extend(history.unchanged)
            for member in members:
                contact_id = self._contact_id(instance_state(member))
                if contact_id is not None:
                    changes.setdefault(contact_id, UPSERT)

    def _after_flush(self, session: Session, flush_context: Any) -> None:
        """Decide what changed (history is still pre-flush here) and write the rows.

        Contacts ``before_flush`` found changed are taken as they are; the pass over
        ``session.dirty`` only looks for the others. Their ids go in before the deletes, so
        a contact a later hook deleted still ends as a delete.
        """
        info = session.info
        prefetched = info.pop(_PREFETCHED, None) or {}
        judged: dict[InstanceState[Any], Any] = info.pop(_JUDGED, None) or {}
        if info.get(CAPTURE_SUPPRESSED):
            return
        plan = self._plan()
        model = self.model
        changes: Frame = {}
        for obj in session.new:
            state = instance_state(obj)
            if isinstance(obj, model):
                contact_id = self._contact_id(state)
                if contact_id is not None:
                    changes[contact_id] = UPSERT
            elif plan.link_tables:
                self._collect_reverse(plan, state, changes, whole=False)
        for obj in session.dirty:
            state = instance_state(obj)
            if isinstance(obj, model):
                if state in judged or not state.committed_state:
                    continue
                if self._changed(state, plan, prefetched.get(state)):
                    contact_id = self._contact_id(state)
                    if contact_id is not None:
                        changes.setdefault(contact_id, UPSERT)
            elif plan.link_tables:
                self._collect_reverse(plan, state, changes, whole=False)
        if judged:
            changes.update(dict.fromkeys(map(str, judged.values()), UPSERT))
        for obj in session.deleted:
            state = instance_state(obj)
            if isinstance(obj, model):
                contact_id = self._contact_id(state)
                if contact_id is not None:
                    changes[contact_id] = DELETE
            elif plan.link_tables:
                self._collect_reverse(plan, state, changes, whole=True)
        if changes:
            self.record(session, changes)

    # -- bulk statements --------------------------------------------------------------------

    def _assigned_attributes(self, state: ORMExecuteState) -> set[str] | None:
        """The attributes a bulk UPDATE sets, or None when they cannot be told."""
        keys: set[str] = set()
        values = getattr(state.statement, "_values", None)
        if values:
            for key in values:
                name = key if isinstance(key, str) else getattr(key, "key", None)
                if name is None:
                    return None
                keys.add(self._attribute_of.get(name, name))
        parameters = state.parameters
        rows = parameters if isinstance(parameters, list) else [parameters] if parameters else []
        for row in rows:
            keys.update(self._attribute_of.get(name, name) for name in row)
        return keys or None

    def _do_orm_execute(self, state: ORMExecuteState) -> Any:
        """Capture bulk UPDATE/DELETE of contacts and Core writes to the association table."""
        if state.is_select or not (state.is_update or state.is_delete or state.is_insert):
            return None
        session = state.session
        if session.info.get(CAPTURE_SUPPRESSED):
            return None
        table = getattr(state.statement, "table", None)
        if table is None:
            return None
        plan = self._plan()
        # ORM statements carry an annotated copy of the table, equal to it and hashed alike,
        # so dictionary lookups (not ``is``) find it.
        if table in self._tables:
            return self._bulk_on_contacts(state, plan)
        column = plan.link_tables.get(table)
        if column is not None:
            return self._bulk_on_links(state, column)
        return None

    def _parameter_ids(self, state: ORMExecuteState, key: str) -> list[str] | None:
        parameters = state.parameters
        rows = parameters if isinstance(parameters, list) else [parameters] if parameters else []
        ids = [str(row[key]) for row in rows if row.get(key) is not None]
        if ids and len(ids) == len(rows):
            return ids
        values = getattr(state.statement, "_values", None) or {}
        for name, value in values.items():
            if getattr(name, "key", name) == key and hasattr(value, "value"):
                return [str(value.value)]
        return None

    def _preselect(self, state: ORMExecuteState, column: sa.Column[Any]) -> list[str]:
        """Keys the statement is about to touch: same WHERE clause, after the same autoflush."""
        session = state.session
        if state.is_orm_statement and session.autoflush:
            session.flush()
        statement = sa.select(column).distinct()
        whereclause = state.statement.whereclause  # type: ignore[attr-defined]
        if whereclause is not None:
            statement = statement.where(whereclause)
        connection = session.connection(bind_arguments=state.bind_arguments)
        return [str(value) for value in connection.scalars(statement)]

    def _bulk_on_contacts(self, state: ORMExecuteState, plan: _Plan) -> Any:
        session = state.session
        operation = DELETE if state.is_delete else UPSERT
        if state.is_update:
            assigned = self._assigned_attributes(state)
            if assigned is not None and not (assigned & plan.columns.keys()):
                return None
        ids: list[str] | None = None
        if len(self._pk_keys) == 1 and (state.is_insert or isinstance(state.parameters, list)):
            ids = self._parameter_ids(state, self._pk_keys[0])
        if ids is None and state.is_insert:
            log.warning(
                "A bulk INSERT of %s without primary keys in its parameters is not captured "
                "for Zoho; call flask_zoho_sync.capture.mark_dirty() with the new ids.",
                self.model.__name__,
            )
            return None
        if ids is None:
            if len(self._pk_columns) != 1:
                log.warning("Bulk statements on composite keys are not captured; mark_dirty().")
                return None
            ids = self._preselect(state, self._pk_columns[0])
        result = state.invoke_statement()
        if ids:
            self.record(session, dict.fromkeys(ids, operation))
        return result

    def _bulk_on_links(self, state: ORMExecuteState, column: sa.Column[Any]) -> Any:
        session = state.session
        if state.is_insert:
            ids = self._parameter_ids(state, column.key)
            if ids is None:
                log.warning(
                    "An INSERT into %s without contact ids in its parameters is not captured "
                    "for Zoho; call flask_zoho_sync.capture.mark_dirty().",
                    column.table.name,
                )
                return None
        else:
            ids = self._preselect(state, column)
        result = state.invoke_statement()
        if ids:
            self.record(session, dict.fromkeys(ids, UPSERT))
        return result

    # -- writing ----------------------------------------------------------------------------

    @staticmethod
    def _level(transaction: SessionTransaction | None) -> SessionTransaction | None:
        """The root or SAVEPOINT a transaction belongs to (flushes run in sub-transactions)."""
        while transaction is not None and not transaction.nested and transaction.parent:
            transaction = transaction.parent
        return transaction

    def record(self, session: Session, changes: Frame) -> None:
        """Write outbox rows for ``changes`` (contact id -> operation) in the current transaction.

        Contacts whose last row in this transaction (any enclosing level) already has the
        same operation are skipped: the push reads current state, so one row is enough.
        """
        connection = session.connection()
        frames: dict[SessionTransaction, Frame] = session.info.setdefault(_FRAMES, {})
        current = session.get_nested_transaction() or session.get_transaction()
        chain: list[Frame] = []
        level = current
        while level is not None:
            if (level.nested or level.parent is None) and level in frames:
                chain.append(frames[level])
            level = level.parent
        fresh = changes
        if chain:  # the transaction's first capture has nothing to coalesce with
            fresh = {}
            for contact_id, operation in changes.items():
                for frame in chain:
                    last = frame.get(contact_id)
                    if last is not None:
                        break
                else:
                    last = None
                if last != operation:
                    fresh[contact_id] = operation
        if not fresh:
            return
        written = _write_rows(connection, fresh, self.link_lookup, self.tenant_lookup)
        session.info.setdefault(_TENANTS, set()).update(written)
        if current is not None:
            frames.setdefault(current, {}).update(fresh)

    # -- transaction events -----------------------------------------------------------------

    def _after_commit(self, session: Session) -> None:
        """A released SAVEPOINT hands its contacts up; the outermost commit sends them on.

        No SQL and no ORM attribute access here: the session is between transactions and
        touching an expired attribute would silently begin a new one.
        """
        frames: dict[SessionTransaction, Frame] | None = session.info.get(_FRAMES)
        if not frames:
            return
        nested = session.get_nested_transaction()
        if nested is not None:
            frame = frames.pop(nested, None)
            parent = self._level(nested.parent)
            if frame and parent is not None:
                frames.setdefault(parent, {}).update(frame)
            return
        frame = frames.pop(session.get_transaction(), None)  # type: ignore[arg-type]
        frames.clear()
        tenants = session.info.pop(_TENANTS, None) or {current_tenant()}
        if frame and self.on_commit is not None:
            try:
                for tenant in sorted(tenants):  # each tenant's push, as that tenant
                    with tenant_context(tenant):
                        self.on_commit(list(frame))
            except Exception:
                log.warning(
                    "Could not schedule the Zoho push for %d contact(s) after commit; the "
                    "outbox keeps them and the next tick re-drives it.",
                    len(frame),
                    exc_info=True,
                )

    def _after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        """Forget what a transaction level captured unless it was committed.

        Fires after rollbacks, savepoint rollbacks and ``close()`` alike (``after_soft_rollback``
        misses ``close()``); a committed level was already handed on by ``_after_commit``.
        """
        if transaction.parent is None:
            session.info.pop(_FRAMES, None)
            session.info.pop(_TENANTS, None)
            session.info.pop(_PREFETCHED, None)
            session.info.pop(_JUDGED, None)
        elif transaction.nested:
            frames = session.info.get(_FRAMES)
            if frames:
                frames.pop(transaction, None)


def install_capture(
    session: SessionTarget,
    *,
    model: type[Any],
    watched_attributes: Callable[[], frozenset[str]],
    link_lookup: LinkLookup | None = None,
    on_commit: OnCommit | None = None,
    tenant_lookup: TenantLookup | None = None,
) -> CaptureHandle:
    """Capture ``model``'s changes made through ``session`` (the host's) into the outbox.

    :param session: the host's ``scoped_session`` (Flask-SQLAlchemy's ``db.session``) or
        ``sessionmaker``; only sessions it makes are listened to.
    :param model: the contact model. Inserts and deletes always count.
    :param watched_attributes: the attribute names whose change matters (mapped fields, the
        groups relationship, the subscription column). Called on every flush: cache it.
    :param link_lookup: ``(connection, contact_ids) -> {contact_id: zoho_id}`` for deletes;
        by default every link of the contact (see :func:`default_link_lookup`).
    :param on_commit: called with the contact ids of each committed transaction that
        captured any, once per tenant written to, as that tenant; exceptions are logged
        and swallowed, the outbox rows stay.
    :param tenant_lookup: for a host whose contacts carry a tenant column: the tenant of
        each contact, so its change fills its own tenant's outbox.
    """
    handle = CaptureHandle(
        session,
        model=model,
        watched_attributes=watched_attributes,
        link_lookup=link_lookup,
        on_commit=on_commit,
        tenant_lookup=tenant_lookup,
    )
    handle.install()
    return handle


def _handle_for(session: Session) -> CaptureHandle | None:
    for cls in type(session).__mro__:
        handle = _HANDLES.get(cls)
        if handle is not None:
            return handle
    return None


def mark_dirty(
    session: Session | scoped_session[Any],
    contact_ids: Iterable[Any],
    operation: str = UPSERT,
) -> None:
    """Put contacts in the outbox by hand, in the current transaction.

    For writes the session events cannot see: ``text()`` SQL, ``connection.execute``,
    legacy ``bulk_*`` methods, bulk INSERT without primary keys. Rows follow the transaction
    like captured ones; when capture is installed on this session they also reach its
    ``on_commit`` and ``link_lookup``. Suppression does not apply: this is an explicit call.
    """
    if operation not in (UPSERT, DELETE):
        raise ValueError(f"operation must be {UPSERT!r} or {DELETE!r}, not {operation!r}")
    real = _real_session(session)
    ids = [str(contact_id) for contact_id in contact_ids]
    if not ids:
        return
    handle = _handle_for(real)
    changes = dict.fromkeys(ids, operation)
    if handle is not None:
        handle.record(real, changes)
    else:
        _write_rows(real.connection(), changes, default_link_lookup)
