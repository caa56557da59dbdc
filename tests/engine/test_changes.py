"""Edits and deletes on either side reach the other, with nothing lost, looped or revived."""

from __future__ import annotations

import sqlalchemy as sa

from flask_zoho_sync.models import RecordHistory, Tombstone
from tests.engine.conftest import Synced


def linked_pair(synced: Synced, **values: object) -> tuple[int, str]:
    contact_id = synced.add_contact(**{"last_name": "Lee", "email": "ann@example.org", **values})
    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    return contact_id, synced.leads()["ann@example.org"]["id"]


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        key: after.get(key, 0) - before.get(key, 0)
        for key in after
        if after.get(key, 0) != before.get(key, 0)
    }


#: The pull's read: a COQL query is a POST, but it writes nothing.
COQL = "POST /coql"


def writes(calls: dict[str, int]) -> list[str]:
    """The calls among ``calls`` that can change Zoho (all but reads)."""
    return [key for key in calls if not key.startswith("GET") and key != COQL]


def test_a_host_edit_sends_only_the_changed_field_in_one_update(synced: Synced) -> None:
    contact_id, zoho_id = linked_pair(synced, first_name="Ann", phone="111")
    synced.edit_contact(contact_id, phone="222")
    before = synced.calls()
    report = synced.sync()
    assert report.status == "succeeded", report.message
    assert synced.zoho.record("Leads", zoho_id)["Phone"] == "222"
    # The pull's query, then the push's re-read of the record just before its write.
    assert delta(before, synced.calls()) == {
        COQL: 1,
        "GET /Leads": 1,
        "GET /Leads/deleted": 1,
        "PUT /Leads": 1,
    }
    [change] = [c for c in report.changes if c.direction == "to_zoho"]
    assert list(change.changes) == ["Phone (Phone)"]


def test_a_zoho_edit_reaches_the_host_and_does_not_echo_back(synced: Synced) -> None:
    _contact_id, zoho_id = linked_pair(synced, first_name="Ann")
    synced.zoho.update_record("Leads", zoho_id, {"First_Name": "Annie", "VIP": True})
    report = synced.sync()
    assert report.status == "succeeded", report.message
    contact = synced.contacts()["ann@example.org"]
    assert contact["first_name"] == "Annie"
    assert contact["groups"] == {"VIP"}
    assert report.counts.get("to_zoho.update", 0) == 0
    before = synced.calls()
    synced.sync()
    assert writes(delta(before, synced.calls())) == []


def test_edits_of_different_fields_on_both_sides_are_both_kept(synced: Synced) -> None:
    contact_id, zoho_id = linked_pair(synced, first_name="Ann", phone="111")
    synced.edit_contact(contact_id, phone="999")
    synced.zoho.update_record("Leads", zoho_id, {"First_Name": "Annie"})
    report = synced.sync()
    assert report.status == "succeeded", report.message
    assert synced.contacts()["ann@example.org"]["first_name"] == "Annie"
    assert synced.contacts()["ann@example.org"]["phone"] == "999"
    record = synced.zoho.record("Leads", zoho_id)
    assert (record["First_Name"], record["Phone"]) == ("Annie", "999")


def test_the_same_field_edited_on_both_sides_goes_to_the_newer_edit(synced: Synced) -> None:
    contact_id, zoho_id = linked_pair(synced, phone="111")
    synced.edit_contact(contact_id, phone="333")
    synced.zoho.advance_clock(120)  # the salesperson edits two minutes later
    synced.zoho.update_record("Leads", zoho_id, {"Phone": "444"})
    report = synced.sync()
    assert synced.contacts()["ann@example.org"]["phone"] == "444"
    assert synced.zoho.record("Leads", zoho_id)["Phone"] == "444"
    [conflict] = [c for change in report.changes for c in change.conflicts]
    assert conflict["winner"] == "zoho"
    assert "newest wins" in conflict["reason"]


