"""Which Zoho record a host contact is, when Zoho users' doings move it: duplicates Zoho
refuses to create, and records merged away in Zoho.

Both keep the rule the rest of the engine keeps: never a second link to one record and
never a lost host contact. They live here, apart from the pull and push passes, because
they are about identity rather than values, and each pass only asks at one point:

* the push, when Zoho refuses a create with ``DUPLICATE_DATA``: :func:`adopt_duplicate`;
* the pull, before it deletes the contacts of records Zoho deleted: :class:`MergeFollower`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from flask_zoho_sync.sync.context import RESTORE_KEY, PlannedChange
from flask_zoho_sync.sync.conversion import listing_options

#: The history action of a link the engine moved or made because of a Zoho user's doing.
LINK_ACTION = "link"
#: The history (and error) code of two host contacts that now stand for one Zoho record.
PAIR_CODE = "MERGED_PAIR"


def duplicate_record_id(result: Any) -> str | None:
    """The existing record a ``DUPLICATE_DATA`` answer names (reference §4.5:
    ``details.duplicate_record.id``), or None when the answer names none."""
    if result.code != "DUPLICATE_DATA" or not isinstance(result.details, dict):
        return None
    named = result.details.get("duplicate_record")
    record_id = named.get("id") if isinstance(named, dict) else None
    return str(record_id) if record_id not in (None, "") else None


def adopt_duplicate(push: Any, item: Any, result: Any, batch: Any) -> bool:
    """Link a new contact to the record Zoho says already holds its unique value, instead
    of failing it; True if it did.

    Zoho refused to create the record because another record holds the contact's value of
    a unique field (often Email): that record is the contact. It is linked only if no other
    contact is linked to it (a second link is never made; the refusal then stands, with
    its reason). The link is marked to restore, and the contact queued, so the next push
    writes the contact's values into the record, as an upsert matching on Email would have.
    """
    zoho_id = duplicate_record_id(result)
    if item.link is not None or zoho_id is None:
        return False
    owner = batch.fresh[zoho_id]["contact_id"] if zoho_id in batch.fresh else None
    if owner is None:
        claimed = push.ledger.links_in_module(push.module, zoho_ids=[zoho_id]).get(zoho_id)
        owner = claimed.contact_id if claimed is not None else None
    if owner is not None:
        return False
    field_name = result.details.get("api_name") or "a unique field"
    reason = (
        f"Zoho refused to create it (DUPLICATE_DATA): record {zoho_id} already has this "
        f"contact's {field_name}; linked to that record, which the next sync updates"
    )
    push.report.add(PlannedChange("to_zoho", LINK_ACTION, item.contact_id, zoho_id, reason=reason))
    if push.dry_run:
        return True
    row = push.ledger.new_link_row(
        item.contact_id, zoho_id, {RESTORE_KEY: True}, None, module=push.module
    )
    batch.new_links.append(row)
    batch.fresh[zoho_id] = row
    batch.finished.extend(item.entries)
    batch.resolved.append(item.contact_id)
    push.ledger.requeue_contact(item.contact_id)
    push.ledger.record(
        push.engine.run,
        direction="to_zoho",
        action=LINK_ACTION,
        contact_id=item.contact_id,
        zoho_id=zoho_id,
        reason=reason,
        error_code="DUPLICATE_DATA",
    )
    return True


def held_unlinked(push: Any, unlinked: list[str], outbox: dict[str, list[Any]]) -> set[str]:
    """Of these unlinked contacts, those a Zoho merge paired with another: the push sends
    nothing for them (a create would bring back the record the Zoho user merged away) and
    answers their outbox entries, so they do not wait there; the pair's error says why."""
    held = push.ledger.held_unlinked(unlinked)
    for contact_id in held:
        push.report.count("to_zoho.skipped_pair")
        if not push.dry_run and outbox.get(contact_id):
            push.ledger.finish_outbox(outbox[contact_id])
    return held


