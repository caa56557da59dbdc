"""The first sync: every host contact reaches Zoho and every Zoho record reaches the host."""

from __future__ import annotations

from tests.engine.conftest import Synced


def test_first_sync_exports_every_contact_in_one_upsert(synced: Synced) -> None:
    ann = synced.add_contact(
        first_name="Ann", last_name="Lee", email="ann@example.org", groups=["VIP"]
    )
    synced.add_contact(last_name="Ray", email="bob@example.org", subscribed=False)
    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    leads = synced.leads()
    assert leads["ann@example.org"]["First_Name"] == "Ann"
    assert leads["ann@example.org"]["VIP"] is True
    assert leads["ann@example.org"]["Contact_Id"] == str(ann)
    assert leads["ann@example.org"]["Email_Opt_Out"] is False
    assert leads["bob@example.org"]["Email_Opt_Out"] is True
    assert synced.calls().get("POST /Leads/upsert") == 1
    assert report.counts["to_zoho.create"] == 2


def test_zoho_records_are_imported_and_matched_by_email(synced: Synced) -> None:
    existing = synced.add_contact(last_name="Lee", email="Ann@Example.org")
    synced.zoho.create_record(
        "Leads", {"Last_Name": "Lee", "First_Name": "Ann", "Email": "ann@example.org", "VIP": True}
    )
    synced.zoho.create_record("Leads", {"Last_Name": "Kim", "Email": "kim@example.org"})
    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    contacts = synced.contacts()
    assert set(contacts) == {"ann@example.org", "kim@example.org"}
    assert contacts["ann@example.org"]["id"] == existing
    assert contacts["ann@example.org"]["first_name"] == "Ann"
    assert contacts["ann@example.org"]["groups"] == {"VIP"}
    assert len(synced.zoho.records("Leads")) == 2


def test_a_second_sync_with_no_changes_writes_nothing(synced: Synced) -> None:
    synced.add_contact(first_name="Ann", last_name="Lee", email="ann@example.org")
    synced.zoho.create_record("Leads", {"Last_Name": "Kim", "Email": "kim@example.org"})
    synced.sync(mode="all")
    before = synced.calls()
    report = synced.sync()
    after = synced.calls()
    reads = ("GET", "POST /coql")  # a COQL query is a POST that writes nothing
    writes = {k: after.get(k, 0) - before.get(k, 0) for k in after if not k.startswith(reads)}
    assert not any(writes.values()), writes
    assert report.counts.get("to_zoho.update", 0) == 0
    assert report.counts.get("to_host.update", 0) == 0


def test_the_engine_itself_refuses_a_mapping_with_nothing_beyond_email(synced: Synced) -> None:
    """The guard under every face: a run on an email-only mapping writes nothing anywhere."""
    import sqlalchemy as sa

    from flask_zoho_sync.models import FieldMap, Run

    synced.zoho.create_record("Leads", {"Last_Name": "Zed", "Email": "zed@example.org"})
    synced.add_contact(last_name="Host", email="host@example.org")
    with synced.host.app.app_context():
        synced.host.db.session.execute(sa.delete(FieldMap).where(FieldMap.host_key != "email"))
        synced.host.db.session.commit()
    for dry_run in (True, False):
        report = synced.sync(mode="all", dry_run=dry_run, trigger="cli")
        assert report.status == "failed"
        assert "no field beyond email is mapped" in (report.message or "")
        assert report.changes == []
    with synced.host.app.app_context():
        notified = synced.state.sync_engine().sync_records(["1"], trigger="notify")
        assert notified.status == "failed"
        assert synced.host.db.session.scalar(sa.select(sa.func.count()).select_from(Run)) == 0
    assert set(synced.contacts()) == {"host@example.org"}
    assert [lead["Email"] for lead in synced.zoho.records("Leads")] == ["zed@example.org"]


def test_a_record_with_nothing_beyond_its_email_creates_no_contact_on_either_side(
    synced: Synced,
) -> None:
    """Email only says who; a contact made of it alone would be a blank row on the other side."""
    synced.zoho.create_record("Leads", {"Last_Name": "Zed", "Email": "zed@example.org"})
    synced.add_contact(email="blank@example.org")
    report = synced.sync(mode="all", trigger="cli")
    assert report.counts.get("to_zoho.skipped_blank") == 1
    assert "blank@example.org" not in {lead["Email"] for lead in synced.zoho.records("Leads")}
    assert synced.contacts()["zed@example.org"]["last_name"] == "Zed"


def test_an_import_gives_the_garbage_collector_back_switched_on(synced: Synced) -> None:
    """The pull pauses Python's cyclic collector per group of pages (process-wide): after
    the run the host's process collects as before, and the import is complete."""
    import gc

    assert gc.isenabled()
    for n in range(3):
        synced.zoho.create_record("Leads", {"Last_Name": f"Kim {n}", "Email": f"k{n}@example.org"})
    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    assert gc.isenabled()
    assert set(synced.contacts()) == {"k0@example.org", "k1@example.org", "k2@example.org"}