def test_a_host_delete_deletes_the_zoho_record_and_it_never_comes_back(synced: Synced) -> None:
    contact_id, zoho_id = linked_pair(synced)
    synced.delete_contact(contact_id)
    # A full sync finds linked contacts that are gone even without captured changes.
    report = synced.sync(mode="all")
    assert report.counts["to_zoho.delete"] == 1
    assert zoho_id not in {r["id"] for r in synced.zoho.records("Leads")}
    # The record sits in Zoho's recycle bin; later syncs must not bring it back.
    synced.sync(mode="all")
    synced.sync()
    assert "ann@example.org" not in synced.contacts()
    with synced.host.app.app_context():
        session = synced.host.db.session
        assert (
            session.scalar(sa.select(Tombstone.deleted_on).where(Tombstone.zoho_id == zoho_id))
            == "host"
        )


def test_a_zoho_delete_deletes_the_host_contact(synced: Synced) -> None:
    _contact_id, zoho_id = linked_pair(synced)
    synced.zoho.delete_record("Leads", zoho_id)
    report = synced.sync()
    assert report.counts["to_host.delete"] == 1
    assert "ann@example.org" not in synced.contacts()
    assert not any(call.startswith("DELETE") for call in synced.calls())


def test_a_mass_delete_in_zoho_stops_and_asks(synced: Synced) -> None:
    for index in range(30):
        synced.add_contact(last_name=f"Person {index}", email=f"p{index}@example.org")
    synced.sync(mode="all")
    for record in synced.zoho.records("Leads")[:20]:
        synced.zoho.delete_record("Leads", record["id"])
    report = synced.sync()
    assert report.status == "needs_confirmation"
    assert "20 deleted records" in report.message
    assert len(synced.contacts()) == 30
    confirmed = synced.sync(confirm_deletes=True)
    assert confirmed.status == "succeeded", confirmed.message
    assert len(synced.contacts()) == 10


def test_one_bad_record_fails_alone_with_zoho_reason(synced: Synced) -> None:
    synced.zoho.add_custom_field(
        "Leads", api_name="Badge", field_label="Badge", data_type="text", length=20, unique=True
    )
    with synced.host.app.app_context():
        from flask_zoho_sync.preferences import set_field_map

        set_field_map(synced.host.db.session, kind="field", host_key="company", zoho_field="Badge")
        synced.host.db.session.commit()
    for name in ("a", "b", "c"):
        synced.add_contact(
            last_name=name, email=f"{name}@example.org", company="SAME" if name != "a" else "A"
        )
    report = synced.sync(mode="all")
    assert report.status == "partial"
    assert report.counts["to_zoho.create"] == 2
    [error] = [c for c in report.changes if c.action == "error"]
    # Zoho's upsert also checks the other unique fields, so "c" matched b's record by Badge
    # (reference §2.6); the sync refuses to link it and says why.
    assert error.error_code == "DUPLICATE_CONTACT"
    assert "Badge" in error.reason
    assert len(synced.zoho.records("Leads")) == 2
    with synced.host.app.app_context():
        stored = synced.host.db.session.scalar(
            sa.select(RecordHistory).where(RecordHistory.action == "error")
        )
        assert stored.error_code == "DUPLICATE_CONTACT"
    # The next sync puts b's own values back into the record Zoho overwrote.
    synced.sync()
    assert synced.leads()["b@example.org"]["Last_Name"] == "b"


def test_a_create_retried_after_a_lost_answer_does_not_duplicate(synced: Synced) -> None:
    contact_id, zoho_id = linked_pair(synced, first_name="Ann")
    # The worker died after Zoho created the record but before the link was committed.
    with synced.host.app.app_context():
        synced.host.db.session.execute(sa.text("DELETE FROM zoho_sync_link"))
        synced.host.db.session.commit()
    synced.edit_contact(contact_id, first_name="Annie")
    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    leads = synced.zoho.records("Leads")
    assert [lead["id"] for lead in leads] == [zoho_id]
    assert leads[0]["First_Name"] == "Annie"


