"""Host -> Zoho: every pending host change, in as few calls as the work allows.

Changes are coalesced per contact (many edits, one write), only the fields that differ from
the last-synced snapshot are sent, updates go 100 to a call by Zoho id, creates 100 to a call
as upserts on the duplicate-check key (so a retried create finds the record it made instead
of making another), deletes 100 to a call. An outbox row is finished only once Zoho has
answered for its record; one bad record fails alone, with Zoho's reason kept.

Update and create batches go out up to ``max_concurrency`` at a time (``InFlight``): each
contact is in one batch only, and creates are upserts on the duplicate-check key, so the
order Zoho applies two batches in cannot matter. Results are settled here, in this thread,
in the order the batches were sent. Deletions wait until every write has been answered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_zoho_sync.sync.checked import (
    CHANGED_IN_ZOHO,
    GONE_FROM_ZOHO,
    GONE_MESSAGE,
    TRANSIENT_CODES,
    Reread,
    WriteAnswer,
    checked_update,
)
from flask_zoho_sync.sync.context import (
    FALLBACK_KEY,
    READ_KEY,
    RESTORE_KEY,
    PlannedChange,
    RunInProgress,
    RunReport,
    link_base,
    mapped_values,
    readable,
)
from flask_zoho_sync.sync.conversion import push_followed, set_aside_converted
from flask_zoho_sync.sync.drift import field_refusals, keys_of, picklist_refusal, without_fields
from flask_zoho_sync.sync.identity import adopt_duplicate, held_unlinked
from flask_zoho_sync.sync.inflight import InFlight
from flask_zoho_sync.sync.modes import mode_refusal
from flask_zoho_sync.sync.pull import PullPass
from flask_zoho_sync.sync.revert import UNDO_KEY, undo_values
from flask_zoho_sync.sync.scope import LEFT_SCOPE, match_binding
from flask_zoho_sync.sync.skips import report_left_alone, report_refused_record, restrain_push
from flask_zoho_sync.zoho.results import RecordResult
from flask_zoho_sync.zoho.timefmt import UTC

#: Zoho takes at most 100 records (or ids) per write call (reference §2.4-§2.7).
BATCH = 100

#: Per-record codes that mean "try again later", not "this record is bad".
_TRANSIENT_CODES = TRANSIENT_CODES

#: How many times one push merges and re-sends records a Zoho user keeps changing under it;
#: what is still contested after that waits for the next run (its pull merges it).
CONTESTED_ROUNDS = 2


@dataclass
class _Outgoing:
    contact_id: str
    link: Any
    base: dict[str, Any] | None
    changed: dict[str, Any]
    payload: dict[str, Any]
    entries: list[Any]
    filled: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: The Zoho version (Modified_Time) the sync last merged or wrote for this record: a
    #: newer one, found just before the write, is an edit the merge has not seen.
    seen_at: datetime | None = None


@dataclass
class _Deletion:
    contact_id: str
    zoho_id: str
    link: Any
    entries: list[Any]
    #: The module the record is in when not the run's: Contacts, for a contact followed
    #: from a converted lead (``sync.conversion``).
    module: str | None = None
    #: Why the Zoho record goes: the contact was deleted, or left the sync's scope.
    reason: str = "deleted in the host"

    def planned(self) -> PlannedChange:
        return PlannedChange("to_zoho", "delete", self.contact_id, self.zoho_id, reason=self.reason)


def _aware(moment: datetime | None) -> datetime | None:
    """A stored time as aware UTC (SQLite hands back naive datetimes)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _refusal(code: str | None, message: str | None) -> str:
    if code == GONE_FROM_ZOHO and message == GONE_MESSAGE:
        return (
            f"Not sent: {GONE_MESSAGE}, so Zoho would refuse it ({code}); the next sync "
            "that pulls deletes the contact too."
        )
    return f"Zoho refused it: {code or 'error'} {message or ''}".strip()


@dataclass
class _SettledBatch:
    """What settling one batch gathers, to be written to the ledger in one go."""

    #: The links the module already has to the records Zoho answered with, by Zoho id.
    claimed: dict[str, Any]
    #: The link rows this batch writes, by Zoho id.
    fresh: dict[str, dict[str, Any]] = field(default_factory=dict)
    new_links: list[dict[str, Any]] = field(default_factory=list)
    changed_links: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)
    #: Outbox entries Zoho has answered for.
    finished: list[Any] = field(default_factory=list)
    #: Contacts whose earlier errors this batch's writes resolve.
    resolved: list[str] = field(default_factory=list)


