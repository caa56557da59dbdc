"""Leads a Zoho user converted: found cheaply, never taken for deletions, then followed or
stopped (``ZOHO_SYNC_ON_LEAD_CONVERSION``).

Converting a lead makes a Contact (an Account, perhaps a Deal) and takes the lead out of
Zoho's default listings (``converted`` defaults to false), though not into the recycle bin:
to the pull it simply stops appearing. The pull therefore reads the leads converted since
its watermark along with the changed ones: its listing asks for ``converted=both`` with
``If-Modified-Since`` (the sandbox, and so this design, assume a conversion sets the lead's
Modified_Time: docs/zoho-api-notes.md), and a notification's read by ids does the same, so
finding conversions costs no call of its own, where one call per linked record would be
needed otherwise. It settles those it holds links to:

* the host contact is never deleted, and the lead never created again: the contact keeps a
  link, so the push does not see it as new;
* the conversion is kept (``LeadConversion``: the new Contact, Account and Deal ids) and
  written to the contact's history;
* ``follow`` (the default): the link moves to the Contact record, the system fields
  (Contact Id, Contact URL) are written to it, and later pushes and pulls of the contact go
  to ``Contacts``, guarded as the leads' are (``FollowedWriter``); deletions both ways and
  Zoho merges of the Contact are settled by the pull's side (``sync.followed``) and the
  push's deletions; ``stop``: the link stays on the converted lead and nothing more is sent
  or read for it.

Field names differ between the modules for a few standard fields; the followed contact's
values travel through Zoho's default conversion mapping (``CONTACT_FIELD_OF``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_zoho_sync.sync.checked import (
    CHANGED_IN_ZOHO,
    GONE_FROM_ZOHO,
    GONE_MESSAGE,
    WriteAnswer,
    checked_update,
)
from flask_zoho_sync.sync.context import (
    READ_KEY,
    PlannedChange,
    RunInProgress,
    RunReport,
    mapped_values,
)
from flask_zoho_sync.sync.drift import field_refusal, without_fields
from flask_zoho_sync.zoho.coql import MAX_SELECT_FIELDS, unreadable_fields
from flask_zoho_sync.zoho.errors import ZohoRequestError, ZohoScopeMismatch
from flask_zoho_sync.zoho.timefmt import UTC, ZohoTimeFormatError, parse_datetime

logger = logging.getLogger(__name__)

#: What the conversion check reads of each converted lead.
CONVERSION_FIELDS = (
    "Converted__s",
    "Converted_Contact",
    "Converted_Account",
    "Converted_Deal",
    "Converted_Date_Time",
)

#: Leads fields whose Contacts counterpart has another name in Zoho's default conversion
#: mapping (Title for Designation, the Mailing address for the address).
CONTACT_FIELD_OF = {
    "Designation": "Title",
    "Street": "Mailing_Street",
    "City": "Mailing_City",
    "State": "Mailing_State",
    "Zip_Code": "Mailing_Zip",
    "Country": "Mailing_Country",
}
#: Leads fields no Contact holds: they went to the Account (Company) or nowhere.
LEAD_ONLY_FIELDS = frozenset(
    {
        "Company",
        "Website",
        "Lead_Status",
        "Industry",
        "Rating",
        "No_of_Employees",
        "Annual_Revenue",
        "Converted__s",
        "Converted_Date_Time",
    }
)
_LEAD_FIELD_OF = {contact: lead for lead, contact in CONTACT_FIELD_OF.items()}

#: Most records one write call carries.
BATCH = 100
FOLLOW, STOP = "follow", "stop"


@dataclass(frozen=True)
class Conversion:
    """What a converted lead's lookups say Zoho made of it."""

    lead_id: str
    contact_zoho_id: str | None
    account_id: str | None
    deal_id: str | None
    converted_at: datetime | None

    @classmethod
    def of(cls, record: dict[str, Any]) -> Conversion | None:
        if not record.get("Converted__s") or not record.get("id"):
            return None
        try:
            at = record.get("Converted_Date_Time")
            converted_at = parse_datetime(at) if at else None
        except ZohoTimeFormatError:
            converted_at = None
        return cls(
            str(record["id"]),
            _lookup_id(record.get("Converted_Contact")),
            _lookup_id(record.get("Converted_Account")),
            _lookup_id(record.get("Converted_Deal")),
            converted_at,
        )

    def made(self) -> dict[str, str]:
        """The new records by module, as history shows them."""
        made = {"Contact": self.contact_zoho_id, "Account": self.account_id, "Deal": self.deal_id}
        return {name: zoho_id for name, zoho_id in made.items() if zoho_id}


