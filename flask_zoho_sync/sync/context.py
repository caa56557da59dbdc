"""What a sync run works with, and what it reports.

The engine is handed a Zoho client, a host adapter and a ledger (the extension's own tables);
it imports none of their implementations, so it runs the same against the sandbox, real
Zoho or test doubles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Mapping as MappingABC
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from flask_zoho_sync.sync.mapping import HostChanges, Mapping
from flask_zoho_sync.sync.modes import WriteRules
from flask_zoho_sync.sync.scope import Scope

#: Keys of a link's snapshot that are bookkeeping, not mapped values (they start with "~").
FALLBACK_KEY = "~fallback"
#: Set on a link whose Zoho record holds values that are not the contact's (Zoho's upsert
#: matched it for another contact): the next push re-sends every value and the pull must
#: not copy the foreign values into the host meanwhile.
RESTORE_KEY = "~restore"
#: Set by the push on a link it just wrote: the Modified_Time of the Zoho version its re-read
#: saw just before the write. A Zoho edit notified as made after that moment, on a record
#: whose latest version is still that write, was overwritten by it (``PullPass.recover``).
READ_KEY = "~read"


class LinkRow(Protocol):
    contact_id: str
    zoho_id: str
    snapshot: dict[str, Any]
    zoho_modified_at: datetime | None


class ContactSource(Protocol):
    """The part of ``flask_zoho_sync.adapter.ContactAdapter`` the engine uses.

    ``create_contacts(changes) -> ids`` is used where an adapter has it, and is not
    required: see :func:`create_contacts`.
    """

    def get_values(self, contact: Any) -> dict[str, Any]: ...
    def set_values(self, contact: Any, values: dict[str, Any]) -> None: ...
    def get_groups(self, contact: Any) -> set[str]: ...
    def set_groups(self, contact: Any, add: Iterable[str], remove: Iterable[str]) -> None: ...
    def is_subscribed(self, contact: Any) -> bool | None: ...
    def set_subscribed(self, contact: Any, subscribed: bool) -> None: ...
    def contact_id(self, contact: Any) -> str: ...
    def contact_url(self, contact: Any) -> str | None: ...
    def modified_at(self, contact: Any) -> datetime | None: ...
    def get_many(self, contact_ids: Sequence[str]) -> dict[str, Any]: ...
    def find_by_email(self, email: str) -> Any | None: ...
    def find_many_by_email(self, emails: Iterable[str]) -> dict[str, Any]: ...
    def create(self) -> Any: ...
    def delete(self, contact: Any) -> None: ...
    def flush(self) -> None: ...
    def iter_batches(
        self, *, modified_since: datetime | None = None, batch_size: int = 500
    ) -> Any: ...
    def count(self) -> int: ...


@dataclass(frozen=True)
class EngineOptions:
    """Knobs of one run. Defaults are what an automatic run uses."""

    dry_run: bool = False
    #: Re-read this much before the watermark: Zoho's If-Modified-Since is to the second and
    #: records saved in the same second as the last one seen must not be skipped.
    overlap: timedelta = timedelta(minutes=5)
    #: Stop before deleting more than this share of linked contacts in one run...
    mass_delete_share: float = 0.2
    #: ...when that is more than this many contacts (small sets are not "mass").
    mass_delete_floor: int = 10
    #: The admin looked at the deletions and said yes.
    confirm_deletes: bool = False
    #: Create host contacts for Zoho records that match none.
    create_in_host: bool = True
    #: How many host contacts are read at a time.
    batch_size: int = 500
    #: A first sync moving at least this many records uses Zoho's bulk APIs (needs the
    #: engine's ``bulk`` transport; 0 never does). See ``sync.bulk``.
    bulk_threshold: int = 0
    #: Most Zoho write calls the push keeps in flight at once (``ZOHO_SYNC_MAX_CONCURRENCY``).
    max_concurrency: int = 1
    #: Most contacts an outbox run sends (0: all); the rest stay in the outbox, counted as
    #: ``outbox.left``, for the next run (``ZOHO_SYNC_PUSH_SLICE``).
    outbox_slice: int = 0
    #: Pull by COQL where the mapping allows (``ZOHO_SYNC_PULL_WITH_COQL``); see ``pull``.
    pull_with_coql: bool = True
    #: Most changes a real run's report lists (all are in the history).
    report_changes: int = 1000
    #: Most changes a plan lists (None: all, as ``sync --dry-run --json`` prints them). The
    #: admin page shows the first few hundred, errors first, of a plan made on the worker
    #: and handed back through Redis: all 100,000 of a large first sync would not fit.
    plan_changes: int | None = None
    #: What follows a linked lead's conversion in Zoho (``ZOHO_SYNC_ON_LEAD_CONVERSION``):
    #: "follow" its Contact record, or "stop" syncing the contact (``sync.conversion``).
    on_lead_conversion: str = "follow"
    #: The sync mode and the rows' overwrite policies (``sync.modes``): which writes the
    #: run may make. The default, two-way with every row "always", refuses none.
    rules: WriteRules = field(default_factory=WriteRules)
    #: What syncs (``sync.scope``): the host and Zoho scopes, on-leave, the match key.
    scope: Scope = field(default_factory=Scope)


@dataclass
class PlannedChange:
    """One thing a run did or (in a dry run) would do to one record."""

    direction: str  # "to_zoho" | "to_host"
    #: "create" | "update" | "delete" | "link" | "error" | "conflict" | "left_alone" (a write
    #: the sync mode or an overwrite policy refused; ``reason`` says which)
    action: str
    contact_id: str | None
    zoho_id: str | None
    changes: dict[str, Any] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    error_code: str | None = None


class SettingsChanged(RuntimeError):
    """The module, time zone, conflict policy or field mapping a run started with changed
    under it; the run stops before its next write (the message says what changed)."""


@dataclass
class RunReport:
    """What a run did: counts by direction and action, the changes, and how it ended."""

    #: succeeded | partial | failed | needs_confirmation | paused | stopped (settings changed)
    status: str = "succeeded"
    counts: Counter[str] = field(default_factory=Counter)
    changes: list[PlannedChange] = field(default_factory=list)
    message: str | None = None
    pending_deletes: int = 0
    #: The Zoho error that stopped a failed run (its class says retry, reconnect or fix).
    error: Exception | None = None
    #: A dry run's estimate of what the real run would cost: (calls, credits).
    estimate: tuple[int, int] | None = None
    #: Most changes kept in ``changes`` (None: all). A real run writes every change to the
    #: history table as it goes; holding them all here too made memory grow with the data
    #: (about 1 KB a record), so its report keeps the first ones. Counts stay complete.
    keep_changes: int | None = None
    #: Changes counted but not kept in ``changes``.
    changes_not_kept: int = 0
    #: The run's id in History (None for a plan, or a run that never started): what
    #: ``sync --revert RUN`` takes, so the command line can name it.
    run_id: int | None = None

    def add(self, change: PlannedChange) -> None:
        self.counts[f"{change.direction}.{change.action}"] += 1
        limit = self.keep_changes
        kept = limit is None or len(self.changes) < limit
        if not kept and change.action == "error":
            # Errors are what an admin must act on: up to as many again past the limit.
            kept = self.counts[f"{change.direction}.error"] + self.counts[
                f"{'to_host' if change.direction == 'to_zoho' else 'to_zoho'}.error"
            ] <= (limit or 0)
        if kept:
            self.changes.append(change)
        else:
            self.changes_not_kept += 1

    def count(self, key: str, amount: int = 1) -> None:
        self.counts[key] += amount


ProgressCallback = Callable[[int, int | None], None]


class RunInProgress(Protocol):
    """The sync run as its passes (pull, push, bulk) see it; ``sync.engine.SyncEngine`` is
    the one implementation.

    The passes are typed against this rather than the engine class, so the arrows go one
    way: the engine imports the passes, and the passes import only what lies below them.
    """

    client: Any
    bulk: Any
    adapter: ContactSource
    ledger: Any
    mapping: Mapping
    options: EngineOptions
    started_at: datetime
    #: The run's row in the history (None in a dry run).
    run: Any
    push_queue: dict[str, None]
    claimed: set[str]
    planned_to_zoho: dict[str, dict[str, Any]]
    planned_deleted: dict[str, str]
    planned_host_deletes: set[str]
    planned_seen: dict[str, datetime | None]
    pulled: bool
    plan_reread: bool
    stop_reason: str | None

    def host_writes(self) -> AbstractContextManager[Any]: ...
    def progress(self, phase: str, done: int) -> None: ...
    def check_settings(self) -> None: ...
    def too_many_deletes(self, count: int) -> bool: ...


def apply_host_changes(adapter: ContactSource, contact: Any, changes: HostChanges) -> None:
    if changes.fields:
        adapter.set_values(contact, dict(changes.fields))
    if changes.groups_add or changes.groups_remove:
        adapter.set_groups(contact, changes.groups_add, changes.groups_remove)
    if changes.subscribed is not None:
        adapter.set_subscribed(contact, changes.subscribed)


def create_one_by_one(adapter: ContactSource, changes: Sequence[HostChanges]) -> list[str]:
    """New contacts through the adapter's ``create``, each given its changes, then one
    flush for all of them; their ids in the order of ``changes``.

    The way for an adapter with no set-based ``create_contacts`` of its own (a host's own
    adapter, or a model whose ORM hooks a plain INSERT would skip): the host's session
    sees every contact as an object, so its defaults, validators and events apply.
    """
    contacts = []
    for change in changes:
        contact = adapter.create()
        apply_host_changes(adapter, contact, change)
        contacts.append(contact)
    adapter.flush()
    return [adapter.contact_id(contact) for contact in contacts]


def create_contacts(adapter: ContactSource, changes: Sequence[HostChanges]) -> list[str]:
    """New contacts, one per entry of ``changes``; their ids in the same order.

    An adapter may write them as a set (``ContactAdapter.create_contacts``); one that does
    not offer it (an engine adapter written against :class:`ContactSource` alone) gets
    :func:`create_one_by_one`, which is what the set-based way must be equal to.
    """
    create_many = getattr(adapter, "create_contacts", None)
    if create_many is None:
        return create_one_by_one(adapter, changes)
    contact_ids = [str(contact_id) for contact_id in create_many(changes)]
    if len(contact_ids) != len(changes):
        raise RuntimeError(
            f"{type(adapter).__name__}.create_contacts made {len(contact_ids)} contacts for "
            f"{len(changes)} records; it must return one id per entry, in their order."
        )
    return contact_ids


def host_canonical(mapping: Mapping, adapter: ContactSource, contact: Any) -> dict[str, Any]:
    return mapping.host_to_canonical(
        adapter.get_values(contact),
        groups=adapter.get_groups(contact),
        subscribed=adapter.is_subscribed(contact),
        contact_id=adapter.contact_id(contact),
        contact_url=adapter.contact_url(contact),
    )


def mapped_values(snapshot: MappingABC[str, Any] | None) -> dict[str, Any] | None:
    """A snapshot without its bookkeeping keys (what the merge compares against)."""
    if snapshot is None:
        return None
    return {key: value for key, value in snapshot.items() if not key.startswith("~")}


def link_base(link: Any, mapping: Mapping) -> dict[str, Any] | None:
    """A link's snapshot as the merge's base, without the keys whose row was remapped
    since the link was synced (``Mapping.stale_keys``): they merge as newly mapped."""
    base = mapped_values(link.snapshot)
    if base is None:
        return None
    stale = mapping.stale_keys(getattr(link, "synced_at", None))
    return {key: value for key, value in base.items() if key not in stale} if stale else base


def readable(mapping: Mapping, changes: MappingABC[str, Any]) -> dict[str, Any]:
    """Changes keyed by what an admin recognises (the Zoho field) for history and plans."""
    names = mapping.readable_names
    return {names.get(key, key): value for key, value in changes.items()}