def _written_snapshot(item: _Outgoing, read_at: datetime | None) -> dict[str, Any]:
    """The values Zoho now holds for the record, as the next merge's base: the last synced
    ones with this write on top, the fallbacks still standing in for blank host values,
    and the version the re-read saw just before the write."""
    snapshot = dict(item.base or {})
    snapshot.update(item.changed)
    if item.filled:
        snapshot[FALLBACK_KEY] = item.filled
    elif item.link is not None and FALLBACK_KEY in (item.link.snapshot or {}):
        kept = {
            key: value
            for key, value in item.link.snapshot[FALLBACK_KEY].items()
            if key not in item.changed
        }
        if kept:
            snapshot[FALLBACK_KEY] = kept
    if read_at is not None:
        snapshot[READ_KEY] = read_at.isoformat()
    return snapshot


def _undo_of_update(item: _Outgoing, action: str) -> dict[str, Any]:
    """What Zoho held before this update and what it holds now, for a revert
    (``sync.revert``): the link's snapshot is what Zoho held, as the re-read before the
    write confirmed. Creates and links have no before-values in Zoho to go back to."""
    if action != "update":
        return {}
    base = item.base or {}
    before = {key: base.get(key) for key in item.changed}
    return {UNDO_KEY: undo_values(before, item.changed)}


def _undo_of_deletion(item: _Deletion) -> dict[str, Any]:
    """The deleted record's last synced values, so a revert can bring it back."""
    if item.link is None:
        return {}
    return {UNDO_KEY: undo_values(mapped_values(item.link.snapshot), None)}


@dataclass
class _Contested:
    """A record Zoho refused to overwrite (or the re-read showed changed): merged again."""

    item: _Outgoing
    record: dict[str, Any] | None


