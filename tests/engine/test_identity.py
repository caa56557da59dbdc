"""Identity that survives what Zoho users do (issue 19): a create Zoho refuses as a
duplicate links to the record it names; a record merged away in Zoho moves its contact's
link to the merge's master, and never costs a host contact."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from flask_zoho_sync.models import Link, RecordHistory
from tests.engine.conftest import Synced


def _links(synced: Synced) -> dict[str, str]:
    """Zoho id by host contact id."""
    with synced.host.app.app_context():
        rows = synced.host.db.session.execute(sa.select(Link.contact_id, Link.zoho_id)).all()
    return {str(contact): str(zoho) for contact, zoho in rows}


def _history(synced: Synced, action: str) -> list[Any]:
    with synced.host.app.app_context():
        return list(
            synced.host.db.session.scalars(
                sa.select(RecordHistory).where(RecordHistory.action == action)
            )
        )


def _calls_since(synced: Synced, before: dict[str, int]) -> dict[str, int]:
    after = synced.calls()
    return {
        key: count - before.get(key, 0)
        for key, count in after.items()
        if count != before.get(key, 0)
    }


# ---------------------------------------------------------------------------- duplicates


def test_a_create_refused_as_duplicate_links_to_the_record_zoho_names(synced: Synced) -> None:
    """Zoho refuses the create (DUPLICATE_DATA, reference §4.5's shape): the contact is
    linked to the named record, its history says so, and the next sync writes the
    contact's values into that record; no second record, no error left. (A push-only run,
    so the pull does not meet the record first and link it by email.)"""
    synced.first_manual_sync()
    existing = synced.zoho.create_record(
        "Leads", {"Last_Name": "Zoho Side", "Email": "dup@example.org", "Company": "Z"}
    )
    contact_id = synced.add_contact(last_name="Host Side", email="dup@example.org", company="H")
    details = {
        "api_name": "Email",
        "json_path": "$.data[0].Email",
        "duplicate_record": {"id": existing["id"], "module": {"api_name": "Leads"}},
    }
    synced.zoho.faults(
        fail_records=[
            {"positions": "all", "code": "DUPLICATE_DATA", "message": "duplicate data",
             "details": details, "method": "POST", "path_contains": "upsert"}
        ]
    )  # fmt: skip
    before = synced.calls()
    report = synced.sync(direction="push")
    assert report.status == "succeeded", report.message
    assert report.counts.get("to_zoho.error") is None
    assert _links(synced)[str(contact_id)] == existing["id"]
    [linked] = [h for h in _history(synced, "link") if h.error_code == "DUPLICATE_DATA"]
    assert linked.zoho_id == existing["id"] and "DUPLICATE_DATA" in linked.reason
    assert _calls_since(synced, before).get("POST /Leads/upsert") == 1
    follow_up = synced.sync()
    assert follow_up.status == "succeeded", follow_up.message
    leads = synced.zoho.records("Leads")
    assert len(leads) == 1
    assert leads[0]["Last_Name"] == "Host Side" and leads[0]["Contact_Id"] == str(contact_id)


def test_a_duplicate_naming_a_record_linked_to_another_contact_stays_refused(
    synced: Synced,
) -> None:
    """Never a second link: the refusal stands with Zoho's reason, both contacts kept."""
    first = synced.add_contact(last_name="First", email="first@example.org")
    synced.first_manual_sync()
    first_record = _links(synced)[str(first)]
    second = synced.add_contact(last_name="Second", email="second@example.org")
    details = {"api_name": "Email", "duplicate_record": {"id": first_record}}
    synced.zoho.faults(
        fail_records=[
            {"positions": "all", "code": "DUPLICATE_DATA", "details": details,
             "method": "POST", "path_contains": "upsert"}
        ]
    )  # fmt: skip
    report = synced.sync()
    [error] = [c for c in report.changes if c.action == "error"]
    assert error.contact_id == str(second) and error.error_code == "DUPLICATE_DATA"
    assert _links(synced) == {str(first): first_record}
    assert set(synced.contacts()) == {"first@example.org", "second@example.org"}


