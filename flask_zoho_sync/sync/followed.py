"""Contacts followed from converted leads, on the pull's side: which notified ids are theirs,
and what becomes of a host contact whose Contact Zoho no longer has.

In Leads mode with ``ZOHO_SYNC_ON_LEAD_CONVERSION = follow`` a converted lead's link moves
to the Contact the conversion made (``sync.conversion``), while the run's module stays
Leads. A full pull reads all of them by id (one call per 100), as does a since-last pull
while 200 or fewer are followed; with more, a since-last pull reads the Contacts changed
and deleted since the previous pull began (``conversion.read_changed_contacts_of``); a
notified pull reads those the notifications named (the channel watches Contacts too). An
id the read does not return is a Contact deleted or merged away in Zoho, and is
settled as a lead's would be:

* merged: the link moves to the master (the record that now carries the contact's email or
  Contact Id), by the same ``identity.MergeFollower`` as for leads, here searching Contacts;
* deleted: the host contact is deleted, through the mass-delete breaker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask_zoho_sync.sync.context import PlannedChange
from flask_zoho_sync.sync.conversion import FOLLOW, governing, to_contact_fields, to_lead_fields
from flask_zoho_sync.sync.identity import MergeFollower
from flask_zoho_sync.zoho.errors import ZohoRequestError

#: Where followed links' records live.
CONTACTS = "Contacts"


def followed_links(engine: Any, zoho_ids: Sequence[str]) -> dict[str, Any]:
    """Of these Zoho ids, those a followed contact is linked to (Contact ids), with their
    links: one query for the links, one for their conversions, only in Leads mode."""
    ledger = engine.ledger
    if ledger.run_module != "Leads" or not zoho_ids:
        return {}
    links = ledger.links_by_zoho(list(zoho_ids))
    if not links:
        return {}
    conversions = ledger.conversions_by_contact([link.contact_id for link in links.values()])
    return {
        zoho_id: link
        for zoho_id, link in links.items()
        if governing(conversions.get(link.contact_id), link) == FOLLOW
    }


class _ContactsLedger:
    """The run's ledger, but naming Contacts as the module a merge's master is searched in.
    Links stay the run's (module Leads): everything else is the ledger's own."""

    module = CONTACTS

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)


class _ContactsClient:
    """The run's client, with searches asking for the Contacts' names of the mapped fields
    and answering under the Leads' names the mapping knows."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def search_in(
        self,
        module: str,
        values_by_field: Mapping[str, Sequence[str]],
        fields: Sequence[str],
        **options: Any,
    ) -> list[dict[str, Any]]:
        options.pop("converted", None)  # a Leads-only listing parameter
        wanted = sorted({*to_contact_fields({name: None for name in fields}), "Modified_Time"})
        try:
            records = self._client.search_in(module, values_by_field, wanted, **options)
        except ZohoRequestError as refused:
            # The Contact Id field is the Leads mapping's: a Contacts module without a field
            # of that name refuses the criteria (INVALID_QUERY). The email still finds the
            # master; anything else is a real failure, and the run stops deleting nothing.
            by_email = {k: v for k, v in values_by_field.items() if k == "Email"}
            if refused.code != "INVALID_QUERY" or not by_email or by_email == values_by_field:
                raise
            records = self._client.search_in(module, by_email, wanted, **options)
        return [to_lead_fields(record) for record in records]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class _ContactsEngine:
    """The run as the merge follower sees it for followed Contacts."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.client = _ContactsClient(engine.client)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


class _FollowedPull:
    """The pull as ``MergeFollower`` uses it, for followed Contacts: the masters it finds
    are merged as followed Contacts (``PullPass.merge_followed``), not as leads."""

    def __init__(self, pull: Any) -> None:
        self._pull = pull
        self.mapping = pull.mapping
        self.adapter = pull.adapter
        self.report = pull.report
        self.dry_run = pull.dry_run
        self.ledger = _ContactsLedger(pull.ledger)
        self.engine = _ContactsEngine(pull.engine)

    def merge_records(self, records: list[dict[str, Any]]) -> None:
        """Merge the masters the links moved to; their conversions now name the master, the
        Contact the link follows from here on (``conversion.governing``)."""
        ledger = self._pull.ledger
        links = ledger.links_by_zoho([str(record["id"]) for record in records])
        conversions = ledger.conversions_by_contact([link.contact_id for link in links.values()])
        for link in links.values():
            conversion = conversions.get(link.contact_id)
            if conversion is not None and conversion.outcome == FOLLOW:
                conversion.contact_zoho_id = link.zoho_id
        self._pull.merge_followed(
            [(links[str(r["id"])], r) for r in records if str(r["id"]) in links]
        )


def settle_gone(pull: Any, gone: list[Any]) -> None:
    """Followed links whose Contact a read did not return: each is followed to a merge's
    master, or its host contact is deleted (through the breaker), as for leads."""
    if not gone:
        return
    planned = pull.engine.planned_deleted  # a plan's own deletions are not Zoho's
    gone = [link for link in gone if str(link.zoho_id) not in planned]
    remaining = MergeFollower(_FollowedPull(pull)).follow(
        gone, {str(link.zoho_id) for link in gone}
    )
    if not remaining:
        return
    if not pull.rules.deletes_on("host"):
        pull.keep_deleted(remaining)
        return
    engine, report = pull.engine, pull.report
    if engine.too_many_deletes(len(remaining)):
        report.status = "needs_confirmation"
        report.pending_deletes = (report.pending_deletes or 0) + len(remaining)
        report.message = (
            f"Zoho no longer has {len(remaining)} Contacts that converted leads' contacts are "
            f"linked to, more than {engine.options.mass_delete_share:.0%} of the "
            f"{pull.ledger.linked_count()} linked contacts. Nothing was deleted. Check "
            "Zoho's recycle bin; if the deletions are intended, run the sync again "
            "confirming the deletions."
        )
        return
    for link in remaining:
        report.add(
            PlannedChange(
                "to_host",
                "delete",
                link.contact_id,
                link.zoho_id,
                reason="its Contact (the converted lead's) was deleted in Zoho",
            )
        )
    if pull.dry_run:
        engine.planned_host_deletes.update(link.contact_id for link in remaining)
        return
    pull.delete_in_host(remaining)
    pull.ledger.commit()