def _lookup_id(value: Any) -> str | None:
    if isinstance(value, dict) and value.get("id"):
        return str(value["id"])
    return None


def to_contact_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """A Leads payload as the Contact made from the lead takes it."""
    return {
        CONTACT_FIELD_OF.get(name, name): value
        for name, value in payload.items()
        if name not in LEAD_ONLY_FIELDS
    }


def to_lead_fields(record: dict[str, Any]) -> dict[str, Any]:
    """A Contacts record under the Leads names the mapping knows."""
    return {_LEAD_FIELD_OF.get(name, name): value for name, value in record.items()}


def listing_options(module: str) -> tuple[list[str], str | None]:
    """What the pull adds to its listing of a module: the conversion fields and
    ``converted=both`` for Leads (so a lead converted since the watermark comes with the
    changed records, at no call of its own), nothing for Contacts."""
    if module != "Leads":
        return [], None
    return list(CONVERSION_FIELDS), "both"


def split_converted(
    records: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Live records, then converted leads (which are never merged nor imported)."""
    live = [record for record in records if not record.get("Converted__s")]
    if len(live) == len(records):
        return records, []
    return live, [record for record in records if record.get("Converted__s")]


class ConversionCheck:
    """Settle, once each, the linked leads among converted leads the pull has read."""

    def __init__(self, engine: RunInProgress, report: RunReport) -> None:
        self.engine = engine
        self.report = report
        self.ledger = engine.ledger
        self.outcome = engine.options.on_lead_conversion
        self.dry_run = engine.options.dry_run

    def settle(self, records: list[dict[str, Any]]) -> None:
        if records:
            self._settle_page(records)

    def _settle_page(self, records: list[dict[str, Any]]) -> None:
        conversions = [c for c in map(Conversion.of, records) if c is not None]
        ids = [conversion.lead_id for conversion in conversions]
        links = self.ledger.links_by_zoho(ids)
        seen = self.ledger.converted_lead_ids(list(links))
        settled = [
            (links[c.lead_id], c)
            for c in conversions
            if c.lead_id in links and c.lead_id not in seen
        ]
        for link, conversion in settled:
            self._settle(link, conversion)
        if self.outcome == FOLLOW and not self.dry_run:
            self._write_system_fields([(link, c) for link, c in settled if c.contact_zoho_id])

    def _settle(self, link: Any, conversion: Conversion) -> None:
        follows = self.outcome == FOLLOW and conversion.contact_zoho_id is not None
        made = ", ".join(f"{name} {zoho_id}" for name, zoho_id in conversion.made().items())
        reason = f"converted in Zoho into {made or 'no new record'}; " + (
            "syncing goes on with the Contact"
            if follows
            else "syncing of this contact stopped (ZOHO_SYNC_ON_LEAD_CONVERSION = stop)"
        )
        changes = {"made": conversion.made(), "outcome": FOLLOW if follows else STOP}
        self.report.add(
            PlannedChange("to_host", "convert", link.contact_id, conversion.lead_id, reason=reason)
        )
        if self.dry_run:
            return
        self.ledger.record_conversion(
            contact_id=link.contact_id,
            lead_id=conversion.lead_id,
            contact_zoho_id=conversion.contact_zoho_id,
            account_id=conversion.account_id,
            deal_id=conversion.deal_id,
            converted_at=conversion.converted_at,
            outcome=FOLLOW if follows else STOP,
        )
        self.ledger.record(
            self.engine.run,
            direction="to_host",
            action="convert",
            contact_id=link.contact_id,
            zoho_id=conversion.lead_id,
            changes=changes,
            reason=reason,
        )
        if follows:
            link.zoho_id = conversion.contact_zoho_id
            link.zoho_modified_at = None  # the Contact's versions start now

    def _write_system_fields(self, followed: list[tuple[Any, Conversion]]) -> None:
        """Write the Contact Id and Contact URL fields to the new Contacts (one call per
        100): Zoho's conversion copies only the fields of its conversion mapping."""
        system = [
            binding.key
            for binding in self.engine.mapping.active_bindings()
            if binding.kind == "system" and binding.direction.writes_zoho
        ]
        if not followed or not system or not self.engine.options.rules.writes_zoho:
            return  # import only writes nothing to Zoho: the link moves, nothing is written
        adapter, mapping = self.engine.adapter, self.engine.mapping
        contacts = adapter.get_many([link.contact_id for link, _ in followed])
        payloads, owners = [], []
        for link, conversion in followed:
            contact = contacts.get(link.contact_id)
            if contact is None:
                continue
            values = mapping.host_to_canonical(
                adapter.get_values(contact),
                groups=adapter.get_groups(contact),
                subscribed=adapter.is_subscribed(contact),
                contact_id=adapter.contact_id(contact),
                contact_url=adapter.contact_url(contact),
            )
            wanted = {key: values[key] for key in system if key in values}
            payload = to_contact_fields(mapping.canonical_to_zoho(wanted))
            payloads.append({**payload, "id": conversion.contact_zoho_id})
            owners.append(link)
        FollowedWriter(self.engine, self.report).send(owners, payloads, {})


def contact_fields(mapping: Any) -> list[str]:
    """What a read of followed Contacts asks for: the mapped fields under the Contacts'
    names (the Leads-only ones left out) and Modified_Time, the version the guards compare."""
    names = to_contact_fields({name: None for name in mapping.zoho_api_names()})
    return sorted({*names, "Modified_Time"})


def refused_contact_fields(result: Any, mapping: Any) -> set[str]:
    """The Contacts fields a refusal names as a whole (deleted or locked in the Contacts
    module, ``sync.drift``), under the Contacts' names. The Leads mapping row is not paused
    for them: the field is fine in Leads; it is only left out of writes to Contacts."""
    if result.code == "MULTIPLE_OR_MULTI_ERRORS" and isinstance(result.details, dict):
        errors = [e for e in result.details.get("errors") or () if isinstance(e, dict)]
    else:
        errors = [{"code": result.code, "details": result.details}]
    refused = set()
    for error in errors:
        details = error.get("details")
        name = details.get("api_name") if isinstance(details, dict) else None
        if not isinstance(name, str):
            continue
        as_lead = {**details, "api_name": _LEAD_FIELD_OF.get(name, name)}
        if field_refusal(error.get("code"), as_lead, mapping) is not None:
            refused.add(name)
    return refused


def _aware(moment: datetime | None) -> datetime | None:
    """A stored time as aware UTC (SQLite hands back naive datetimes)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class FollowedWriter:
    """Writes to the Contact records followed contacts are linked to, guarded as the push's
    updates of leads are, and records it.

    A batch whose links hold a version of their Contacts goes through ``checked_update``:
    a Contact the re-read no longer finds (deleted or merged away in Zoho) is not written
    (an update never re-creates a record, and the pull then deletes the host contact or
    follows the merge), and one a Zoho user changed since is not overwritten but handed
    back in ``contested`` for the merge. A batch of Contacts just made by a conversion
    (no version held yet: the Contact Id write) is sent without the re-read, which could
    find nothing to guard against. A field the Contacts module refuses as a whole is left
    out (``left_out``) and the records refused for it are sent again without it.
    """

    def __init__(
        self, engine: RunInProgress, report: RunReport, left_out: set[str] | None = None
    ) -> None:
        self.engine = engine
        self.report = report
        self.ledger = engine.ledger
        #: Contacts fields refused as a whole, left out of every later write of the push.
        self.left_out = left_out if left_out is not None else set()
        #: Links whose Contact changed in Zoho under this write (not sent), with the record
        #: the re-read found (under the Leads names), or None when the conditional write
        #: was refused and the record is still to be read.
        self.contested: list[tuple[Any, dict[str, Any] | None]] = []

    def send(
        self,
        links: list[Any],
        payloads: list[dict[str, Any]],
        written: dict[str, dict[str, Any]],
        entries: dict[str, list[Any]] | None = None,
    ) -> None:
        """Update the Contacts, ``BATCH`` a call. ``written`` holds, by contact, the
        canonical values each payload carries (what the link's snapshot takes on success);
        ``entries`` the outbox rows each answers for."""
        entries = entries or {}
        waiting = list(zip(links, payloads, strict=True))
        for _round in range(len(self.engine.mapping.bindings) + 1):
            again: list[tuple[Any, dict[str, Any]]] = []
            for start in range(0, len(waiting), BATCH):
                again += self._send_chunk(waiting[start : start + BATCH], written, entries)
                self.ledger.commit()
            if not again:
                return
            waiting = again

    def _send_chunk(
        self,
        chunk: list[tuple[Any, dict[str, Any]]],
        written: dict[str, dict[str, Any]],
        entries: dict[str, list[Any]],
    ) -> list[tuple[Any, dict[str, Any]]]:
        """One call's worth; returns the records to send again without a refused field."""
        sent = [(link, without_fields(payload, self.left_out)) for link, payload in chunk]
        payloads = [payload for _, payload in sent]
        seen = [_aware(link.zoho_modified_at) for link, _ in sent]
        client = self.engine.client
        if any(version is not None for version in seen):
            answer = checked_update(
                client, "Contacts", payloads, seen, contact_fields(self.engine.mapping)
            )
        else:
            answer = WriteAnswer(client.update("Contacts", payloads))
        again = []
        for (link, payload), result in zip(sent, answer.results, strict=True):
            waiting = entries.get(link.contact_id, [])
            # Sent with the field: a refusal for it is met once per push, whichever
            # record of the batch meets it.
            refused = refused_contact_fields(result, self.engine.mapping) & set(payload)
            if not result.ok and refused:
                self._leave_out(refused)
                again.append((link, payload))
                continue
            if result.code == CHANGED_IN_ZOHO and not result.ok:
                moved = answer.moved.get(str(link.zoho_id))
                self.contested.append((link, to_lead_fields(moved) if moved else None))
                continue
            # A left-out field's value counts as settled (it is not sent again each push;
            # the Contacts module has no place for it): the snapshot takes what was meant.
            read_at = answer.read.get(str(link.zoho_id))
            self._settle(link, payload, result, written.get(link.contact_id, {}), read_at)
            if result.ok:
                self.ledger.finish_outbox(waiting)
            elif result.code == GONE_FROM_ZOHO and result.message == GONE_MESSAGE:
                # Not sent; the pull deletes the host contact or follows Zoho's merge.
                self.ledger.finish_outbox(waiting, error=self._refusal(link, result))
            else:  # kept for the next push: the snapshot still shows the change unsent
                self.ledger.retry_outbox_later(waiting, f"{result.code}: {result.message}")
        return again

    def _leave_out(self, refused: set[str]) -> None:
        for _name in refused - self.left_out:
            self.report.count("to_zoho.left_out_fields")
        self.left_out |= refused

    @staticmethod
    def _refusal(link: Any, result: Any) -> str:
        if result.code == GONE_FROM_ZOHO and result.message == GONE_MESSAGE:
            return (
                f"Not sent to Contact {link.zoho_id}: {GONE_MESSAGE}; the next sync that "
                "pulls deletes the contact too, or follows Zoho's merge to its master."
            )
        return f"Zoho refused the write to Contact {link.zoho_id}: {result.code} " + (
            f"{result.message or ''}".strip()
        )

    def _settle(
        self,
        link: Any,
        payload: dict[str, Any],
        result: Any,
        written: dict[str, Any],
        read_at: datetime | None = None,
    ) -> None:
        shown = {name: value for name, value in payload.items() if name != "id"}
        if not result.ok:
            reason = self._refusal(link, result)
            self.report.add(
                PlannedChange(
                    "to_zoho",
                    "error",
                    link.contact_id,
                    link.zoho_id,
                    reason=reason,
                    error_code=result.code,
                )
            )
            self.ledger.record(
                self.engine.run,
                direction="to_zoho",
                action="error",
                contact_id=link.contact_id,
                zoho_id=link.zoho_id,
                reason=reason,
                error_code=result.code or "ERROR",
            )
            return
        snapshot = {**(link.snapshot or {}), **written}
        # The version the re-read saw just before the write, for the notified pull's check
        # of an edit the write overwrote (``PullPass.recover_overwritten``), as for leads.
        snapshot.pop(READ_KEY, None)
        if read_at is not None:
            snapshot[READ_KEY] = read_at.isoformat()
        link.snapshot = snapshot
        if result.modified_time is not None:
            link.zoho_modified_at = result.modified_time
        reason = "sent to the Contact the converted lead became"
        if self.left_out:
            names = ", ".join(sorted(self.left_out))
            reason += f"; left out: {names} (refused as a whole by Zoho's Contacts module)"
        self.report.add(PlannedChange("to_zoho", "update", link.contact_id, link.zoho_id, shown))
        self.ledger.record(
            self.engine.run,
            direction="to_zoho",
            action="update",
            contact_id=link.contact_id,
            zoho_id=link.zoho_id,
            changes={"fields": shown},
            reason=reason,
        )


def governing(conversion: Any, link: Any) -> str | None:
    """``FOLLOW`` or ``STOP`` when this conversion governs the contact's link now, else None.

    A followed link is on the Contact the conversion made (``contact_zoho_id``, moved along
    when a Zoho merge took that Contact into another), a stopped one on the converted lead.
    A conversion row whose contact's link is elsewhere, or gone, is another contact's: the
    host reused the id of a contact deleted since (SQLite does), and the new contact is
    synced as any other; a contact a merge left unlinked is held by its pair (``identity``).
    """
    if conversion is None or link is None:
        return None
    if conversion.outcome == FOLLOW and str(link.zoho_id) == str(conversion.contact_zoho_id):
        return FOLLOW
    if conversion.outcome == STOP and str(link.zoho_id) == str(conversion.lead_id):
        return STOP
    return None


def set_aside_converted(
    engine: RunInProgress, contact_ids: list[str], outbox: dict[str, list[Any]]
) -> tuple[list[str], list[str]]:
    """Split a push batch: the contacts still synced with their leads, and those followed to
    a Contact (for ``push_followed``). Stopped ones are left out, their outbox rows done:
    nothing of them is sent again. One query per batch, only in Leads mode, and one more
    for the links of the batch's converted contacts."""
    if engine.ledger.run_module != "Leads" or not contact_ids:
        return contact_ids, []
    conversions = engine.ledger.conversions_by_contact(contact_ids)
    if not conversions:
        return contact_ids, []
    links = engine.ledger.links_by_contact(list(conversions))
    outcome = {cid: governing(row, links.get(cid)) for cid, row in conversions.items()}
    followed = [cid for cid in contact_ids if outcome.get(cid) == FOLLOW]
    stopped = [cid for cid in contact_ids if outcome.get(cid) == STOP]
    if stopped and not engine.options.dry_run:
        engine.ledger.finish_outbox([entry for cid in stopped for entry in outbox.get(cid, [])])
    kept = [cid for cid in contact_ids if outcome.get(cid) is None]
    return kept, followed


#: How many times one push merges and re-sends followed Contacts a Zoho user keeps changing
#: under it (the push's ``CONTESTED_ROUNDS``); what is still contested waits for the next run.
CONTESTED_ROUNDS = 2

#: Merges followed Contacts just read (link, record under the Leads names): the pull's
#: ``PullPass.merge_followed``, handed in by the push, which the engine's import arrows keep
#: from importing the pull here.
MergeFollowed = Callable[[list[tuple[Any, dict[str, Any]]]], None]


def push_followed(
    engine: RunInProgress,
    report: RunReport,
    contact_ids: Iterable[str],
    outbox: dict[str, list[Any]],
    *,
    merge: MergeFollowed | None = None,
    left_out: set[str] | None = None,
) -> None:
    """Send followed contacts' host changes to their Contact records: what changed since the
    link's snapshot, in the Contacts' field names, one call per 100, guarded as the push's
    updates are (``FollowedWriter``). A Contact a Zoho user changed under the write is merged
    (``merge``) and sent again, as the push does for leads (its ``_merge_contested``)."""
    ids = list(dict.fromkeys(contact_ids))
    left_out = left_out if left_out is not None else set()
    for _round in range(CONTESTED_ROUNDS + 1):
        if not ids:
            return
        owners, payloads, written = _followed_payloads(engine, report, ids, outbox)
        if not payloads:
            return
        writer = FollowedWriter(engine, report, left_out)
        writer.send(owners, payloads, written, outbox)
        if not writer.contested:
            return
        if merge is None or _round == CONTESTED_ROUNDS:
            _leave_contested(engine, report, writer.contested, outbox)
            return
        merge(_read_contested(engine, writer.contested))
        engine.ledger.commit()
        ids = [link.contact_id for link, _ in writer.contested]


def _read_contested(
    engine: RunInProgress, contested: list[tuple[Any, dict[str, Any] | None]]
) -> list[tuple[Any, dict[str, Any]]]:
    """The contested Contacts with their records: those the conditional write refused
    were not read with their new values, and are read here (one call per 100)."""
    unread = [str(link.zoho_id) for link, record in contested if record is None]
    read = {}
    if unread:
        fields = contact_fields(engine.mapping)
        for record in engine.client.get_records("Contacts", unread, fields):
            read[str(record.get("id"))] = to_lead_fields(record)
    found = []
    for link, record in contested:
        record = record if record is not None else read.get(str(link.zoho_id))
        if record is not None:
            found.append((link, record))
    return found


def _leave_contested(
    engine: RunInProgress,
    report: RunReport,
    contested: list[tuple[Any, dict[str, Any] | None]],
    outbox: dict[str, list[Any]],
) -> None:
    reason = (
        "Changed in Zoho again while the sync was sending this contact's changes to its "
        "Contact; nothing was overwritten, and the next sync merges both sides."
    )
    for link, _ in contested:
        report.add(
            PlannedChange(
                "to_zoho",
                "error",
                link.contact_id,
                link.zoho_id,
                reason=reason,
                error_code=CHANGED_IN_ZOHO,
            )
        )
        engine.ledger.retry_outbox_later(outbox.get(link.contact_id, []), reason)
        engine.ledger.record(
            engine.run,
            direction="to_zoho",
            action="error",
            contact_id=link.contact_id,
            zoho_id=link.zoho_id,
            reason=reason,
            error_code=CHANGED_IN_ZOHO,
        )
    engine.ledger.commit()


def _followed_payloads(
    engine: RunInProgress, report: RunReport, ids: list[str], outbox: dict[str, list[Any]]
) -> tuple[list[Any], list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The links, payloads (Contacts' names) and canonical values to send for these
    followed contacts; in a plan, the planned updates instead."""
    adapter, mapping = engine.adapter, engine.mapping
    links = engine.ledger.links_by_contact(ids)
    contacts = adapter.get_many(ids)
    owners: list[Any] = []
    payloads: list[dict[str, Any]] = []
    written: dict[str, dict[str, Any]] = {}
    for contact_id in ids:
        link, contact = links.get(contact_id), contacts.get(contact_id)
        if link is None or contact is None:
            continue  # a host deletion is sent by the push's deletions (run_deletions)
        values = mapping.host_to_canonical(
            adapter.get_values(contact),
            groups=adapter.get_groups(contact),
            subscribed=adapter.is_subscribed(contact),
            contact_id=adapter.contact_id(contact),
            contact_url=adapter.contact_url(contact),
        )
        base = mapped_values(link.snapshot) or {}
        changed = {
            key: value
            for key, value in values.items()
            if mapping.binding(key).direction.writes_zoho
            and (key not in base or not mapping.values_equal(key, base[key], value))
        }
        payload = to_contact_fields(mapping.canonical_to_zoho(changed)) if changed else {}
        if not payload:
            if not engine.options.dry_run:
                engine.ledger.finish_outbox(outbox.get(contact_id, []))
            continue
        if engine.options.dry_run:
            report.add(PlannedChange("to_zoho", "update", contact_id, link.zoho_id, payload))
            continue
        owners.append(link)
        payloads.append({**payload, "id": link.zoho_id})
        written[contact_id] = changed
    return owners, payloads, written


def read_followed(
    engine: RunInProgress, previous_pull: datetime | None = None
) -> tuple[list[tuple[Any, dict[str, Any]]], list[Any]]:
    """The followed contacts' links and their Contact records, under the Leads names the
    mapping knows, for the pull to merge; and the links whose Contact Zoho no longer has
    (deleted or merged away), for the pull to follow to a merge's master or delete
    (``sync.followed``).

    A full pull (``previous_pull`` None) or a few followed contacts: all of them by id, one
    call per 100. More than ``READ_CHANGED_ABOVE`` on a since-last pull: only the Contacts
    changed or deleted since the previous pull began (``read_changed_contacts_of``), so an
    org with thousands of converted leads does not pay a call per 100 of them on every pull
    when none changed."""
    if engine.ledger.run_module != "Leads":
        return [], []
    followed = engine.ledger.followed_conversions()
    if not followed:
        return [], []
    links = engine.ledger.links_by_contact([row.contact_id for row in followed])
    ours = [
        links[row.contact_id]
        for row in followed
        if governing(row, links.get(row.contact_id)) == FOLLOW
    ]
    if previous_pull is not None and len(ours) > READ_CHANGED_ABOVE:
        recorded = {row.contact_id: row.recorded_at for row in followed}
        changed = read_changed_contacts_of(engine, ours, recorded, previous_pull)
        if changed is not None:
            return changed
    return read_contacts_of(engine, ours)


#: Followed links beyond which a since-last pull reads the Contacts changed since (one
#: COQL call per 2,000 changed, one call for the deleted) rather than all by id (one call
#: per 100): above 200 links the id reads cost at least 3 calls, the changed read 2.
READ_CHANGED_ABOVE = 200


def read_changed_contacts_of(
    engine: RunInProgress,
    links: list[Any],
    recorded: dict[str, datetime | None],
    previous_pull: datetime,
) -> tuple[list[tuple[Any, dict[str, Any]]], list[Any]] | None:
    """What ``read_contacts_of`` answers for these links, reading only what changed since
    the previous pull began (less the pull's overlap, for the clocks of Zoho and the host):
    the Contacts modified since, by COQL, of which the followed ones are kept; and the
    Contacts deleted since, whose followed ones are read by id to be sure they are gone (a
    restored Contact is found, not deleted).

    Why that is safe: the previous pull read every followed Contact (by id, or changed since
    the pull before it) after it began, so a change it did not see is later than its start.
    It is the pull's start (``last_pull_at``), not the Leads watermark, which is the newest
    Leads record and says nothing of Contacts. A link followed since the previous pull began
    (its conversion recorded then or later, both times the host's) may name a Contact
    changed before and never read: those are read by id. None when COQL cannot carry
    the mapped fields or Zoho refuses the query: the caller reads all by id, as before."""
    mapping = engine.mapping
    fields = contact_fields(mapping)
    types = {field.api_name: field.data_type for field in mapping.zoho_fields}
    if unreadable_fields(types, mapping.zoho_api_names()) or len({"id", *fields}) > (
        MAX_SELECT_FIELDS
    ):
        return None
    began = previous_pull if previous_pull.tzinfo else previous_pull.replace(tzinfo=UTC)
    since = began - engine.options.overlap
    fresh = [
        link
        for link in links
        if (at := _aware(recorded.get(link.contact_id))) is None or at >= began
    ]
    fresh_ids = {id(link) for link in fresh}
    by_zoho = {str(link.zoho_id): link for link in links if id(link) not in fresh_ids}
    client = engine.client
    found: list[tuple[Any, dict[str, Any]]] = []
    try:
        for page in client.iter_coql_pages("Contacts", fields, modified_since=since):
            for record in page:
                link = by_zoho.pop(str(record.get("id")), None)
                if link is not None:
                    found.append((link, to_lead_fields(record)))
    except (ZohoScopeMismatch, ZohoRequestError) as refused:
        logger.warning(
            "Zoho refused the COQL read of changed Contacts (%s); reading the followed "
            "Contacts by id",
            refused.code,
        )
        return None
    deleted = {entry.id for entry in client.iter_deleted("Contacts", modified_since=since)}
    suspects = [link for zoho_id, link in by_zoho.items() if zoho_id in deleted]
    more, gone = read_contacts_of(engine, [*fresh, *suspects])
    return [*found, *more], gone


def read_contacts_of(
    engine: RunInProgress, links: list[Any]
) -> tuple[list[tuple[Any, dict[str, Any]]], list[Any]]:
    """The Contact records of these followed links (one call per 100), and the links whose
    Contact Zoho no longer has."""
    by_zoho = {str(link.zoho_id): link for link in links}
    if not by_zoho:
        return [], []
    records = engine.client.get_records("Contacts", list(by_zoho), contact_fields(engine.mapping))
    found = []
    for record in records:
        link = by_zoho.pop(str(record.get("id")), None)
        if link is not None:
            found.append((link, to_lead_fields(record)))
    return found, list(by_zoho.values())
