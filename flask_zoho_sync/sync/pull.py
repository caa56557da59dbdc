"""Zoho -> host: Zoho's deletions, then changed records since the watermark.

Order matters: the pull runs before the push in a two-way pass, so a field both sides
changed is decided by the three-way merge here and the push then only carries what the
merge left for Zoho (see ``engine``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

from flask_zoho_sync.sync.coercion import CoercionError
from flask_zoho_sync.sync.collector import collector_paused
from flask_zoho_sync.sync.context import (
    FALLBACK_KEY,
    READ_KEY,
    RESTORE_KEY,
    PlannedChange,
    RunInProgress,
    RunReport,
    apply_host_changes,
    create_contacts,
    host_canonical,
    link_base,
    readable,
)
from flask_zoho_sync.sync.conversion import (
    ConversionCheck,
    listing_options,
    read_contacts_of,
    read_followed,
    split_converted,
    to_lead_fields,
)
from flask_zoho_sync.sync.followed import followed_links, settle_gone
from flask_zoho_sync.sync.identity import MergeFollower
from flask_zoho_sync.sync.merge import (
    Conflict,
    MergeResult,
    Side,
    diff,
    merge,
    merge_new,
    resolve_conflict,
)
from flask_zoho_sync.sync.modes import mode_refusal
from flask_zoho_sync.sync.notified import NotifiedWrite
from flask_zoho_sync.sync.readahead import InOrder, ReadAhead
from flask_zoho_sync.sync.revert import UNDO_KEY, undo_values
from flask_zoho_sync.sync.scope import (
    AMBIGUOUS,
    LEFT_SCOPE,
    ScopeRefused,
    match_binding,
    normalized_email,
)
from flask_zoho_sync.sync.skips import (
    report_left_alone,
    report_refused_record,
    restrain,
)
from flask_zoho_sync.zoho.coql import MAX_SELECT_FIELDS, OneOf, unreadable_fields
from flask_zoho_sync.zoho.errors import ZohoRequestError, ZohoScopeMismatch
from flask_zoho_sync.zoho.timefmt import ZohoTimeFormatError, parse_datetime

logger = logging.getLogger(__name__)


def _modified_time(record: dict[str, Any]) -> datetime | None:
    try:
        return parse_datetime(record["Modified_Time"]) if record.get("Modified_Time") else None
    except ZohoTimeFormatError:
        return None


def _utc(moment: datetime | None) -> datetime | None:
    """A stored time as aware UTC (SQLite hands back naive datetimes)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


def _conflicts(result: MergeResult) -> list[dict[str, Any]]:
    return [
        {
            "key": conflict.key,
            "base": conflict.base,
            "host": conflict.host,
            "zoho": conflict.zoho,
            "winner": conflict.resolution,
            "reason": conflict.reason,
        }
        for conflict in result.conflicts
    ]


def first_coql_page(by_coql: Iterator[list[dict[str, Any]]]) -> list[dict[str, Any]] | None:
    """The first page of a COQL walk ([] when nothing matched), or None when Zoho refuses
    the first query: a connection consented before the sync asked for
    ``ZohoCRM.coql.READ``, or a field type COQL refuses that the field metadata did not
    show. The caller then reads by REST; a refusal after the first page is a real failure."""
    try:
        return next(by_coql)
    except StopIteration:
        return []
    except (ZohoScopeMismatch, ZohoRequestError) as refused:
        logger.warning("Zoho refused the COQL read (%s); pulling by REST", refused.code)
        return None


def _coql_or_rest(
    by_coql: Iterator[list[dict[str, Any]]],
    by_rest: Callable[[], Iterator[list[dict[str, Any]]]],
) -> Iterator[list[dict[str, Any]]]:
    """COQL's pages, or REST's when Zoho refuses the first query (``first_coql_page``)."""
    first = first_coql_page(by_coql)
    if first is None:
        yield from by_rest()
        return
    if first:
        yield first
        yield from by_coql


