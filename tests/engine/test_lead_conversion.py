"""A linked lead a Zoho user converts: the host contact stays, its history names what Zoho
made, and the sync follows the new Contact or stops, as ZOHO_SYNC_ON_LEAD_CONVERSION says.
Each pull kind finds the conversion with one listing call, not a call per linked record."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from flask_zoho_sync.models import LeadConversion, Link, RecordHistory
from flask_zoho_sync.sandbox.handle import SandboxHandle
from tests.engine.conftest import Synced, connect_synced, dispose_synced

DEAL = {
    "Deal_Name": "Lee renewal",
    "Closing_Date": "2026-12-31",
    "Pipeline": "Standard (Standard)",
    "Stage": "Qualification",
}


def _synced(database_url: str, zoho: SandboxHandle, outcome: str) -> Iterator[Synced]:
    zoho.add_custom_field(
        "Contacts", api_name="Contact_Id", field_label="Contact Id", data_type="text", length=50
    )
    built = connect_synced(database_url, zoho, ZOHO_SYNC_ON_LEAD_CONVERSION=outcome)
    yield built
    dispose_synced(built)


@pytest.fixture
def following(database_url: str, redis_client: Any, zoho_sandbox: SandboxHandle):
    yield from _synced(database_url, zoho_sandbox, "follow")


@pytest.fixture
def stopping(database_url: str, redis_client: Any, zoho_sandbox: SandboxHandle):
    yield from _synced(database_url, zoho_sandbox, "stop")


def _linked_and_converted(synced: Synced) -> tuple[int, str, dict[str, Any]]:
    contact_id = synced.add_contact(
        first_name="Ann", last_name="Lee", email="ann@example.org", company="Zylker"
    )
    synced.first_manual_sync()
    lead_id = synced.leads()["ann@example.org"]["id"]
    made = synced.zoho.convert_lead(lead_id, deal=DEAL)
    return contact_id, lead_id, made


def _rows(synced: Synced, model: Any) -> list[Any]:
    with synced.host.app.app_context():
        session = synced.host.db.session
        rows = list(session.scalars(sa.select(model).order_by(model.id)))
        session.expunge_all()
        return rows


def _pull(synced: Synced, kind: str) -> Any:
    if kind == "notified":
        lead_ids = [lead["id"] for lead in synced.zoho.records("Leads")]
        with synced.host.app.app_context():
            return synced.state.sync_engine().sync_records(lead_ids, trigger="notify")
    return synced.sync(mode="all" if kind == "full" else "since_last")


@pytest.mark.parametrize("kind", ["full", "since_last", "notified"])
def test_each_pull_kind_keeps_the_contact_and_follows_the_new_contact(
    following: Synced, kind: str
) -> None:
    contact_id, lead_id, made = _linked_and_converted(following)
    before = following.calls()
    report = _pull(following, kind)
    assert report.status == "succeeded", report.message
    assert report.counts["to_host.convert"] == 1
    assert report.counts.get("to_host.delete", 0) == 0
    assert report.counts.get("to_zoho.create", 0) == 0
    assert following.contacts()["ann@example.org"]["id"] == contact_id
    (conversion,) = _rows(following, LeadConversion)
    assert (conversion.lead_id, conversion.contact_zoho_id) == (lead_id, made["Contacts"]["id"])
    assert conversion.account_id == made["Accounts"]["id"]
    assert conversion.deal_id == made["Deals"]["id"]
    assert conversion.outcome == "follow"
    (link,) = _rows(following, Link)
    assert link.zoho_id == made["Contacts"]["id"]
    zoho_contact = following.zoho.record("Contacts", made["Contacts"]["id"])
    assert zoho_contact["Contact_Id"] == str(contact_id)
    history = [row for row in _rows(following, RecordHistory) if row.action == "convert"]
    assert [row.changes["made"] for row in history] == [
        {
            "Contact": made["Contacts"]["id"],
            "Account": made["Accounts"]["id"],
            "Deal": made["Deals"]["id"],
        }
    ]
    # Found in what the pull reads anyway (its listing or its read by ids asks for converted
    # leads too): no call of its own. Following costs one write of the Contact Id, and a
    # scheduled pull one read of the followed Contacts.
    after = following.calls()
    spent = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key)}
    reads = (
        {"GET /Leads": 1}
        if kind == "notified"
        else {
            "POST /coql": 1,  # the pull's read (COQL)
            "GET /Leads/deleted": 1,
            "GET /Contacts": 1,
        }
    )
    assert spent == {**reads, "PUT /Contacts": 1}
    assert [lead["id"] for lead in following.zoho.records("Leads")] == [lead_id]


def test_following_sends_later_edits_to_the_contact_and_brings_its_edits_back(
    following: Synced,
) -> None:
    contact_id, _, made = _linked_and_converted(following)
    following.sync()
    following.edit_contact(contact_id, phone="+61 2 5550 1234", company="Zylker Pty")
    report = following.sync()
    assert report.status == "succeeded", report.message
    assert report.counts.get("to_zoho.create", 0) == 0, report.changes
    assert report.counts["to_zoho.update"] == 1
    contact = following.zoho.record("Contacts", made["Contacts"]["id"])
    assert contact["Phone"] == "+61 2 5550 1234"
    assert "Company" not in contact  # a Leads-only field has no place on a Contact
    leads = following.zoho.records("Leads")
    assert len(leads) == 1 and leads[0]["Company"] == "Zylker"  # never written, never re-made
    following.zoho.update_record(
        "Contacts", made["Contacts"]["id"], {"First_Name": "Annie", "Phone": "+61 2 5550 4321"}
    )
    report = following.sync()
    assert report.counts["to_host.update"] == 1, report.changes
    host = following.contacts()["ann@example.org"]
    assert (host["first_name"], host["phone"]) == ("Annie", "+61 2 5550 4321")
    assert host["company"] == "Zylker Pty"  # not blanked: the Contact carries no Company


def test_stopping_keeps_the_link_on_the_lead_and_sends_nothing_more(stopping: Synced) -> None:
    contact_id, lead_id, made = _linked_and_converted(stopping)
    report = stopping.sync()
    assert report.counts["to_host.convert"] == 1
    (link,) = _rows(stopping, Link)
    assert link.zoho_id == lead_id
    (conversion,) = _rows(stopping, LeadConversion)
    assert conversion.outcome == "stop"
    contact_before = stopping.zoho.record("Contacts", made["Contacts"]["id"])
    stopping.edit_contact(contact_id, phone="+61 2 5550 9999")
    before = stopping.calls()
    report = stopping.sync()
    assert report.status == "succeeded", report.message
    assert report.counts.get("to_zoho.create", 0) == 0
    assert report.counts.get("to_zoho.update", 0) == 0
    assert report.counts.get("to_zoho.error", 0) == 0
    after = stopping.calls()
    spent = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key)}
    assert spent == {"POST /coql": 1, "GET /Leads/deleted": 1}  # a pull's reads, nothing sent
    assert len(stopping.zoho.records("Leads")) == 1
    assert stopping.zoho.record("Contacts", made["Contacts"]["id"]) == contact_before
    assert stopping.contacts()["ann@example.org"]["phone"] == "+61 2 5550 9999"
    # Seen once: the next pulls do not record the conversion again.
    stopping.sync(mode="all")
    assert len(_rows(stopping, LeadConversion)) == 1


@pytest.mark.parametrize("mode", ["all", "since_last"])
def test_a_pull_by_coql_finds_the_conversion_too(
    database_url: str, redis_client: Any, zoho_sandbox: SandboxHandle, mode: str
) -> None:
    """COQL has no ``converted`` parameter: the pull keeps the converted leads it reads and
    selects their conversion lookups, so the host contact is kept, never deleted nor sent
    again as a new lead, and the conversion is recorded once."""
    synced = connect_synced(
        database_url,
        zoho_sandbox,
        ZOHO_SYNC_ON_LEAD_CONVERSION="stop",
        ZOHO_SYNC_PULL_WITH_COQL=True,
    )
    try:
        contact_id, lead_id, made = _linked_and_converted(synced)
        before = synced.calls()
        report = synced.sync(mode=mode)
        assert report.status == "succeeded", report.message
        assert report.counts["to_host.convert"] == 1
        assert report.counts.get("to_host.delete", 0) == 0
        assert report.counts.get("to_zoho.create", 0) == 0
        spent = synced.calls()
        assert spent.get("POST /coql", 0) > before.get("POST /coql", 0)
        assert spent.get("GET /Leads", 0) == before.get("GET /Leads", 0)  # no REST listing
        assert synced.contacts()["ann@example.org"]["id"] == contact_id
        (conversion,) = _rows(synced, LeadConversion)
        assert (conversion.lead_id, conversion.contact_zoho_id) == (lead_id, made["Contacts"]["id"])
        assert len(synced.zoho.records("Leads")) == 1
    finally:
        dispose_synced(synced)


def test_a_plan_shows_the_conversion_and_changes_nothing(following: Synced) -> None:
    _, lead_id, _ = _linked_and_converted(following)
    plan = following.sync(dry_run=True)
    assert plan.counts["to_host.convert"] == 1
    assert _rows(following, LeadConversion) == []
    (link,) = _rows(following, Link)
    assert link.zoho_id == lead_id


def test_a_converted_lead_never_linked_is_not_imported(following: Synced) -> None:
    """The pull now lists converted leads too; one no contact is linked to stays in Zoho."""
    lead = following.zoho.create_record("Leads", {"Last_Name": "Gone", "Email": "gone@example.org"})
    following.zoho.convert_lead(lead["id"])
    following.zoho.create_record("Leads", {"Last_Name": "Kept", "Email": "kept@example.org"})
    following.first_manual_sync()
    assert set(following.contacts()) == {"kept@example.org"}
    assert _rows(following, LeadConversion) == []
