"""Many followed Contacts (converted leads) cost a since-last pull what changed among them,
not one call per 100 of them: the Contacts modified since the previous pull began (COQL)
and those deleted since, while a full pull still reads every one by id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flask_zoho_sync.sandbox.handle import SandboxHandle
from tests.engine.conftest import Synced, connect_synced, dispose_synced
from tests.engine.test_followed_contacts import _followed, _spent
from tests.faults.test_inflight_edits import HOLD_MS, joined, while_held

MANY = 300  # above the 200 links from which the changed ones are read


@pytest.fixture
def many_followed(database_url: str, redis_client: Any, zoho_sandbox: SandboxHandle):
    """300 followed Contacts, their conversions behind two pulls. Zoho's clock runs an hour
    behind the host's while they are made, so that only edits made after (the clock put
    back to the host's) fall inside the since-last read's overlap window. The Leads are
    pulled by REST so that every COQL call counted is the followed Contacts' read."""
    zoho_sandbox.add_custom_field(
        "Contacts", api_name="Contact_Id", field_label="Contact Id", data_type="text", length=50
    )
    zoho_sandbox.add_custom_field(
        "Contacts", api_name="VIP", field_label="VIP", data_type="boolean"
    )
    zoho_sandbox.set_clock(datetime.now(UTC) - timedelta(hours=1))
    built = connect_synced(
        database_url,
        zoho_sandbox,
        ZOHO_SYNC_ON_LEAD_CONVERSION="follow",
        ZOHO_SYNC_PULL_WITH_COQL=False,
    )
    followed = _followed(built, *(f"p{n:03}@example.org" for n in range(MANY)))
    # A lead still a lead gives the Leads pull its watermark (converted ones do not): a pull
    # without one reads every lead, a full pull's reading of followed Contacts too.
    zoho_sandbox.create_record(
        "Leads", {"Last_Name": "Lead", "First_Name": "Still", "Email": "lead@example.org"}
    )
    # The pull after the conversions reads the Contacts just followed by id, once.
    before = built.calls()
    assert built.sync().status == "succeeded"
    assert _spent(before, built.calls()).get("GET /Contacts") == 3
    zoho_sandbox.set_clock(datetime.now(UTC))
    yield built, followed
    dispose_synced(built)


def test_a_since_last_pull_reads_only_the_followed_contacts_changed_or_deleted(
    many_followed: tuple[Synced, dict[str, tuple[int, str]]],
) -> None:
    synced, followed = many_followed
    synced.zoho.update_record("Contacts", followed["p007@example.org"][1], {"First_Name": "Zed"})
    synced.zoho.update_record(
        "Contacts", followed["p250@example.org"][1], {"Phone": "+61 2 5550 1250"}
    )
    before = synced.calls()
    report = synced.sync()
    assert report.status == "succeeded", report.message
    spent = _spent(before, synced.calls())
    assert spent.get("POST /coql") == 1, spent  # the changed Contacts, not 3 reads by id
    assert spent.get("GET /Contacts/deleted") == 1, spent
    assert "GET /Contacts" not in spent, spent
    assert report.counts["to_host.update"] == 2, report.changes
    contacts = synced.contacts()
    assert contacts["p007@example.org"]["first_name"] == "Zed"
    assert contacts["p250@example.org"]["phone"] == "+61 2 5550 1250"


def test_a_followed_contact_deleted_in_zoho_is_found_and_its_contact_deleted(
    many_followed: tuple[Synced, dict[str, tuple[int, str]]],
) -> None:
    synced, followed = many_followed
    synced.zoho.delete_record("Contacts", followed["p123@example.org"][1])
    before = synced.calls()
    report = synced.sync()
    assert report.status == "succeeded", report.message
    assert report.counts["to_host.delete"] == 1, report.changes
    spent = _spent(before, synced.calls())
    # The deleted list names it; one read by id makes sure it is gone (not restored).
    assert (spent.get("POST /coql"), spent.get("GET /Contacts/deleted")) == (1, 1), spent
    assert spent.get("GET /Contacts") == 1, spent
    contacts = synced.contacts()
    assert "p123@example.org" not in contacts and len(contacts) == MANY


def test_many_deleted_followed_contacts_still_stop_at_the_breaker(
    many_followed: tuple[Synced, dict[str, tuple[int, str]]],
) -> None:
    synced, followed = many_followed
    for email in list(followed)[:80]:  # above 20% of the 301 links, the breaker's share
        synced.zoho.delete_record("Contacts", followed[email][1])
    report = synced.sync()
    assert report.status == "needs_confirmation", report.message
    assert report.pending_deletes == 80
    assert len(synced.contacts()) == MANY + 1


def test_a_full_pull_still_reads_every_followed_contact_by_id(
    many_followed: tuple[Synced, dict[str, tuple[int, str]]],
) -> None:
    synced, followed = many_followed
    synced.zoho.update_record("Contacts", followed["p042@example.org"][1], {"First_Name": "Zed"})
    before = synced.calls()
    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    spent = _spent(before, synced.calls())
    assert spent.get("GET /Contacts") == 3, spent
    assert "POST /coql" not in spent and "GET /Contacts/deleted" not in spent, spent
    assert synced.contacts()["p042@example.org"]["first_name"] == "Zed"


def test_without_the_coql_scope_the_followed_contacts_are_read_by_id(
    many_followed: tuple[Synced, dict[str, tuple[int, str]]],
) -> None:
    """A connection consented before the sync asked for COQL: Zoho refuses the query, and
    the pull reads every followed Contact by id, as before, rather than failing."""
    synced, followed = many_followed
    synced.zoho.update_record("Contacts", followed["p042@example.org"][1], {"First_Name": "Zed"})
    refusal = {"code": "OAUTH_SCOPE_MISMATCH", "details": {}, "message": "Unauthorized"}
    synced.zoho.faults(
        fail_next=[
            {"path_contains": "/coql", "status": 401, "body": {**refusal, "status": "error"}}
        ]
    )
    before = synced.calls()
    report = synced.sync()
    assert report.status == "succeeded", report.message
    spent = _spent(before, synced.calls())
    assert (spent.get("POST /coql"), spent.get("GET /Contacts")) == (1, 3), spent
    assert synced.contacts()["p042@example.org"]["first_name"] == "Zed"


def test_a_contact_edit_landing_after_the_read_of_changed_contacts_is_merged_next_pull(
    many_followed: tuple[Synced, dict[str, tuple[int, str]]],
) -> None:
    """The Zoho user edits a followed Contact while the pull waits on its deleted-Contacts
    call, after it read the changed ones: that pull cannot see the edit; the next one reads
    what changed since that pull began (less the overlap), so it merges it."""
    synced, followed = many_followed
    zoho = synced.zoho
    zoho.faults(
        delay_next=[
            {
                "delay_ms": HOLD_MS,
                "when": "before",
                "method": "GET",
                "path_contains": "/Contacts/deleted",
            }
        ]
    )
    edit = while_held(
        zoho,
        lambda: zoho.update_record(
            "Contacts", followed["p042@example.org"][1], {"First_Name": "Zed"}
        ),
    )
    report = synced.sync()
    joined(edit)
    assert report.status == "succeeded", report.message
    assert synced.contacts()["p042@example.org"]["first_name"] == "Ann"
    zoho.advance_clock(30)
    before = synced.calls()
    report = synced.sync()
    assert report.status == "succeeded", report.message
    assert synced.contacts()["p042@example.org"]["first_name"] == "Zed"
    spent = _spent(before, synced.calls())
    assert "GET /Contacts" not in spent, spent