class PullPass:
    """One pull: reads Zoho, merges into the host, records links and history."""

    #: Most pages whose records are looked up in one go (see ``_look_up``):
    #: 800 emails, within one query of the default adapter's ``find_many_by_email``.
    EMAIL_LOOKUP_PAGES = 4

    def __init__(self, engine: RunInProgress, report: RunReport) -> None:
        self.engine = engine
        self.report = report
        self.mapping = engine.mapping
        self.adapter = engine.adapter
        self.ledger = engine.ledger
        self.dry_run = engine.options.dry_run
        #: What the run may write (``sync.modes``): its mode and the overwrite policies.
        self.rules = engine.options.rules
        #: What ``_look_up`` found for the pages being merged: host contact ids by
        #: lower-cased email, the Zoho ids linked and buried then, and those linked since.
        self._email_ids: dict[str, str] = {}
        self._linked_at_lookup: set[str] = set()
        self._buried: set[str] = set()
        self._linked_since: set[str] = set()
        #: Host contacts by lower-cased email for the page being merged, and the ids of
        #: those the page created (no object of them is loaded).
        self._by_email: dict[str, Any] = {}
        self._created_by_email: dict[str, str] = {}
        #: Contacts to create for the page, their values already converted for the host.
        self._pending: list[tuple[str, str, MergeResult, datetime | None, Any]] = []
        self._creating: set[str] = set()
        #: New links of the page, inserted together (``Ledger.write_links``) at the end of
        #: the page, or before anything looks links up by contact.
        self._new_links: list[dict[str, Any]] = []
        #: What syncs (``sync.scope``), and the match keys found on more than one record
        #: of either side among the pages looked up (left unlinked, never guessed).
        self.scope = engine.options.scope
        self._ambiguous: set[str] = set()
        #: Host contacts of the looked-up pages outside the host scope (None: no limit).
        self._outside_host: set[str] | None = None

    # -- changed records -------------------------------------------------------------------

    def run(self, *, full: bool) -> None:
        settings = self.ledger.settings
        watermark = settings.pull_watermark
        since = None if full or watermark is None else watermark - self.engine.options.overlap
        newest = watermark
        done = 0
        # Followed Contacts are read as changed since the previous pull began, not since the
        # Leads watermark (the newest Leads record says nothing of Contacts): ``read_followed``.
        previous_pull = None if since is None else settings.last_pull_at
        # Deletions first: a record merged away in Zoho moves its link to the merge's master
        # (``identity.MergeFollower``) before the changed records, the master among them,
        # are merged; the other way round the master would be imported as a new contact.
        self._deletions()
        pages = self._changed_pages(since)
        newest, done = self._merge_pages(pages, newest, done, name="zoho-sync-pull")
        self._merge_followed(previous_pull)
        if self.scope.limits_zoho and self.report.status != "needs_confirmation":
            self._zoho_leavers(since)
        if not self.dry_run and self.report.status != "needs_confirmation":
            # Only Zoho's own timestamps make a watermark: a pull that found nothing (an
            # empty org's first sync) leaves none, and the next pull reads the org whole
            # (once: what it finds sets one). Our clock is not Zoho's; a watermark from it
            # would skip Zoho edits stamped before it by a clock running behind ours.
            settings.pull_watermark = newest
            settings.last_pull_at = self.engine.started_at
            self.ledger.commit()

    def _changed_pages(self, since: datetime | None) -> Iterator[list[dict[str, Any]]]:
        """The records changed since ``since`` (all when None), a page at a time: by COQL
        when the setting is on and COQL can select every pulled field, else by REST."""
        client, module = self.engine.client, self.ledger.module
        # Converted leads come too, with their conversion lookups (``sync.conversion``):
        # the merge sets them aside and settles the linked ones, at no call of their own.
        extra, converted = listing_options(module)
        fields = [*self.mapping.zoho_api_names(), *extra]
        options = self.engine.options

        def by_rest() -> Iterator[list[dict[str, Any]]]:
            return client.iter_pages(module, fields, modified_since=since, converted=converted)

        if self.scope.limits_zoho:
            return self._scoped_pages(fields, since, converted is not None)
        if not self._pulls_by_coql(fields):
            return by_rest()
        by_coql = client.iter_coql_pages(
            module,
            fields,
            modified_since=since,
            concurrency=options.max_concurrency,
            keep_converted=converted is not None,
        )
        return _coql_or_rest(by_coql, by_rest)

    def _pulls_by_coql(self, fields: list[str]) -> bool:
        """Whether a pull of ``fields`` (the mapping's and ``listing_options``' extras) reads
        by COQL: the setting is on and COQL can select every one of them. Otherwise REST."""
        if not self.engine.options.pull_with_coql:
            return False
        unfit = self._coql_cannot_select(fields)
        if unfit is not None:
            logger.info("Pulling %s by REST: COQL cannot select %s", self.ledger.module, unfit)
            return False
        return True

    def _coql_cannot_select(self, fields: list[str]) -> str | None:
        """What of ``fields`` a COQL query cannot select (field types it refuses, or more
        fields than a query takes), or None when it can select them all."""
        types = {field.api_name: field.data_type for field in self.mapping.zoho_fields}
        unreadable = unreadable_fields(types, fields)  # type: ignore[arg-type]
        if unreadable:
            return ", ".join(unreadable)
        if len({"id", "Converted__s", *fields}) > MAX_SELECT_FIELDS:
            return f"more than {MAX_SELECT_FIELDS} fields"
        return None

    def _scoped_pages(
        self, fields: list[str], since: datetime | None, keep_converted: bool
    ) -> Iterator[list[dict[str, Any]]]:
        """The changed records inside the Zoho scope, by COQL with the scope in its WHERE:
        Zoho sends no record outside it. There is no REST fallback: REST lists cannot
        filter, and filtering after the download is what the scope promises not to do."""
        unfit = self._coql_cannot_select(fields)
        if unfit is not None:
            raise ScopeRefused(
                f"A Zoho scope is read by COQL, which cannot select {unfit}; "
                "unmap those fields or clear the Zoho scope."
            )
        return self.engine.client.iter_coql_pages(
            self.ledger.module,
            fields,
            modified_since=since,
            concurrency=self.engine.options.max_concurrency,
            keep_converted=keep_converted,
            criteria=self.scope.zoho_criteria(),
        )

    def _scoped_ids(
        self, wanted: list[str], fields: list[str], keep_converted: bool
    ) -> list[dict[str, Any]]:
        """The named records (a notification's) that meet the Zoho scope, by COQL with
        ``id in (...)`` and the scope in the WHERE, 50 ids a query (Zoho's ``in`` limit)."""
        records: list[dict[str, Any]] = []
        for start in range(0, len(wanted), 50):
            criteria = [OneOf("id", tuple(wanted[start : start + 50])), *self.scope.zoho_criteria()]
            pages = self.engine.client.iter_coql_pages(
                self.ledger.module, fields, keep_converted=keep_converted, criteria=criteria
            )
            records.extend(record for page in pages for record in page)
        return records

    def _zoho_leavers(self, since: datetime | None, *, ids: list[str] | None = None) -> None:
        """Linked records changed since ``since`` (or of ``ids``) that no longer meet the
        Zoho scope: only their ids are read (the scope's complement in the WHERE), and
        each pair is let go as ``on_leave`` says."""
        found: list[str] = []
        chunks = [None] if ids is None else [ids[at : at + 50] for at in range(0, len(ids), 50)]
        for chunk in chunks:
            criteria = self.scope.zoho_outside()
            if chunk is not None:
                criteria = [OneOf("id", tuple(chunk)), *criteria]
            pages = self.engine.client.iter_coql_pages(
                self.ledger.module,
                ["Modified_Time"],
                modified_since=since,
                concurrency=1,
                keep_converted=True,
                criteria=criteria,
                page_size=200,  # few records leave at a time: one credit a query, not three
            )
            found += [str(record["id"]) for page in pages for record in page if record.get("id")]
        ids = found
        links = list(self.ledger.links_by_zoho(ids).values()) if ids else []
        links = [link for link in links if link.zoho_id not in self.engine.planned_deleted]
        if not links:
            return
        if self.scope.on_leave == "delete":
            if self.engine.too_many_deletes(len(links)):
                self.report.status = "needs_confirmation"
                self.report.pending_deletes = len(links)
                self.report.message = (
                    f"{len(links)} linked Zoho records left the sync's scope, and leaving "
                    "deletes their contacts: more than "
                    f"{self.engine.options.mass_delete_share:.0%} of the "
                    f"{self.ledger.linked_count()} linked contacts. Nothing was deleted. "
                    "If that is intended, run the sync again confirming the deletions."
                )
                return
            for link in links:
                self.report.add(
                    PlannedChange(
                        "to_host", "delete", link.contact_id, link.zoho_id, reason=LEFT_SCOPE
                    )
                )
            if self.dry_run:
                self.engine.planned_host_deletes.update(link.contact_id for link in links)
                return
            self._delete_in_host(links, reason=f"its Zoho record {LEFT_SCOPE}", bury=False)
        else:
            for link in links:
                self.report.add(
                    PlannedChange(
                        "to_host", "unlink", link.contact_id, link.zoho_id, reason=LEFT_SCOPE
                    )
                )
                if not self.dry_run:
                    self.ledger.record(
                        self.engine.run,
                        direction="to_host",
                        action="unlink",
                        contact_id=link.contact_id,
                        zoho_id=link.zoho_id,
                        changes={},
                        reason=f"the Zoho record {LEFT_SCOPE}; both are kept, no longer synced",
                    )
            if self.dry_run:
                return
            self.ledger.drop_links(links)
        for link in links:
            self.ledger.note_scope_exit(
                link.contact_id, link.zoho_id, side="zoho", action=self.scope.on_leave
            )
        self.ledger.commit()

    def _match_value(self, record: dict[str, Any]) -> str:
        """The record's first-sync match key as text ("" when it has none): the email,
        case and whitespace blind; or the Zoho field the match key names, as written."""
        key = self.scope.match_key
        if key == "email":
            return normalized_email(record.get("Email"))
        api_name = self._match_api_name()
        value = record.get(api_name) if api_name else None
        return "" if value in (None, "") else str(value).strip()

    def _match_api_name(self) -> str | None:
        """The Zoho field holding the match key (Contact Id's, or the matched host field's)."""
        cached = self.__dict__.get("_match_api")
        if cached is None:
            cached = self.__dict__["_match_api"] = match_binding(
                self.mapping, self.scope
            ).zoho_api_name
        return cached

    def _find_matches(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Host contacts the unlinked ``records`` match, by match value; a value held by two
        contacts, or by two of the records, is noted as ambiguous and matches nothing."""
        values = [value for value in map(self._match_value, records) if value]
        seen: dict[str, int] = {}
        for value in values:
            seen[value] = seen.get(value, 0) + 1
        if self.scope.match_key == "email":
            holders_of = getattr(self.adapter, "find_email_holders", None)
            if holders_of is None:
                return self.adapter.find_many_by_email(values)
            # An email two host contacts share is not guessed; two Zoho records with one
            # email keep their own rule (the second is DUPLICATE_IN_ZOHO, see _duplicate).
            holders = holders_of(values)
            self._ambiguous = {value for value, found in holders.items() if len(found) > 1}
            return {value: found[-1] for value, found in holders.items() if len(found) == 1}
        self._ambiguous = {value for value, count in seen.items() if count > 1}
        if self.scope.match_key == "contact_id":
            found = self.adapter.get_many(list(seen))
            return {value: contact for value, contact in found.items()}
        holders = self.adapter.find_many_by_field(  # type: ignore[attr-defined]
            self.scope.match_field, list(seen)
        )
        self._ambiguous |= {value for value, found in holders.items() if len(found) > 1}
        return {value: found[0] for value, found in holders.items() if len(found) == 1}

    def _merge_pages(
        self,
        pages: Iterable[list[dict[str, Any]]],
        newest: datetime | None,
        done: int,
        *,
        name: str,
    ) -> tuple[datetime | None, int]:
        """Merge and commit ``pages``, returning the newest Modified_Time and the count.

        A real run asks for the next pages while it merges this one; a plan stays on this
        thread, as the push's does.
        """
        reader: ReadAhead[list[dict[str, Any]]] | InOrder[list[dict[str, Any]]] = (
            InOrder(pages)
            if self.dry_run
            else ReadAhead(pages, depth=self.EMAIL_LOOKUP_PAGES, name=name)
        )
        try:
            while group := reader.take(self.EMAIL_LOOKUP_PAGES):
                with collector_paused():  # a fifth of an import's CPU, finding nothing
                    self._look_up(group)
                    for page in group:
                        newest = self._merge_page(page, newest)
                        done += len(page)
                        self.engine.progress("pull", done)
                        if not self.dry_run:
                            self.ledger.commit()
        finally:
            # Stop the reader's thread now, not when a failed run's traceback is collected.
            reader.close()
        return newest, done

    def run_ids(self, zoho_ids: list[str], notified: Iterable[NotifiedWrite] = ()) -> None:
        """Merge the named records only; the watermark is left alone, because records
        between it and now that were not named must still be read by the next pull.

        ``notified`` (what notifications said updates wrote) is checked first, against the
        links as the push left them: see ``recover_overwritten``."""
        wanted = list(dict.fromkeys(str(zoho_id) for zoho_id in zoho_ids))
        notified = list(notified)  # read twice: for the followed Contacts, then the leads
        followed = followed_links(self.engine, wanted)
        if followed:  # Contacts a converted lead's contact follows (the channel watches them)
            wanted = [zoho_id for zoho_id in wanted if zoho_id not in followed]
            self._pull_followed(followed, notified)
        if not wanted:
            return
        extra, converted = listing_options(self.ledger.module)
        fields = [*self.mapping.zoho_api_names(), *extra]
        if self.scope.limits_zoho:
            records = self._scoped_ids(wanted, fields, converted is not None)
            self._zoho_leavers(None, ids=wanted)
        else:
            records = self.engine.client.get_records(
                self.ledger.module, wanted, fields, converted=converted
            )
        self.recover_overwritten(records, notified)
        self._page(records, None)
        if not self.dry_run:
            self.ledger.commit()
        if len({str(record.get("id")) for record in records}) < len(wanted):
            self._deletions()

    def recover_overwritten(
        self, records: list[dict[str, Any]], writes: Iterable[NotifiedWrite]
    ) -> None:
        """Find Zoho edits our own writes overwrote, from what notifications said they wrote,
        and settle each as the conflict it was. ``records`` are the notified records as just
        read (by ``run_ids``): it makes no call of its own.

        An edit was overwritten when the record's latest version is still the push's write
        (the Modified_Time the link holds, with the push's ``READ_KEY`` on it), the edit was
        made after the version the push re-read just before writing, and a field it wrote
        now holds another value. Zoho's times have whole seconds, so an edit in the same
        second as the version read counts as after it: at worst a conflict already settled
        is recorded twice, never one lost. The policy then decides, as for any conflict:
        Zoho's value, if it wins, goes to the host and back to Zoho.
        """
        read = {str(record.get("id")): record for record in records}
        wanted = [write for write in writes if write.zoho_id in read and write.values]
        if not wanted:
            return
        links = self.ledger.links_by_zoho([write.zoho_id for write in wanted])
        contacts = self.adapter.get_many([link.contact_id for link in links.values()])
        for write in sorted(wanted, key=lambda write: write.at):
            link = links.get(write.zoho_id)
            contact = contacts.get(link.contact_id) if link is not None else None
            if link is None or contact is None:
                continue
            record = read[write.zoho_id]
            read_at = (link.snapshot or {}).get(READ_KEY)
            version, ours = _modified_time(record), _utc(link.zoho_modified_at)
            if read_at is None or version is None or version != ours:
                continue  # a Zoho version the merge above has seen, or none we wrote
            if write.at.replace(microsecond=0) < datetime.fromisoformat(read_at):
                continue  # in the version the push read before writing: merged then
            result = self._overwritten(link, contact, record, write)
            if result.conflicts and self.rules.restrains:
                result = restrain(
                    result,
                    self.rules,
                    self.mapping,
                    host=host_canonical(self.mapping, self.adapter, contact),
                    zoho=self.mapping.zoho_to_canonical(record),
                    first_link=False,
                )
            if result.conflicts:
                base = link_base(link, self.mapping) or {}
                self._apply(
                    link.contact_id, link.zoho_id, contact, base, result, version, link=link
                )
        if not self.dry_run:
            self.ledger.commit()

    def _overwritten(
        self, link: Any, contact: Any, record: dict[str, Any], write: NotifiedWrite
    ) -> MergeResult:
        """The conflicts of one overwritten edit: each field it wrote that our write then
        replaced, host value (ours, on both sides now) against the Zoho user's."""
        try:
            theirs = self.mapping.zoho_to_canonical({**record, **write.values})
            now = self.mapping.zoho_to_canonical(record)
        except CoercionError:
            return MergeResult()
        base = link_base(link, self.mapping) or {}
        host = host_canonical(self.mapping, self.adapter, contact)
        result = MergeResult(new_base=dict(base))
        host_at = self.adapter.modified_at(contact)
        for binding in self.mapping.active_bindings():
            key = binding.key
            if key not in theirs or not binding.direction.writes_host:
                continue
            value = theirs[key]
            if self.mapping.values_equal(key, now.get(key), value):
                continue
            winner: Side
            if binding.is_subscription:
                winner = "zoho" if value is False else "host"
                reason = (
                    "an opt-out is never undone by a sync"
                    if value is False
                    else ("Zoho's opt-in does not undo the host's opt-out")
                )
            else:
                winner, reason = resolve_conflict(binding.policy, host_at, write.at)
            result.conflicts.append(
                Conflict(
                    key,
                    base.get(key),
                    host.get(key),
                    value,
                    winner,
                    "a Zoho user changed it while the sync's write was on its way, and the "
                    f"write overwrote it; {reason}",
                )
            )
            if winner == "zoho":
                result.to_host[key] = value
                result.to_zoho[key] = value
        return result

    def merge_records(self, records: list[dict[str, Any]]) -> None:
        """Merge records another pass has just read (the push's re-read before a write,
        which found them changed in Zoho): the same merge as a pull's, no call of its own."""
        if records:
            self._page(records, None)
        if not self.dry_run:
            self.ledger.commit()

    def _look_up(self, pages: list[list[dict[str, Any]]]) -> None:
        """Find out, for all the pages at once, which of their records are linked, which
        were deleted, and which host contacts have the emails of the others.

        Only sync runs write links and tombstones, one run at a time, and this pull writes
        none for these pages but the links it makes, which it notes as it makes them
        (``_linked_since``); so what is found here holds while the pages are merged, and a
        page of records new to the sync needs no query of its own for them.

        Hosts rarely index ``lower(email)``, so each lookup scans the contacts table: an
        import of 100,000 records into a table growing to 100,000 contacts spent a quarter
        of its time in a scan per page. The pages the reader already holds are looked up
        together instead (one scan for four pages), and contacts the pull creates meanwhile
        are added as they are made. Only ids are kept: each page loads its contacts by id,
        because the objects would be expired by the commit after every page. A contact the
        host adds while these pages are merged is found by the next lookup rather than
        this one, as one added during a page always was.
        """
        ids = [str(record["id"]) for page in pages for record in page if record.get("id")]
        linked = self.ledger.linked_zoho_ids(ids)
        self._linked_at_lookup = linked
        self._linked_since = set()
        self._buried = self.ledger.buried_zoho_ids([z for z in ids if z not in linked])
        self._ambiguous = set()
        found = self._find_matches(
            [
                record
                for page in pages
                for record in page
                if record.get("id") and str(record.get("id")) not in linked
            ]
        )
        self._email_ids = {key: self.adapter.contact_id(contact) for key, contact in found.items()}
        self._outside_host = None
        if self.scope.limits_host:
            candidates = list(dict.fromkeys(self._email_ids.values()))
            if linked:
                links = self.ledger.links_by_zoho(list(linked))
                candidates += [link.contact_id for link in links.values()]
            inside = self.adapter.scoped_ids(  # type: ignore[attr-defined]
                candidates, groups=self.scope.host_groups, filter_name=self.scope.host_filter
            )
            self._outside_host = set(candidates) - inside

    def _page(self, page: list[dict[str, Any]], newest: datetime | None) -> datetime | None:
        """Merge one page, looked up on its own; returns the newest Modified_Time."""
        self._look_up([page])
        return self._merge_page(page, newest)

    def _merge_page(self, page: list[dict[str, Any]], newest: datetime | None) -> datetime | None:
        """Merge one page that ``_look_up`` has looked up."""
        self.engine.check_settings()
        page, converted = split_converted(page)
        ConversionCheck(self.engine, self.report).settle(converted)
        ids = [str(record["id"]) for record in page if record.get("id")]
        maybe_linked = [
            zoho_id
            for zoho_id in ids
            if zoho_id in self._linked_at_lookup or zoho_id in self._linked_since
        ]
        links = self.ledger.links_by_zoho(maybe_linked) if maybe_linked else {}
        buried = {zoho_id for zoho_id in ids if zoho_id not in links and zoho_id in self._buried}
        contacts = self.adapter.get_many([link.contact_id for link in links.values()])
        self._by_email = self._contacts_by_email(page, links)
        self._created_by_email = {}
        for record in page:
            if not record.get("id"):
                continue
            zoho_id = str(record["id"])
            modified = _modified_time(record)
            if modified is not None and (newest is None or modified > newest):
                newest = modified
            link = links.get(zoho_id)
            if zoho_id in self.engine.planned_deleted:
                continue  # the plan deletes it for a host deletion; the run's pull won't see it
            if link is None and zoho_id in buried:
                self.report.count("to_host.skipped_deleted")
                continue
            if (
                link is not None
                and link.zoho_modified_at is not None
                and modified is not None
                and modified < link.zoho_modified_at
            ):
                continue  # an older version than the one already merged (overlap window)
            try:
                zoho_values = self.mapping.zoho_to_canonical(record)
            except CoercionError as exc:
                self._error(link.contact_id if link else None, zoho_id, str(exc), "BAD_VALUE")
                continue
            try:
                if link is not None:
                    contact = contacts.get(link.contact_id)
                    if contact is None:
                        continue  # deleted in the host: the push deletes the Zoho record
                    if self._outside_host and link.contact_id in self._outside_host:
                        # Left the host scope: the push lets the pair go (``on_leave``).
                        self.report.count("to_host.skipped_out_of_scope")
                        continue
                    self._merge_linked(link, contact, zoho_values, modified)
                else:
                    self._import(record, zoho_id, zoho_values, modified)
            except CoercionError as exc:
                # A value the host column cannot hold (a phone longer than the column): this
                # record fails alone with the reason; nothing of it was written.
                self._error(link.contact_id if link else None, zoho_id, str(exc), "BAD_VALUE")
        self._create_pending()
        self._write_links()
        return newest

    def _contacts_by_email(
        self, page: list[dict[str, Any]], links: dict[str, Any]
    ) -> dict[str, Any]:
        """The host contacts the page's unlinked records may link to, by lower-cased email."""
        wanted: dict[str, str] = {}
        for record in page:
            key = self._match_value(record)
            if key and str(record.get("id")) not in links:
                contact_id = self._email_ids.get(key)
                if contact_id is not None:
                    wanted[key] = contact_id
        if not wanted:
            return {}
        contacts = self.adapter.get_many(list(dict.fromkeys(wanted.values())))
        return {key: contacts[cid] for key, cid in wanted.items() if cid in contacts}

    def _write_links(self) -> None:
        rows, self._new_links = self._new_links, []
        self.ledger.write_links(rows, ())

    def _merge_linked(
        self, link: Any, contact: Any, zoho_values: dict[str, Any], modified: datetime | None
    ) -> None:
        base = link_base(link, self.mapping) or {}
        if (link.snapshot or {}).get(RESTORE_KEY):
            return  # Zoho holds another contact's values until the push restores ours
        zoho_values = self._without_our_fallbacks(link.snapshot, base, zoho_values)
        result = self._merge_with(contact, base, zoho_values, modified)
        self._apply(link.contact_id, link.zoho_id, contact, base, result, modified, link=link)

    def _import(
        self,
        record: dict[str, Any],
        zoho_id: str,
        zoho_values: dict[str, Any],
        modified: datetime | None,
    ) -> None:
        """A Zoho record we have no link for: link it to the contact with the same email,
        or create a contact for it."""
        email = record.get("Email")
        key = self._match_value(record)
        if key and key in self._ambiguous:
            self._error(
                None,
                zoho_id,
                f"More than one record has the match key {self.scope.match_key} = {key!r} "
                "(in the app or in Zoho); this one was not linked, so no guess was made. "
                "Give each record its own value, or merge the duplicates, then sync again.",
                AMBIGUOUS,
            )
            return
        if not self._scope_lets_in(zoho_id, key):
            return
        if key and key in self._creating:
            # Zoho has this email twice in one page: make the first contact now, so the
            # second is found and reported as a duplicate, as across pages.
            self._create_pending()
        if key in self._created_by_email:
            # Created for an earlier record of this page, and linked to it.
            self._duplicate(self._created_by_email[key], zoho_id, email)
            return
        contact = self._by_email.get(key) if key else None
        if contact is not None:
            contact_id = self.adapter.contact_id(contact)
            self._write_links()  # a contact created earlier in this page has its link now
            linked = self.ledger.links_by_contact([contact_id])
            if linked and linked[contact_id].zoho_id in self.engine.planned_deleted:
                linked = {}  # only in a plan: the link the run drops before its pull
            if linked or contact_id in self.engine.claimed:
                self._duplicate(contact_id, zoho_id, email)
                return
            self.engine.claimed.add(contact_id)
            result = self._merge_with(contact, None, zoho_values, modified)
            self._apply(contact_id, zoho_id, contact, None, result, modified, action="link")
            return
        if not self.engine.options.create_in_host:
            self.report.count("to_host.skipped_new")
            return
        if not self.rules.creates_on("host"):
            self.report.count("to_host.skipped_mode")
            report_refused_record(
                self.report,
                "to_host",
                None,
                zoho_id,
                f"new in Zoho; {mode_refusal(self.rules.mode, 'create contacts in this site')}",
            )
            return
        if self.scope.limits_host:
            # A contact made here would be outside the chosen groups or filter: the scope
            # is the admin's choice of which host contacts sync, so none is added.
            self.report.count("to_host.skipped_out_of_scope")
            return
        result = merge_new(zoho_values, self.mapping)
        if not self.mapping.has_data(result.to_host):
            # Nothing mapped beyond the email has a value: a contact made of it would be
            # blank. The record is created here once a mapped field of it is filled in Zoho.
            self.report.count("to_host.skipped_blank")
            return
        # Converted before the contact exists, so a value the host cannot hold creates nothing
        # (the CoercionError fails this record alone, in the caller), and a plan shows that
        # failure where the run would meet it.
        changes = self.mapping.canonical_to_host(result.to_host)
        if self.dry_run:
            self.report.add(
                PlannedChange(
                    "to_host",
                    "create",
                    None,
                    zoho_id,
                    changes=readable(self.mapping, result.to_host),
                    reason="new in Zoho",
                )
            )
            return
        self._pending.append((key, zoho_id, result, modified, changes))
        if key:
            self._creating.add(key)

    def _scope_lets_in(self, zoho_id: str, key: str) -> bool:
        """Whether an unlinked record may be linked or imported now: not when it matches
        a contact outside the host scope, nor when its pair was let go for leaving the
        scope and the side that left is still out (never resurrected). A record back in
        scope has its exit forgotten and syncs again."""
        contact_id = self._email_ids.get(key) if key else None
        if contact_id is not None and self._outside_host and contact_id in self._outside_host:
            self.report.count("to_host.skipped_out_of_scope")
            return False
        if not self.ledger.has_scope_exits():
            return True
        exits = self.ledger.scope_exits(zoho_ids=[zoho_id])
        exit_row = exits.get(zoho_id)
        if exit_row is None:
            return True
        if exit_row.side == "host" and not self._back_in_host_scope(exit_row.contact_id):
            self.report.count("to_host.skipped_left_scope")
            return False
        if not self.dry_run:
            self.ledger.clear_scope_exits([exit_row])
        return True

    def _back_in_host_scope(self, contact_id: str | None) -> bool:
        if contact_id is None:
            return False
        if not self.scope.limits_host:
            return True
        inside = self.adapter.scoped_ids(  # type: ignore[attr-defined]
            [contact_id], groups=self.scope.host_groups, filter_name=self.scope.host_filter
        )
        return contact_id in inside

    def _duplicate(self, contact_id: str, zoho_id: str, email: Any) -> None:
        self._error(
            contact_id,
            zoho_id,
            f"Zoho has more than one record with the email {email!r}; this one was "
            "not linked. Merge the duplicates in Zoho, then synchronise again.",
            "DUPLICATE_IN_ZOHO",
        )

    def _create_pending(self) -> None:
        """Create the page's new contacts together (``create_contacts``): the default
        adapter writes them with INSERT statements, where an object and a flush per
        contact made an import of 100,000 records mostly the ORM's work. No object of
        them is loaded: the merge of a new record needs only its id."""
        pending, self._pending, self._creating = self._pending, [], set()
        if not pending:
            return
        with self.engine.host_writes():
            contact_ids = create_contacts(self.adapter, [changes for *_, changes in pending])
        self._drop_stale_links(contact_ids)
        for (key, zoho_id, result, modified, changes), contact_id in zip(
            pending, contact_ids, strict=True
        ):
            if key:
                # A later record of this page, or of the next pages looked up with it, with
                # the same email finds this contact.
                self._created_by_email[key] = contact_id
                self._email_ids.setdefault(key, contact_id)
            self._apply(
                contact_id,
                zoho_id,
                None,
                None,
                result,
                modified,
                action="create",
                warnings=changes.warnings,
            )

    def _drop_stale_links(self, contact_ids: list[str]) -> None:
        """Contacts just created can hold no link yet: one found under their id is a deleted
        contact's whose id the database reused (SQLite does). A pull-only run has not sent
        that deletion yet; its outbox entry names the Zoho record, so the next push still
        deletes it. Kept, the stale link made the new contact's link fail its unique key."""
        stale = self.ledger.links_in_module(self.ledger.run_module, contact_ids=contact_ids)
        for link in stale.values():
            self.ledger.drop_link(link)
        if stale:
            self.ledger.session.flush()

    def _merge_with(
        self,
        contact: Any,
        base: dict[str, Any] | None,
        zoho_values: dict[str, Any],
        modified: datetime | None,
    ) -> MergeResult:
        host = host_canonical(self.mapping, self.adapter, contact)
        result = merge(
            base,
            host,
            zoho_values,
            self.mapping,
            host_modified_at=self.adapter.modified_at(contact),
            zoho_modified_at=modified,
        )
        return restrain(
            result, self.rules, self.mapping, host=host, zoho=zoho_values, first_link=base is None
        )

    # -- writing the outcome ---------------------------------------------------------------

    def _apply(
        self,
        contact_id: str,
        zoho_id: str,
        contact: Any,
        base: dict[str, Any] | None,
        result: MergeResult,
        modified: datetime | None,
        *,
        link: Any = None,
        action: str = "update",
        warnings: tuple[str, ...] = (),
    ) -> None:
        conflicts = _conflicts(result)
        if result.left_alone:
            report_left_alone(self.report, self.mapping, contact_id, zoho_id, result.left_alone)
        if action == "create":
            shown = readable(self.mapping, result.to_host)
        else:
            changed = diff(base or {}, {**(base or {}), **result.to_host}, self.mapping)
            shown = readable(self.mapping, {key: list(pair) for key, pair in changed.items()})
        if self.dry_run:
            if result.to_host:
                self.mapping.canonical_to_host(result.to_host)  # what the run would refuse
            if result.to_host or action == "link" or conflicts:
                self.report.add(
                    PlannedChange(
                        "to_host", action, contact_id, zoho_id, shown, conflicts, "changed in Zoho"
                    )
                )
            self.engine.planned_to_zoho[contact_id] = dict(result.to_zoho)
            self.engine.planned_seen[contact_id] = modified
            if result.to_zoho:
                self.engine.push_queue[contact_id] = None
            return
        undo: dict[str, Any] = {}
        if result.to_host and action != "create":
            held = self._host_values(contact, result.to_host)
            with self.engine.host_writes():
                warnings = (*warnings, *self._write_host(contact, result.to_host))
            undo = {UNDO_KEY: undo_values(held, self._host_values(contact, result.to_host))}
        # Keys the merge gave to Zoho keep their old base, so the push still sees them as
        # host changes and sends them; everything else is now held by both sides.
        snapshot = dict(result.new_base)
        for key in result.to_zoho:
            if base is not None and key in base:
                snapshot[key] = base[key]
            else:
                snapshot.pop(key, None)
        if link is not None and FALLBACK_KEY in (link.snapshot or {}):
            snapshot[FALLBACK_KEY] = link.snapshot[FALLBACK_KEY]
        if link is None:
            self._new_links.append(
                self.ledger.new_link_row(
                    contact_id, zoho_id, snapshot, modified, module=self.ledger.run_module
                )
            )
            self._linked_since.add(zoho_id)
        else:
            self.ledger.save_link(contact_id, zoho_id, snapshot, modified, existing=link)
        if result.to_zoho:
            self.engine.push_queue[contact_id] = None
        if result.to_host or action in ("link", "create") or conflicts:
            self.ledger.record(
                self.engine.run,
                direction="to_host",
                action=action,
                contact_id=contact_id,
                zoho_id=zoho_id,
                changes={"fields": shown, "conflicts": conflicts, **undo},
                # A value cut to fit the host column says so, or the cut would go unseen.
                reason="; ".join(
                    ["changed in Zoho" if action == "update" else "new in Zoho", *warnings]
                ),
            )
            self.report.add(PlannedChange("to_host", action, contact_id, zoho_id, shown, conflicts))

    def _host_values(self, contact: Any, keys: Iterable[str]) -> dict[str, Any]:
        """The contact's canonical values of ``keys``, kept in the history before and after
        the pull writes them, so the write can be reverted (``sync.revert``)."""
        held = host_canonical(self.mapping, self.adapter, contact)
        return {key: held.get(key) for key in keys}

    def _write_host(self, contact: Any, to_host: dict[str, Any]) -> tuple[str, ...]:
        """Write Zoho's values; returns the warnings of values cut to fit the host."""
        changes = self.mapping.canonical_to_host(to_host)
        if changes:
            apply_host_changes(self.adapter, contact, changes)
        return changes.warnings

    def _without_our_fallbacks(
        self, snapshot: dict[str, Any] | None, base: dict[str, Any], zoho: dict[str, Any]
    ) -> dict[str, Any]:
        """A value the push filled in because Zoho requires it (a blank Last_Name sent as the
        email's local part) is ours, not a Zoho edit: it must not be copied into the host."""
        filled = (snapshot or {}).get(FALLBACK_KEY) or {}
        if not filled:
            return zoho
        cleaned = dict(zoho)
        for key, value in filled.items():
            if key in cleaned and self.mapping.values_equal(key, cleaned[key], value):
                cleaned[key] = base.get(key)
        return cleaned

    def _error(self, contact_id: str | None, zoho_id: str | None, reason: str, code: str) -> None:
        change = PlannedChange(
            "to_host", "error", contact_id, zoho_id, reason=reason, error_code=code
        )
        self.report.add(change)
        if not self.dry_run:
            self.ledger.record(
                self.engine.run,
                direction="to_host",
                action="error",
                contact_id=contact_id,
                zoho_id=zoho_id,
                reason=reason,
                error_code=code,
            )

    # -- conversions (sync.conversion) ------------------------------------------------------

    def _merge_followed(self, previous_pull: datetime | None = None) -> None:
        """Merge the Contacts that contacts of converted leads followed, like any record
        (``sync.conversion``), on scheduled and manual pulls: all by id (one call per 100)
        on a full pull or when few, else those changed or deleted since the previous pull
        began (``previous_pull``, None on a full pull); those Zoho no longer has are
        followed to a merge's master or deleted (``sync.followed``)."""
        found, gone = read_followed(self.engine, previous_pull)
        self.merge_followed(found)
        settle_gone(self, gone)

    def _pull_followed(self, links: dict[str, Any], notified: Iterable[NotifiedWrite]) -> None:
        """A notified pull's followed Contacts (``sync.followed``): read by id, checked for
        an edit our write overwrote (what the notifications said, under the Leads names),
        merged, and those Zoho no longer has settled like a scheduled pull's."""
        found, gone = read_contacts_of(self.engine, list(links.values()))
        writes = [
            NotifiedWrite(write.zoho_id, write.at, to_lead_fields(write.values))
            for write in notified
            if write.zoho_id in links
        ]
        self.recover_overwritten([record for _, record in found], writes)
        self.merge_followed(found)
        settle_gone(self, gone)

    def merge_followed(self, followed: list[tuple[Any, dict[str, Any]]]) -> None:
        """Merge followed Contacts just read (their links, the records under the Leads
        names); a version older than the one merged last is skipped."""
        contacts = self.adapter.get_many([link.contact_id for link, _ in followed])
        for link, record in followed:
            modified, contact = _modified_time(record), contacts.get(link.contact_id)
            seen = _utc(link.zoho_modified_at)
            if contact is None or (seen is not None and modified is not None and modified < seen):
                continue
            try:
                self._merge_linked(link, contact, self.mapping.zoho_to_canonical(record), modified)
            except CoercionError as exc:
                self._error(link.contact_id, link.zoho_id, str(exc), "BAD_VALUE")
        if followed and not self.dry_run:
            self.ledger.commit()

    # -- deletions ---------------------------------------------------------------------------

    def _deletions(self) -> None:
        settings = self.ledger.settings
        watermark = settings.deleted_watermark
        since = None if watermark is None else watermark - self.engine.options.overlap
        deleted = list(self.engine.client.iter_deleted(self.ledger.module, modified_since=since))
        newest = watermark
        for entry in deleted:
            if entry.deleted_time and (newest is None or entry.deleted_time > newest):
                newest = entry.deleted_time
        links = self.ledger.links_by_zoho([entry.id for entry in deleted])
        planned = self.engine.planned_deleted  # the plan's own deletions are not Zoho's
        targets = [
            links[entry.id] for entry in deleted if entry.id in links and entry.id not in planned
        ]
        targets = MergeFollower(self).follow(targets, {entry.id for entry in deleted})
        if targets and not self.rules.deletes_on("host"):
            self.keep_deleted(targets, newest)
            return
        if targets and self.engine.too_many_deletes(len(targets)):
            self.report.status = "needs_confirmation"
            self.report.pending_deletes = len(targets)
            self.report.message = (
                f"Zoho reports {len(targets)} deleted records linked to contacts, more than "
                f"{self.engine.options.mass_delete_share:.0%} of the "
                f"{self.ledger.linked_count()} linked contacts. Nothing was deleted. Check "
                "Zoho's recycle bin; if the deletions are intended, run the sync again "
                "confirming the deletions."
            )
            return
        for link in targets:
            self.report.add(
                PlannedChange(
                    "to_host", "delete", link.contact_id, link.zoho_id, reason="deleted in Zoho"
                )
            )
        if self.dry_run:
            self.engine.planned_host_deletes.update(link.contact_id for link in targets)
            return
        self._delete_in_host(targets)
        settings.deleted_watermark = newest
        self.ledger.commit()

    def delete_in_host(self, links: list[Any]) -> None:
        """``_delete_in_host`` for the followed Contacts Zoho deleted (``sync.followed``)."""
        self._delete_in_host(links)

    def keep_deleted(self, links: list[Any], newest: datetime | None = None) -> None:
        """Zoho deleted these linked records (leads, or followed Contacts: ``newest`` None),
        and the mode keeps Zoho from changing the host (export only): the contacts stay,
        unlinked, so nothing points at a record Zoho no longer has; a full sync sends them
        to Zoho again as new records."""
        reason = f"deleted in Zoho; {mode_refusal(self.rules.mode, 'delete contacts in this site')}"
        for link in links:
            self.report.count("to_host.skipped_mode")
            report_refused_record(self.report, "to_host", link.contact_id, link.zoho_id, reason)
        if self.dry_run:
            return
        self.ledger.drop_links(links)
        if newest is not None:
            self.ledger.settings.deleted_watermark = newest
        self.ledger.commit()

    def _delete_in_host(
        self, links: list[Any], *, reason: str = "deleted in Zoho", bury: bool = True
    ) -> None:
        """Delete the contacts of records Zoho deleted, in one block of host writes (each
        block flushes on its way in and out), then their links, tombstones and history
        with a statement each. Each history row keeps the contact's values (a revert's
        before-values)."""
        contacts = self.adapter.get_many([link.contact_id for link in links])
        undo: dict[str, dict[str, Any]] = {}
        with self.engine.host_writes():
            for link in links:
                contact = contacts.get(link.contact_id)
                if contact is not None:
                    held = host_canonical(self.mapping, self.adapter, contact)
                    undo[link.contact_id] = {UNDO_KEY: undo_values(held, None)}
                    self.adapter.delete(contact)
        for link in links:
            self.ledger.record(
                self.engine.run,
                direction="to_host",
                action="delete",
                contact_id=link.contact_id,
                zoho_id=link.zoho_id,
                changes=undo.get(link.contact_id, {}),
                reason=reason,
            )
        if bury:
            self.ledger.bury_many(
                [(link.zoho_id, link.contact_id) for link in links], deleted_on="zoho"
            )
        self.ledger.drop_links(links)