class MergeFollower:
    """Tell a record merged away in Zoho from one deleted there, for one pull's deletions.

    Zoho's deleted list does not say a record was merged, nor into which record (see
    docs/zoho-api-notes.md, "Merge records"). The master is the record that now carries the
    vanished record's email or the host's Contact Id: one search a run finds the masters
    of all its vanished linked records at once, and only when some vanished.

    * master linked to no contact: the link moves to it and the contact stays; the
      master's values are merged at once (the search read them: no further call);
    * master linked to another contact: both contacts stay; this one's link, to a record
      that is gone, is dropped, and an open ``MERGED_PAIR`` error names the pair, for the
      admin to merge the two contacts (the adapter's ``merge_contacts``) or keep both;
    * no master found: a deletion like any other (the caller deletes the contact).
    """

    def __init__(self, pull: Any) -> None:
        self.pull = pull
        self.mapping = pull.mapping
        self.ledger = pull.ledger
        self.engine = pull.engine
        self.email_key = self._binding_key("Email")
        self.contact_id_field = self._zoho_field("system:contact_id")

    def _binding_key(self, zoho_api_name: str) -> str | None:
        for binding in self.mapping.active_bindings():
            if binding.zoho_api_name == zoho_api_name:
                return str(binding.key)
        return None

    def _zoho_field(self, key: str) -> str | None:
        for binding in self.mapping.active_bindings():
            if binding.key == key:
                return str(binding.zoho_api_name)
        return None

    def follow(self, vanished: Sequence[Any], deleted_ids: set[str]) -> list[Any]:
        """The links of ``vanished`` whose records were deleted for good; those of merged
        records are moved or paired here."""
        if not vanished:
            return []
        contacts = self.pull.adapter.get_many([link.contact_id for link in vanished])
        emails = {
            link.contact_id: self._emails(link, contacts.get(link.contact_id)) for link in vanished
        }
        wanted: dict[str, list[str]] = {}
        all_emails = sorted({email for found in emails.values() for email in found})
        if all_emails:
            wanted["Email"] = all_emails
        if self.contact_id_field:
            wanted[self.contact_id_field] = sorted({str(link.contact_id) for link in vanished})
        if not wanted:
            return list(vanished)
        # A master converted since the merge has left the default search as it left the
        # listings: asked for with the conversion fields, it is found and then settled as
        # any converted lead is (followed or stopped), not taken for a deletion.
        extra, converted = listing_options(self.ledger.module)
        records = [
            record
            for record in self.engine.client.search_in(
                self.ledger.module,
                wanted,
                list(dict.fromkeys([*self.mapping.zoho_api_names(), *extra])),
                converted=converted,
            )
            if str(record.get("id")) not in deleted_ids
        ]
        if not records:
            return list(vanished)
        claimed = self.ledger.links_by_zoho([str(record["id"]) for record in records])
        owners = {zoho_id: link.contact_id for zoho_id, link in claimed.items()}
        remaining: list[Any] = []
        masters: dict[str, dict[str, Any]] = {}
        for link in vanished:
            master = self._master_of(link, emails[link.contact_id], records)
            if master is None:
                remaining.append(link)
                continue
            master_id = str(master["id"])
            owner = owners.get(master_id)
            if owner is None:
                owners[master_id] = link.contact_id
                masters[master_id] = master
                self._move(link, master_id)
            else:
                self._pair(link, master_id, owner)
        if masters and not self.pull.dry_run:
            self.ledger.commit()  # the moved links, before the merge looks links up
            self.pull.merge_records(list(masters.values()))
        return remaining

    def _emails(self, link: Any, contact: Any) -> set[str]:
        """The emails the vanished record had (last synced) and its contact has now."""
        if self.email_key is None:
            return set()
        candidates = [(link.snapshot or {}).get(self.email_key)]
        if contact is not None:
            host_name = self.mapping.binding(self.email_key).host.name
            candidates.append(self.pull.adapter.get_values(contact).get(host_name))
        return {
            email.strip().lower()
            for email in candidates
            if isinstance(email, str) and email.strip()
        }

    def _master_of(
        self, link: Any, emails: set[str], records: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        """The record carrying this contact's Contact Id, else one carrying its email (the
        newest change first: the merge has just modified its master)."""
        if self.contact_id_field:
            for record in records:
                if str(record.get(self.contact_id_field) or "") == str(link.contact_id):
                    return record
        by_email = [
            record
            for record in records
            if isinstance(record.get("Email"), str) and record["Email"].strip().lower() in emails
        ]
        by_email.sort(key=lambda record: str(record.get("Modified_Time") or ""), reverse=True)
        return by_email[0] if by_email else None

    def _move(self, link: Any, master_id: str) -> None:
        former = link.zoho_id
        reason = (
            f"Zoho record {former} is gone and record {master_id} now carries its email or "
            "Contact Id (a merge in Zoho): the link moved to it; the contact stays"
        )
        self.pull.report.add(
            PlannedChange("to_host", LINK_ACTION, link.contact_id, master_id, reason=reason)
        )
        self._withdraw_duplicate_error(link.contact_id, master_id)
        if self.pull.dry_run:
            return
        link.zoho_id = master_id
        self.ledger.record(
            self.engine.run,
            direction="to_host",
            action=LINK_ACTION,
            contact_id=link.contact_id,
            zoho_id=master_id,
            changes={"former_zoho_id": former},
            reason=reason,
        )
        self.ledger.resolve_errors([link.contact_id])

    def _withdraw_duplicate_error(self, contact_id: str, master_id: str) -> None:
        """This run's pull met the master before the deletions and, the contact being
        linked to the vanished record then, reported Zoho as holding its email twice
        (``DUPLICATE_IN_ZOHO``). The move settles that: the report drops the error (its
        history row is resolved with the contact's other errors)."""
        report = self.pull.report
        kept = []
        for change in report.changes:
            if (
                change.action == "error"
                and change.error_code == "DUPLICATE_IN_ZOHO"
                and change.contact_id == contact_id
                and change.zoho_id == master_id
            ):
                report.counts[f"{change.direction}.error"] -= 1
                continue
            kept.append(change)
        report.changes[:] = kept
        report.counts += Counter()  # drops the counts brought to zero

    def _pair(self, link: Any, master_id: str, owner: str) -> None:
        former = link.zoho_id
        reason = (
            f"Zoho merged record {former} into record {master_id}, which is linked to "
            f"contact {owner}: both contacts are kept, this one unlinked. Merge the two "
            "contacts or keep both (Identity section of the overview)."
        )
        self.pull.report.add(
            PlannedChange(
                "to_host", "error", link.contact_id, master_id, reason=reason, error_code=PAIR_CODE
            )
        )
        if self.pull.dry_run:
            return
        self.ledger.drop_link(link)
        self.ledger.record(
            self.engine.run,
            direction="to_host",
            action="error",
            contact_id=link.contact_id,
            zoho_id=master_id,
            changes={"pair_contact_id": owner, "former_zoho_id": former},
            reason=reason,
            error_code=PAIR_CODE,
        )
