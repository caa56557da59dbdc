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