class PushPass:
    """One push over a set of contacts (the outbox, everything, or what changed)."""

    def __init__(self, engine: RunInProgress, report: RunReport) -> None:
        self.engine = engine
        self.report = report
        self.mapping = engine.mapping
        self.adapter = engine.adapter
        self.ledger = engine.ledger
        self.dry_run = engine.options.dry_run
        self.updates: list[_Outgoing] = []
        self.creates: list[_Outgoing] = []
        self.deletions: list[_Deletion] = []
        self.done = 0
        self.calls = InFlight(1, threaded=False)
        #: Read once: the settings row is expired by every commit, and reading its module
        #: again for each batch would reload it.
        self.module = self.ledger.run_module
        self._labels: dict[str, str] = {}
        #: Records changed in Zoho under this push, by contact: merged, then sent again.
        self.contested: dict[str, _Contested] = {}
        #: What the re-read before a write asks for: what a pull reads, to merge it.
        self._fields = self.mapping.zoho_api_names()
        #: Zoho fields refused as a whole during this push (``sync.drift``): left out of
        #: every later payload; records refused for them are sent again without them.
        self.paused_fields: set[str] = set()
        self.resend: dict[str, list[_Outgoing]] = {"update": [], "create": []}
        #: Contacts fields Zoho refused as a whole in writes to followed Contacts: left out
        #: of the push's later writes to them (``conversion.FollowedWriter``).
        self.followed_left_out: set[str] = set()

    def run(self, contact_ids: Iterable[str], outbox: dict[str, list[Any]]) -> None:
        limit = self.engine.options.max_concurrency
        size = self._read_size()
        with InFlight(limit, name="zoho-sync-push", threaded=not self.dry_run) as self.calls:
            batch: list[str] = []
            for contact_id in contact_ids:
                batch.append(contact_id)
                if len(batch) >= size:
                    self._prepare(batch, outbox)
                    batch = []
            if batch:
                self._prepare(batch, outbox)
            self._send_updates(force=True)
            self._send_creates(force=True)
            self.calls.drain()
            self._resend_without_paused_fields()
            for _round in range(CONTESTED_ROUNDS):
                if not self.contested:
                    break
                self._merge_contested()
        self._leave_contested()
        self.calls = InFlight(1, threaded=False)
        self._send_deletions()
        if not self.dry_run and self.report.status != "needs_confirmation":
            self.ledger.settings.last_push_at = self.engine.started_at
            self.ledger.commit()

    def _merge_contested(self) -> None:
        """Merge the records a Zoho user changed under this push, then send what the merge
        leaves for Zoho (through the same checked write).

        The merge is the pull's three-way merge: a field only Zoho changed goes to the host,
        one both sides changed is a conflict, decided by the policy and recorded in the
        history with both values. Records refused by Zoho's conditional write were not read
        with their new values: they are read here, one call per 100.
        """
        contested, self.contested = self.contested, {}
        records = [entry.record for entry in contested.values() if entry.record is not None]
        unread = [entry.item.link.zoho_id for entry in contested.values() if entry.record is None]
        if unread:
            records += self.engine.client.get_records(self.module, unread, self._fields)
        PullPass(self.engine, self.report).merge_records(records)
        if not self.dry_run:
            self.ledger.commit()
        again = {contact_id: entry.item.entries for contact_id, entry in contested.items()}
        self._prepare(list(again), again)
        self._send_updates(force=True)
        self._send_creates(force=True)
        self.calls.drain()

    def _leave_contested(self) -> None:
        """Records still changing under the push after its rounds wait for the next run,
        whose pull merges them; their outbox rows stay pending."""
        contested, self.contested = self.contested, {}
        for contact_id, entry in contested.items():
            item = entry.item
            self._fail(
                contact_id,
                item.link.zoho_id if item.link is not None else None,
                item.entries,
                "Changed in Zoho again while the sync was sending this contact's changes; "
                "nothing was overwritten, and the next sync merges both sides.",
                CHANGED_IN_ZOHO,
                retry=True,
            )

    def _read_size(self) -> int:
        """How many contacts to read and plan before sending: one call's worth.

        Settling commits, which expires every contact read and not yet planned, so the
        calls' answers are settled only between reads. Reading 500 at a time left the
        threads idle while the run's thread planned the next 500, then had it wait for
        them; a call's worth at a time keeps both busy (a pipeline: batch k+1 is read
        and planned while batch k is on the wire).
        """
        return min(self.engine.options.batch_size, BATCH)

    def run_deletions(self, outbox: dict[str, list[Any]]) -> None:
        """Send the host's captured deletions before anything else in the pass.

        A delete entry names the Zoho record the contact was linked to when it was deleted.
        Handling these first matters where the host database reuses ids (SQLite does after
        the highest row is deleted): a contact the pull creates next may get the deleted
        one's id, and must not inherit its link.
        """
        links = self.ledger.links_by_contact(list(outbox))
        still, followed = set_aside_converted(self.engine, list(outbox), outbox)
        kept = set(still)
        for contact_id in followed:  # deleted in Contacts, where the link followed the lead
            deletes = [e for e in outbox[contact_id] if e.operation == "delete"]
            if not deletes:
                continue
            outbox[contact_id] = [e for e in outbox[contact_id] if e.operation != "delete"]
            link = links.get(contact_id)
            if link is None:  # unlinked since (a merge pair): nothing of it is in Zoho
                if not self.dry_run:
                    self.ledger.finish_outbox(deletes)
                continue
            self.deletions.append(
                _Deletion(contact_id, str(link.zoho_id), link, deletes, module="Contacts")
            )
        for contact_id, entries in outbox.items():
            if contact_id not in kept:
                continue
            deletes = [entry for entry in entries if entry.operation == "delete"]
            if not deletes:
                continue
            link = links.get(contact_id)
            zoho_id = next((entry.zoho_id for entry in reversed(deletes) if entry.zoho_id), None)
            if zoho_id is None and link is not None:
                zoho_id = link.zoho_id
            if link is not None and link.zoho_id != zoho_id:
                link = None
            entries[:] = [entry for entry in entries if entry.operation != "delete"]
            if zoho_id is None:
                if not self.dry_run:
                    self.ledger.finish_outbox(deletes)
                continue
            self.deletions.append(_Deletion(contact_id, zoho_id, link, deletes))
        self._send_deletions()
        self.deletions = []

    # -- deciding what to send ------------------------------------------------------------

    def _prepare(self, contact_ids: list[str], outbox: dict[str, list[Any]]) -> None:
        # Contacts whose leads were converted are not the module's any more (sync.conversion).
        contact_ids, followed = set_aside_converted(self.engine, contact_ids, outbox)
        push_followed(
            self.engine,
            self.report,
            followed,
            outbox,
            merge=PullPass(self.engine, self.report).merge_followed,
            left_out=self.followed_left_out,
        )
        contacts = self.adapter.get_many(contact_ids)
        links = self.ledger.links_in_module(self.module, contact_ids=contact_ids)
        for zoho_id, gone_contact in self.engine.planned_deleted.items():
            link = links.get(gone_contact)
            if link is not None and link.zoho_id == zoho_id:
                del links[gone_contact]
        held = held_unlinked(self, [c for c in contact_ids if c not in links], outbox)
        held |= self._held_by_scope(list(contacts), links, outbox)
        for contact_id in contact_ids:
            if contact_id in self.engine.planned_host_deletes or contact_id in held:
                continue  # the plan's pull deletes it; or a Zoho merge paired it (identity)
            entries = outbox.get(contact_id, [])
            contact = contacts.get(contact_id)
            link = links.get(contact_id)
            if contact is None:
                self._plan_deletion(contact_id, link, entries)
                continue
            self._plan_write(contact_id, contact, link, entries)
        # Sent only now: settling a batch commits, and a commit expires the contacts loaded
        # above, so sending mid-loop would reload each remaining contact one query at a time.
        # Planned, they are let go first: each commit walks every object the session still
        # holds to expire it, and the contacts kept alive here made every commit walk them.
        contacts.clear()
        contact = None
        self._send_updates()
        self._send_creates()

    def _held_by_scope(
        self, present: list[str], links: dict[str, Any], outbox: dict[str, list[Any]]
    ) -> set[str]:
        """The contacts the scope keeps from this push (``sync.scope``): those outside the
        host scope (a linked one leaves: its pair is let go as ``on_leave`` says), and
        unlinked ones whose Zoho record left the Zoho scope (never linked or created
        again while it stays out). A contact back in the host scope has its exit forgotten.
        """
        scope = self.engine.options.scope
        held: set[str] = set()
        if scope.limits_host and present:
            inside = self.adapter.scoped_ids(  # type: ignore[attr-defined]
                present, groups=scope.host_groups, filter_name=scope.host_filter
            )
            for contact_id in present:
                if contact_id in inside:
                    continue
                held.add(contact_id)
                entries = outbox.get(contact_id, [])
                link = links.get(contact_id)
                if link is None:
                    self.report.count("to_zoho.skipped_out_of_scope")
                    if not self.dry_run:
                        self.ledger.finish_outbox(entries)
                    continue
                self._leave_scope(contact_id, link, entries, scope.on_leave)
        if not self.ledger.has_scope_exits():
            return held
        unlinked = [c for c in present if c not in links and c not in held]
        exits = self.ledger.scope_exits(contact_ids=unlinked) if unlinked else {}
        back = []
        for contact_id, exit_row in exits.items():
            if exit_row.side == "zoho":
                held.add(contact_id)
                self.report.count("to_zoho.skipped_left_scope")
                if not self.dry_run:
                    self.ledger.finish_outbox(outbox.get(contact_id, []))
            else:
                back.append(exit_row)
        if back and not self.dry_run:
            self.ledger.clear_scope_exits(back)
        return held

    def _leave_scope(self, contact_id: str, link: Any, entries: list[Any], on_leave: str) -> None:
        """A linked contact left the host scope: its Zoho record is deleted (through the
        mass-delete breaker, with the run's deletions) or the pair is unlinked, both kept."""
        if on_leave == "delete":
            self.deletions.append(
                _Deletion(
                    contact_id, link.zoho_id, link, entries, reason=f"the contact {LEFT_SCOPE}"
                )
            )
            return
        self.report.add(
            PlannedChange("to_zoho", "unlink", contact_id, link.zoho_id, reason=LEFT_SCOPE)
        )
        if self.dry_run:
            return
        self.ledger.record(
            self.engine.run,
            direction="to_zoho",
            action="unlink",
            contact_id=contact_id,
            zoho_id=link.zoho_id,
            changes={},
            reason=f"the contact {LEFT_SCOPE}; both are kept, no longer synced",
        )
        self.ledger.drop_links([link])
        self.ledger.note_scope_exit(contact_id, link.zoho_id, side="host", action="unlink")
        self.ledger.finish_outbox(entries)

    def _plan_deletion(self, contact_id: str, link: Any, entries: list[Any]) -> None:
        zoho_id = link.zoho_id if link is not None else None
        zoho_id = zoho_id or next((entry.zoho_id for entry in entries if entry.zoho_id), None)
        if zoho_id is None:
            # Deleted before it ever reached Zoho: nothing to delete there.
            if not self.dry_run:
                self.ledger.finish_outbox(entries)
            return
        self.deletions.append(_Deletion(contact_id, zoho_id, link, entries))

    def _plan_write(self, contact_id: str, contact: Any, link: Any, entries: list[Any]) -> None:
        values = self.adapter.get_values(contact)
        host_values = self.mapping.host_to_canonical(
            values,
            groups=self.adapter.get_groups(contact),
            subscribed=self.adapter.is_subscribed(contact),
            contact_id=self.adapter.contact_id(contact),
            contact_url=self.adapter.contact_url(contact),
        )
        base = link_base(link, self.mapping) if link is not None else None
        restore = link is not None and bool((link.snapshot or {}).get(RESTORE_KEY))
        changed: dict[str, Any] = {}
        planned = self.engine.planned_to_zoho.get(contact_id) if self.dry_run else None
        if planned is not None:
            # The pull already decided this contact in the plan (its merge ran, but the host
            # was not written): plan what that merge gives to Zoho, nothing more.
            host_values = {}
            changed = dict(planned)
        for key, value in host_values.items():
            binding = self.mapping.binding(key)
            if not binding.direction.writes_zoho:
                continue
            if restore:
                changed[key] = value
            elif base is None:
                if value is not None:
                    changed[key] = value
            elif key not in base or not self.mapping.values_equal(key, base[key], value):
                changed[key] = value
        if not restore and self.engine.options.rules.restrains:
            restrained = self._restrained(contact_id, link, base, changed, entries, planned)
            if restrained is None:
                return
            changed = restrained
        if not changed:
            if link is not None and not self.dry_run:
                self.ledger.finish_outbox(entries)
            return
        if link is None and not self.mapping.has_data(changed):
            # A contact with only an email would become a Zoho record named after it; it is
            # sent once a mapped field is filled in (that edit is captured again).
            self.report.count("to_zoho.skipped_blank")
            if not self.dry_run:
                self.ledger.finish_outbox(entries)
            return
        payload = self.mapping.canonical_to_zoho(changed)
        original_last_name = payload.get("Last_Name")
        # ``values`` is what ``host_canonical`` reads, fetched once: an adapter's
        # ``get_values`` may be costly (custom fields in another table or a JSON column).
        email = values.get("email")
        payload, warnings, errors = self.mapping.prepare_outgoing(
            payload, link is None, fallback_email=email if isinstance(email, str) else None
        )
        if errors:
            self._fail(
                contact_id, link.zoho_id if link else None, entries, "; ".join(errors), "BAD_VALUE"
            )
            return
        filled: dict[str, Any] = {}
        if "Last_Name" in payload and not original_last_name:
            last_name_key = next(
                (b.key for b in self.mapping.active_bindings() if b.zoho_api_name == "Last_Name"),
                None,
            )
            if last_name_key:
                filled[last_name_key] = payload["Last_Name"]
        outgoing = _Outgoing(contact_id, link, base, changed, payload, entries, filled, warnings)
        if link is not None:
            outgoing.payload["id"] = link.zoho_id
            outgoing.seen_at = _aware(link.zoho_modified_at)
            if self.dry_run and contact_id in self.engine.planned_seen:
                # The plan merged a newer version (the run's merge saves it on the link).
                outgoing.seen_at = _aware(self.engine.planned_seen[contact_id])
            self.updates.append(outgoing)
        else:
            self.creates.append(outgoing)

    def _restrained(
        self,
        contact_id: str,
        link: Any,
        base: dict[str, Any] | None,
        changed: dict[str, Any],
        entries: list[Any],
        planned: dict[str, Any] | None,
    ) -> dict[str, Any] | None:
        """``changed`` without what the sync mode and the rows' overwrite policies refuse
        (``sync.skips``), each refusal in the report; None when the mode refuses the whole
        record (update only: no Zoho record is created), whose outbox rows are then done.
        What a plan's pull decided (``planned``) was restrained by that pull already."""
        rules = self.engine.options.rules
        first = link is None or contact_id in self.engine.claimed
        if planned is not None:
            return changed
        if link is None and contact_id not in self.engine.claimed and not rules.creates_on("zoho"):
            self.report.count("to_zoho.skipped_mode")
            report_refused_record(
                self.report,
                "to_zoho",
                contact_id,
                None,
                f"not in Zoho; {mode_refusal(rules.mode, 'create Zoho records')}",
            )
            if not self.dry_run:
                self.ledger.finish_outbox(entries)
            return None
        kept, left = restrain_push(changed, rules, self.mapping, base=base, first_link=first)
        if left:
            report_left_alone(
                self.report, self.mapping, contact_id, link.zoho_id if link else None, left
            )
        return kept

    # -- sending --------------------------------------------------------------------------

    def _send_updates(self, *, force: bool = False) -> None:
        self.updates = self._send(self.updates, "update", force=force)

    def _send_creates(self, *, force: bool = False) -> None:
        self.creates = self._send(self.creates, "create", force=force)

    def _send(self, waiting: list[_Outgoing], action: str, *, force: bool) -> list[_Outgoing]:
        """Send full batches of 100 (and, with ``force``, the rest); return what waits."""
        while waiting and (force or len(waiting) >= BATCH):
            chunk, waiting = waiting[:BATCH], waiting[BATCH:]
            if self.dry_run:
                if action == "update" and not self.engine.pulled:
                    self._plan_reread(chunk)
                    continue
                for item in chunk:
                    self._plan(item, action)
                continue
            self.engine.check_settings()
            self.calls.submit(
                self._write_call(action, chunk),
                lambda answer, chunk=chunk: self._settle(chunk, answer.results, action, answer),
            )
        return waiting

    def _write_call(self, action: str, chunk: list[_Outgoing]) -> Callable[[], WriteAnswer]:
        """The HTTP part of a batch, safe to run on another thread: it touches no session,
        only the client and values worked out here beforehand. Updates go through
        ``checked_update``; creates are upserts of records the sync never held."""
        client, module = self.engine.client, self.module
        payloads = [without_fields(item.payload, self.paused_fields) for item in chunk]
        if action == "update":
            seen = [item.seen_at for item in chunk]
            fields = self._fields
            return lambda: checked_update(client, module, payloads, seen, fields)
        check_fields = self._duplicate_check_fields()
        return lambda: WriteAnswer(
            client.upsert(module, payloads, duplicate_check_fields=check_fields)
        )

    def _duplicate_check_fields(self) -> list[str]:
        """What Zoho's upsert matches a new contact on: the scope's match key when it is
        not email (the Zoho field of Contact Id or of the matched host field), else the
        mapping's own choice (``Mapping.duplicate_check_fields``)."""
        scope = self.engine.options.scope
        if scope.match_key != "email":
            return [match_binding(self.mapping, scope).zoho_api_name]
        return self.mapping.duplicate_check_fields()

    def _plan_reread(self, chunk: list[_Outgoing]) -> None:
        """Plan an update batch of a plan that read nothing of Zoho before its push (a
        push-only plan) from the re-read the run makes before that batch: one call per 100
        ids, the run's own read (and so already in the plan's cost, not added to its
        estimate).

        A plan after a pull needs none: the pull read every record changed or deleted in
        Zoho since the last sync, and the plan's merge and deletions already account for
        them. Without a pull, the plan would list an update of a record Zoho deleted (the
        run's write is then refused with INVALID_DATA) or of one a Zoho user changed (the
        run merges it first, ``_merge_contested``).
        """
        ids = [str(item.link.zoho_id) for item in chunk]
        seen = [item.seen_at for item in chunk]
        found = Reread.of(self.engine.client, self.module, ids, seen, self._fields)
        self.engine.plan_reread = True
        for item, zoho_id in zip(chunk, ids, strict=True):
            if zoho_id in found.missing:
                self._fail(
                    item.contact_id,
                    zoho_id,
                    item.entries,
                    _refusal(GONE_FROM_ZOHO, GONE_MESSAGE),
                    GONE_FROM_ZOHO,
                )
            elif zoho_id in found.moved:
                self.contested[item.contact_id] = _Contested(item, found.moved[zoho_id])
            else:
                self._plan(item, "update")

    def _plan(self, item: _Outgoing, action: str) -> None:
        if action == "create" and item.link is None and item.contact_id in self.engine.claimed:
            # The plan's pull linked it by email (a plan writes no link): the run's push
            # updates that record, as it does every linked one.
            action = "update"
        self.report.add(
            PlannedChange(
                "to_zoho",
                action,
                item.contact_id,
                item.link.zoho_id if item.link is not None else None,
                changes=readable(self.mapping, item.changed),
                reason="; ".join(item.warnings) or None,
            )
        )

    def _settle(
        self,
        chunk: list[_Outgoing],
        results: list[RecordResult],
        action: str,
        answer: WriteAnswer | None = None,
    ) -> None:
        """Record what Zoho did with one batch and commit it.

        Links are written for the whole batch at once (``Ledger.write_links``).
        ``batch.fresh`` holds the rows this batch writes, by Zoho id, so a second contact of
        the same batch that Zoho matched to the same record is caught as a duplicate exactly
        as if the first one's link were already stored.
        """
        if self.engine.stop_reason is not None:
            return  # the run is stopping: its settings changed; the outbox keeps the rest
        self.engine.check_settings()
        batch = _SettledBatch(
            claimed=self.ledger.links_in_module(
                self.module,
                zoho_ids=[result.record_id for result in results if result.ok and result.record_id],
            )
        )
        for item, result in zip(chunk, results, strict=True):
            if action == "update" and result.code == CHANGED_IN_ZOHO and item.link is not None:
                # Not overwritten: a Zoho user changed it since the sync last read it.
                moved = answer.moved if answer is not None else {}
                self.contested[item.contact_id] = _Contested(item, moved.get(item.link.zoho_id))
                continue
            zoho_id = result.record_id
            if not result.ok and self._held_for_paused_field(item, result, action):
                continue
            if not result.ok or zoho_id is None:
                if not adopt_duplicate(self, item, result, batch):
                    self._fail_refused(item, result)
                continue
            if self._matched_another_contacts_record(item, zoho_id, result, batch):
                continue
            self._settle_written(item, zoho_id, result, action, answer, batch)
        self.ledger.write_links(batch.new_links, batch.changed_links)
        self.ledger.finish_outbox(batch.finished)
        self.ledger.resolve_errors(batch.resolved)
        self.done += len(chunk)
        self.engine.progress("push", self.done)
        self.ledger.commit()

    def _fail_refused(self, item: _Outgoing, result: RecordResult) -> None:
        """Zoho refused this record: its reason is kept; a "try later" code is retried."""
        reason = _refusal(result.code, result.message)
        details = result.details.get("api_name") if result.details else None
        if details:
            reason += f" (field {details})"
        picklist = picklist_refusal(result.details, item.payload, self.mapping)
        if picklist:
            reason += f": {picklist}"
        self._fail(
            item.contact_id,
            item.link.zoho_id if item.link else None,
            item.entries,
            reason,
            result.code or "ERROR",
            retry=result.code in _TRANSIENT_CODES,
        )

    def _held_for_paused_field(self, item: _Outgoing, result: RecordResult, action: str) -> bool:
        """Whether Zoho refused a whole mapped field of this record (``sync.drift``): the
        field's row is paused and the record waits to be sent again without it."""
        refusals = field_refusals(result.code, result.details, self.mapping)
        if not refusals:
            return False
        for refusal in refusals:
            if refusal.api_name not in self.paused_fields:
                self.paused_fields.add(refusal.api_name)
                if not self.dry_run:
                    self.ledger.pause_mapping(refusal.api_name, refusal.reason)
                self.report.count("to_zoho.paused_fields")
            item.warnings.append(refusal.reason)
        held_back = keys_of(self.mapping, self.paused_fields)
        item.payload = without_fields(item.payload, self.paused_fields)
        item.changed = {k: v for k, v in item.changed.items() if k not in held_back}
        self.resend[action].append(item)
        return True

    def _resend_without_paused_fields(self) -> None:
        """Send again the records held for a paused field, without it; a record refused for
        another field in turn goes round again, at most once per mapped field."""
        for _round in range(len(self.mapping.bindings)):
            if not (self.resend["update"] or self.resend["create"]):
                return
            self.updates += self.resend["update"]
            self.creates += self.resend["create"]
            self.resend = {"update": [], "create": []}
            self._send_updates(force=True)
            self._send_creates(force=True)
            self.calls.drain()

    def _matched_another_contacts_record(
        self, item: _Outgoing, zoho_id: str, result: RecordResult, batch: _SettledBatch
    ) -> bool:
        """Whether Zoho's upsert wrote this new contact into a record linked to another
        contact (matched on Email or a unique field); if so, it fails here and the record is
        marked to be restored from its own contact."""
        other = batch.claimed.get(zoho_id)
        owner = batch.fresh[zoho_id]["contact_id"] if zoho_id in batch.fresh else None
        if owner is None and other is not None:
            owner = other.contact_id
        if item.link is not None or owner is None or owner == item.contact_id:
            return False
        # Zoho has already written this contact's values into the other's record. Undo that
        # on the next run by re-sending every value of the record's own contact.
        if zoho_id in batch.fresh:
            batch.fresh[zoho_id]["snapshot"][RESTORE_KEY] = True
        else:
            other.snapshot = {**(other.snapshot or {}), RESTORE_KEY: True}
        self.ledger.requeue_contact(owner)
        self._fail(
            item.contact_id,
            zoho_id,
            item.entries,
            f"Zoho matched this contact (by {result.duplicate_field or 'a unique field'}) "
            f"to record {zoho_id}, which belongs to contact {owner}; that "
            "record is restored on the next sync. Give the two contacts different "
            "values for that field, then retry this one.",
            "DUPLICATE_CONTACT",
        )
        return True

    def _settle_written(
        self,
        item: _Outgoing,
        zoho_id: str,
        result: RecordResult,
        action: str,
        answer: WriteAnswer | None,
        batch: _SettledBatch,
    ) -> None:
        """Zoho wrote this record: its link row joins the batch's, and the history says so."""
        read_at = answer.read.get(zoho_id) if answer is not None else None
        row = self.ledger.new_link_row(
            item.contact_id,
            zoho_id,
            _written_snapshot(item, read_at),
            result.modified_time,
            module=self.module,
        )
        # The contact's own link, even when this push did not know of it: a second
        # link row for one contact is what the table's unique key forbids.
        existing = item.link if item.link is not None else batch.claimed.get(zoho_id)
        if existing is not None:
            batch.changed_links.append((existing, row))
        else:
            batch.new_links.append(row)
        batch.fresh[zoho_id] = row
        batch.finished.extend(item.entries)
        batch.resolved.append(item.contact_id)
        shown = self._readable(item.changed)
        kind = "link" if action == "create" and result.action == "update" else action
        self.ledger.record(
            self.engine.run,
            direction="to_zoho",
            action=kind,
            contact_id=item.contact_id,
            zoho_id=zoho_id,
            changes={"fields": shown, **_undo_of_update(item, kind)},
            reason="; ".join(item.warnings) or "changed in the host",
        )
        self.report.add(PlannedChange("to_zoho", kind, item.contact_id, zoho_id, shown))

    def _readable(self, changes: dict[str, Any]) -> dict[str, Any]:
        """``readable`` with the labels worked out once per pass: the same few keys come
        back for every record of a large push."""
        shown: dict[str, Any] = {}
        labels = self._labels
        for key, value in changes.items():
            name = labels.get(key)
            if name is None:
                name = labels[key] = next(iter(readable(self.mapping, {key: None})))
            shown[name] = value
        return shown

    def _send_deletions(self) -> None:
        if not self.deletions:
            return
        if self.engine.too_many_deletes(len(self.deletions)):
            self.report.status = "needs_confirmation"
            self.report.pending_deletes = len(self.deletions)
            leaving = sum(1 for item in self.deletions if item.reason != _Deletion.reason)
            who = (
                f"contacts deleted in the app or leaving the sync's scope ({leaving} of them)"
                if leaving
                else "contacts deleted in the app"
            )
            self.report.message = (
                f"{len(self.deletions)} {who} are linked to Zoho records, "
                f"more than {self.engine.options.mass_delete_share:.0%} of the "
                f"{self.ledger.linked_count()} linked contacts. Nothing was deleted in Zoho. "
                "If the deletions are intended, run the sync again confirming the deletions."
            )
            return
        by_module: dict[str, list[_Deletion]] = {}
        for item in self.deletions:
            by_module.setdefault(item.module or self.ledger.module, []).append(item)
        for module, deletions in by_module.items():
            for start in range(0, len(deletions), BATCH):
                chunk = deletions[start : start + BATCH]
                if self.dry_run:
                    for item in chunk:
                        self.report.add(item.planned())
                        self.engine.planned_deleted[item.zoho_id] = item.contact_id
                    continue
                self.engine.check_settings()
                results = self.engine.client.delete(module, [item.zoho_id for item in chunk])
                self._settle_deletions(chunk, results)
                self.ledger.commit()

    def _settle_deletions(self, chunk: list[_Deletion], results: list[RecordResult]) -> None:
        """Record what Zoho did with one batch of deletions: the links of the deleted
        records go, and their tombstones and finished outbox rows are written, each with
        one statement for the batch."""
        deleted: list[_Deletion] = []
        for item, result in zip(chunk, results, strict=True):
            gone = not result.ok and result.code == "INVALID_DATA"
            if not result.ok and not gone:
                self._fail(
                    item.contact_id,
                    item.zoho_id,
                    item.entries,
                    f"Zoho did not delete it: {result.code} {result.message or ''}".strip(),
                    result.code or "ERROR",
                    retry=result.code in _TRANSIENT_CODES,
                )
                continue
            deleted.append(item)
            self.ledger.record(
                self.engine.run,
                direction="to_zoho",
                action="delete",
                contact_id=item.contact_id,
                zoho_id=item.zoho_id,
                changes=_undo_of_deletion(item),
                reason=item.reason + ("; it was already gone in Zoho" if gone else ""),
            )
            self.report.add(item.planned())
        self.ledger.drop_links([item.link for item in deleted if item.link is not None])
        self.ledger.bury_many(
            [(item.zoho_id, item.contact_id) for item in deleted], deleted_on="host"
        )
        self.ledger.finish_outbox([entry for item in deleted for entry in item.entries])

    def _fail(
        self,
        contact_id: str,
        zoho_id: str | None,
        entries: list[Any],
        reason: str,
        code: str,
        *,
        retry: bool = False,
    ) -> None:
        self.report.add(
            PlannedChange("to_zoho", "error", contact_id, zoho_id, reason=reason, error_code=code)
        )
        if self.dry_run:
            return
        if retry:
            self.ledger.retry_outbox_later(entries, reason)
        else:
            self.ledger.finish_outbox(entries, error=reason)
        self.ledger.record(
            self.engine.run,
            direction="to_zoho",
            action="error",
            contact_id=contact_id,
            zoho_id=zoho_id,
            reason=reason,
            error_code=code,
        )
