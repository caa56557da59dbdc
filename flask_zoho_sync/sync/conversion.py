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
* ``follow``: the link moves to the Contact record, the system fields (Contact Id, Contact
  URL) are written to it, and later pushes and pulls of the contact go to ``Contacts``;
  ``stop``: the link stays on the converted lead and nothing more is sent or read for it.

Field names differ between the modules for a few standard fields; the followed contact's
values travel through Zoho's default conversion mapping (``CONTACT_FIELD_OF``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_zoho_sync.sync.context import PlannedChange, RunInProgress, RunReport, mapped_values
from flask_zoho_sync.zoho.timefmt import ZohoTimeFormatError, parse_datetime

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


class FollowedWriter:
    """Writes to the Contact records followed contacts are linked to, and records it."""

    def __init__(self, engine: RunInProgress, report: RunReport) -> None:
        self.engine = engine
        self.report = report
        self.ledger = engine.ledger

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
        for start in range(0, len(payloads), BATCH):
            chunk = payloads[start : start + BATCH]
            results = self.engine.client.update("Contacts", chunk)
            for link, payload, result in zip(
                links[start : start + BATCH], chunk, results, strict=True
            ):
                self._settle(link, payload, result, written.get(link.contact_id, {}))
                waiting = entries.get(link.contact_id, [])
                if result.ok:
                    self.ledger.finish_outbox(waiting)
                else:  # kept for the next push: the snapshot still shows the change unsent
                    self.ledger.retry_outbox_later(waiting, f"{result.code}: {result.message}")
            self.ledger.commit()

    def _settle(
        self, link: Any, payload: dict[str, Any], result: Any, written: dict[str, Any]
    ) -> None:
        shown = {name: value for name, value in payload.items() if name != "id"}
        if not result.ok:
            reason = f"Zoho refused the write to Contact {link.zoho_id}: {result.code} " + (
                f"{result.message or ''}".strip()
            )
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
        link.snapshot = {**(link.snapshot or {}), **written}
        if result.modified_time is not None:
            link.zoho_modified_at = result.modified_time
        self.report.add(PlannedChange("to_zoho", "update", link.contact_id, link.zoho_id, shown))
        self.ledger.record(
            self.engine.run,
            direction="to_zoho",
            action="update",
            contact_id=link.contact_id,
            zoho_id=link.zoho_id,
            changes={"fields": shown},
            reason="sent to the Contact the converted lead became",
        )


def set_aside_converted(
    engine: RunInProgress, contact_ids: list[str], outbox: dict[str, list[Any]]
) -> tuple[list[str], list[str]]:
    """Split a push batch: the contacts still synced with their leads, and those followed to
    a Contact (for ``push_followed``). Stopped ones are left out, their outbox rows done:
    nothing of them is sent again. One query per batch, only in Leads mode."""
    if engine.ledger.run_module != "Leads" or not contact_ids:
        return contact_ids, []
    conversions = engine.ledger.conversions_by_contact(contact_ids)
    if not conversions:
        return contact_ids, []
    followed = [
        cid for cid in contact_ids if getattr(conversions.get(cid), "outcome", None) == FOLLOW
    ]
    stopped = [cid for cid in contact_ids if getattr(conversions.get(cid), "outcome", None) == STOP]
    if stopped and not engine.options.dry_run:
        engine.ledger.finish_outbox([entry for cid in stopped for entry in outbox.get(cid, [])])
    kept = [cid for cid in contact_ids if cid not in conversions]
    return kept, followed


def push_followed(
    engine: RunInProgress,
    report: RunReport,
    contact_ids: Iterable[str],
    outbox: dict[str, list[Any]],
) -> None:
    """Send followed contacts' host changes to their Contact records: what changed since the
    link's snapshot, in the Contacts' field names, one call per 100."""
    ids = list(dict.fromkeys(contact_ids))
    if not ids:
        return
    adapter, mapping = engine.adapter, engine.mapping
    links = engine.ledger.links_by_contact(ids)
    contacts = adapter.get_many(ids)
    owners, payloads, written = [], [], {}
    for contact_id in ids:
        link, contact = links.get(contact_id), contacts.get(contact_id)
        if link is None or contact is None:
            continue  # a host deletion of a followed contact is not sent (see README)
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
    if payloads:
        FollowedWriter(engine, report).send(owners, payloads, written, outbox)


def read_followed(engine: RunInProgress) -> list[tuple[Any, dict[str, Any]]]:
    """The followed contacts' links and their Contact records, under the Leads names the
    mapping knows, for the pull to merge: one call per 100 followed contacts, only those
    changed since the version merged last."""
    if engine.ledger.run_module != "Leads":
        return []
    followed = engine.ledger.followed_conversions()
    if not followed:
        return []
    links = engine.ledger.links_by_contact([row.contact_id for row in followed])
    by_zoho = {link.zoho_id: link for link in links.values()}
    fields = sorted(set(to_contact_fields({n: None for n in engine.mapping.zoho_api_names()})))
    records = engine.client.get_records("Contacts", list(by_zoho), [*fields, "Modified_Time"])
    found = []
    for record in records:
        link = by_zoho.get(str(record.get("id")))
        if link is not None:
            found.append((link, to_lead_fields(record)))
    return found