# -------------------------------------------------------------------------------- merges


def _search_calls(calls: dict[str, int]) -> int:
    return calls.get("GET /Leads/search", 0)


def test_records_merged_away_move_their_links_to_the_masters_with_one_search(
    synced: Synced,
) -> None:
    """Three linked records merged in Zoho into records created there since the last sync:
    the contacts stay, their links move to the masters, the masters' values reach them, and
    finding the three masters costs one search call."""
    ids = [synced.add_contact(last_name=f"Person {n}", email=f"p{n}@example.org") for n in range(3)]
    synced.first_manual_sync()
    children = _links(synced)
    masters = {}
    for n, contact_id in enumerate(ids):
        master = synced.zoho.create_record(
            "Leads", {"Last_Name": f"Person {n}", "Email": f"p{n}@example.org", "Phone": f"55{n}"}
        )
        synced.zoho.merge_records("Leads", master["id"], [children[str(contact_id)]])
        masters[str(contact_id)] = master["id"]
    before = synced.calls()
    report = synced.sync()
    assert report.status == "succeeded", report.message
    contacts = synced.contacts()
    assert len(contacts) == 3
    assert [contacts[f"p{n}@example.org"]["phone"] for n in range(3)] == ["550", "551", "552"]
    assert _links(synced) == masters
    assert report.counts.get("to_host.delete") is None
    assert len(synced.zoho.records("Leads")) == 3
    moved = [h for h in _history(synced, "link") if h.changes.get("former_zoho_id")]
    assert len(moved) == 3
    assert _search_calls(_calls_since(synced, before)) == 1
    again = synced.sync()
    assert again.status == "succeeded", again.message
    assert len(synced.zoho.records("Leads")) == 3 and len(synced.contacts()) == 3


def test_a_deletion_that_is_no_merge_still_deletes_the_contact(synced: Synced) -> None:
    keep = synced.add_contact(last_name="Keep", email="keep@example.org")
    gone = synced.add_contact(last_name="Gone", email="gone@example.org")
    synced.first_manual_sync()
    synced.zoho.delete_record("Leads", _links(synced)[str(gone)])
    before = synced.calls()
    report = synced.sync()
    assert report.status == "succeeded", report.message
    assert set(synced.contacts()) == {"keep@example.org"}
    assert _search_calls(_calls_since(synced, before)) == 1
    assert str(keep) in _links(synced)


def test_no_search_when_nothing_linked_vanished(synced: Synced) -> None:
    synced.add_contact(last_name="Still", email="still@example.org")
    synced.first_manual_sync()
    before = synced.calls()
    synced.sync()
    assert _search_calls(_calls_since(synced, before)) == 0


def test_two_contacts_ending_on_one_record_are_both_kept_as_a_pair(synced: Synced) -> None:
    """Zoho merges B's record into A's, taking B's email: A keeps the link, B is kept
    unlinked, and an open MERGED_PAIR error names the pair; never a second link."""
    a = synced.add_contact(last_name="Anna", email="anna@example.org")
    b = synced.add_contact(last_name="Anne", email="anne@example.org")
    synced.first_manual_sync()
    links = _links(synced)
    synced.zoho.merge_records(
        "Leads", links[str(a)], [links[str(b)]], take={links[str(b)]: ["Email"]}
    )
    report = synced.sync()
    assert report.status == "partial", report.message
    with synced.host.app.app_context():
        kept = synced.host.db.session.scalars(sa.select(synced.host.Contact.id)).all()
    assert sorted(kept) == sorted([a, b])
    assert _links(synced) == {str(a): links[str(a)]}
    [pair] = [h for h in _history(synced, "error") if h.error_code == "MERGED_PAIR"]
    assert pair.contact_id == str(b) and pair.resolved_at is None
    assert pair.changes["pair_contact_id"] == str(a) and pair.zoho_id == links[str(a)]
    assert len(synced.zoho.records("Leads")) == 1