def test_a_dry_run_writes_nothing_on_either_side(synced: Synced) -> None:
    contact_id, zoho_id = linked_pair(synced, phone="111")
    synced.edit_contact(contact_id, phone="222")
    synced.zoho.update_record("Leads", zoho_id, {"First_Name": "Annie"})
    synced.add_contact(last_name="New", email="new@example.org")
    before_calls, before_contacts = synced.calls(), synced.contacts()
    plan = synced.sync(dry_run=True)
    assert writes(delta(before_calls, synced.calls())) == []
    assert synced.contacts() == before_contacts
    assert synced.zoho.record("Leads", zoho_id)["Phone"] == "111"
    actions = {(c.direction, c.action) for c in plan.changes}
    assert {("to_host", "update"), ("to_zoho", "update"), ("to_zoho", "create")} <= actions
    real = synced.sync()
    assert real.status == "succeeded"
    assert synced.zoho.record("Leads", zoho_id)["Phone"] == "222"


def test_a_plan_of_a_conflict_matches_what_the_run_then_does(synced: Synced) -> None:
    contact_id, zoho_id = linked_pair(synced, phone="111")
    synced.edit_contact(contact_id, phone="333")
    synced.zoho.advance_clock(120)  # Zoho's edit is the newer one: Zoho wins
    synced.zoho.update_record("Leads", zoho_id, {"Phone": "444"})
    plan = synced.sync(dry_run=True)
    planned = {(c.direction, c.action) for c in plan.changes}
    assert ("to_host", "update") in planned
    assert ("to_zoho", "update") not in planned  # the losing host value is not sent
    real = synced.sync()
    assert {(c.direction, c.action) for c in real.changes} == planned
    assert synced.zoho.record("Leads", zoho_id)["Phone"] == "444"


def test_a_plan_leaves_the_database_as_it_found_it(synced: Synced) -> None:
    contact_id, _ = linked_pair(synced, phone="111")
    synced.edit_contact(contact_id, phone="222")  # captured: waits in the outbox

    def tables() -> dict[str, int]:
        with synced.host.app.app_context():
            session = synced.host.db.session
            return {
                name: session.scalar(sa.text(f"SELECT count(*) FROM {name}"))
                for name in (
                    "zoho_sync_outbox",
                    "zoho_sync_outbox_batch",
                    "zoho_sync_link",
                    "zoho_sync_run",
                    "zoho_sync_history",
                )
            }

    before = tables()
    synced.sync(dry_run=True)
    assert tables() == before


def test_the_host_can_write_while_a_plan_reads_zoho(synced: Synced) -> None:
    """A plan's transaction lasts as long as it reads Zoho, minutes for a large first sync;
    on SQLite a write of its own (expanding the captured outbox) kept the host's writes
    out all that time, and they failed with "database is locked"."""
    contact_id, _ = linked_pair(synced, phone="111")
    synced.edit_contact(contact_id, phone="222")  # captured: a batch waits in the outbox
    url = synced.host.app.config["SQLALCHEMY_DATABASE_URI"]
    other = sa.create_engine(url, connect_args={"timeout": 0.5} if url.startswith("sqlite") else {})
    written: list[int] = []

    def host_writes_meanwhile(done: int, total: int | None) -> None:
        with other.begin() as connection:
            connection.execute(sa.text("UPDATE contact SET company = 'written mid-plan'"))
        written.append(done)

    try:
        plan = synced.sync(dry_run=True, on_progress=host_writes_meanwhile)
    finally:
        other.dispose()
    assert plan.status == "succeeded", plan.message
    assert written
    assert plan.counts["to_zoho.update"] == 1  # the captured edit is in the plan all the same
    assert synced.sync().counts["to_zoho.update"] == 1