def test_a_paired_contact_stays_unlinked_until_the_admin_decides_and_after_keep_both(
    synced: Synced,
) -> None:
    """The unlinked contact of a pair is not pushed as a new record (that would undo the
    Zoho user's merge), neither while the pair is open nor once the admin kept both."""
    from flask_zoho_sync.pairs import keep_both, open_pairs

    a = synced.add_contact(last_name="Anna", email="anna@example.org")
    b = synced.add_contact(last_name="Anne", email="anne@example.org")
    synced.first_manual_sync()
    links = _links(synced)
    child = links[str(b)]
    synced.zoho.merge_records("Leads", links[str(a)], [child], take={child: ["Email"]})
    synced.sync()
    synced.edit_contact(b, phone="123")
    report = synced.sync(mode="all")
    assert report.counts.get("to_zoho.create") is None
    assert report.counts["to_zoho.skipped_pair"] == 1
    assert len(synced.zoho.records("Leads")) == 1
    with synced.host.app.app_context():
        [pair] = open_pairs(synced.host.db.session)
        keep_both(synced.state, pair.history_id)
        assert open_pairs(synced.host.db.session) == []
    synced.edit_contact(b, phone="456")
    after = synced.sync()
    assert after.counts.get("to_zoho.create") is None
    assert len(synced.zoho.records("Leads")) == 1
    with synced.host.app.app_context():
        kept = synced.host.db.session.scalars(sa.select(synced.host.Contact.id)).all()
    assert sorted(kept) == sorted([a, b])  # A took the email B's record gave the master


def test_a_master_found_by_contact_id_alone_takes_the_link_and_a_plan_shows_it_first(
    synced: Synced,
) -> None:
    """The master kept its own email but took the child's Contact Id: found by that. The
    preview (dry run) shows the moved link and deletes nothing; the run then moves it."""
    contact_id = synced.add_contact(last_name="Carl", email="carl@example.org")
    synced.first_manual_sync()
    child = _links(synced)[str(contact_id)]
    master = synced.zoho.create_record(
        "Leads", {"Last_Name": "Carl", "Email": "c.other@example.org"}
    )
    synced.zoho.merge_records("Leads", master["id"], [child], take={child: ["Contact_Id"]})
    plan = synced.sync(dry_run=True)
    assert plan.counts.get("to_host.delete") is None
    assert [c.zoho_id for c in plan.changes if c.action == "link"] == [master["id"]]
    assert _links(synced) == {str(contact_id): child}  # the plan wrote nothing
    report = synced.sync()
    assert report.status == "succeeded", report.message
    assert _links(synced) == {str(contact_id): master["id"]}
    assert set(synced.contacts()) == {"c.other@example.org"}  # the master's email came


def test_with_email_duplicates_refused_in_zoho_the_create_links_to_the_email_holder(
    synced: Synced,
) -> None:
    """The org refuses duplicate Emails; the engine's upsert matches on the unique Contact
    Id, misses, and Zoho refuses the insert naming the record with the email: linked, and
    the next run writes the contact's values there. Every call counted."""
    synced.zoho.refuse_duplicate_email("Leads")
    synced.first_manual_sync()
    holder = synced.zoho.create_record(
        "Leads", {"Last_Name": "Zoho Side", "Email": "dup@example.org"}
    )
    contact_id = synced.add_contact(last_name="Host Side", email="dup@example.org")
    before = synced.calls()
    report = synced.sync(direction="push")
    assert report.status == "succeeded", report.message
    assert [c.action for c in report.changes] == ["link"]
    assert _links(synced) == {str(contact_id): holder["id"]}
    assert _calls_since(synced, before) == {"POST /Leads/upsert": 1}
    before = synced.calls()
    follow_up = synced.sync()
    assert follow_up.status == "succeeded", follow_up.message
    assert _calls_since(synced, before).get("POST /Leads/upsert") is None  # an update
    (lead,) = synced.zoho.records("Leads")
    assert lead["Last_Name"] == "Host Side" and lead["Contact_Id"] == str(contact_id)
