"""Sync modes, overwrite policies and per-field winners, against the sandbox (issue 21).

Each test sets the mode or policy the way an admin would (the settings row the page and the
CLI write, or ZOHO_SYNC_MODE), then edits both sides and checks what each side holds, and
for import only, that Zoho received no write call at all.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from flask_zoho_sync.ledger import Ledger
from flask_zoho_sync.preferences import get_settings, set_overwrite, set_winner
from flask_zoho_sync.undo import RevertRefused, revert_run
from tests.engine.conftest import Synced

WRITES = ("POST", "PUT", "PATCH", "DELETE")
#: Sent by POST, yet reads: a COQL query (how pulls read by default).
READS_BY_POST = ("POST /coql",)


def linked(synced: Synced, email: str, **values: object) -> tuple[int, str]:
    """A host contact and its Zoho lead, linked by a first sync in two-way mode."""
    contact_id = synced.add_contact(**{"last_name": "Lee", "email": email, **values})
    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    return contact_id, synced.leads()[email]["id"]


def set_mode(synced: Synced, mode: str | None) -> None:
    with synced.host.app.app_context():
        session = synced.host.db.session
        get_settings(session).sync_mode = mode
        session.commit()


def overwrite(synced: Synced, name: str, policy: str) -> None:
    with synced.host.app.app_context():
        set_overwrite(synced.host.db.session, name, policy)
        synced.host.db.session.commit()


def zoho_writes(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The write calls Zoho received between two ``stats()["calls"]`` snapshots."""
    return {
        key: after[key] - before.get(key, 0)
        for key in after
        if key.startswith(WRITES)
        and key not in READS_BY_POST
        and after[key] != before.get(key, 0)
    }


def left_alone(report, direction: str) -> list:  # type: ignore[no-untyped-def]
    return [c for c in report.changes if c.action == "left_alone" and c.direction == direction]


# -- modes -------------------------------------------------------------------------------


def test_export_only_leaves_the_host_as_it_is_whatever_zoho_does(synced: Synced) -> None:
    ann, ann_zoho = linked(synced, "ann@example.org", first_name="Ann", phone="111")
    _bob, bob_zoho = linked(synced, "bob@example.org", first_name="Bob")
    set_mode(synced, "export_only")
    synced.zoho.update_record("Leads", ann_zoho, {"First_Name": "Annie", "VIP": True})
    synced.zoho.delete_record("Leads", bob_zoho)
    synced.zoho.create_record("Leads", {"Last_Name": "New", "Email": "new@example.org"})
    synced.edit_contact(ann, phone="222")

    plan = synced.sync(dry_run=True)
    assert plan.status == "succeeded", plan.message
    [kept] = [c for c in left_alone(plan, "to_host") if c.contact_id == str(ann)]
    assert kept.changes == {"First name (First_Name)": "Annie", "group VIP (VIP)": True}
    assert "export-only mode" in (kept.reason or "")
    reasons = " ".join(c.reason or "" for c in left_alone(plan, "to_host"))
    assert "deleted in Zoho" in reasons and "new in Zoho" in reasons

    report = synced.sync()
    assert report.status == "succeeded", report.message
    contacts = synced.contacts()
    assert contacts["ann@example.org"]["first_name"] == "Ann"
    assert contacts["ann@example.org"]["groups"] == set()
    assert "bob@example.org" in contacts  # Zoho's deletion did not delete the contact
    assert "new@example.org" not in contacts  # nor did its new record make one
    assert report.counts.get("to_host.update", 0) == 0
    # The host's own edit still goes to Zoho, and Zoho's edit there is not reverted.
    record = synced.zoho.record("Leads", ann_zoho)
    assert (record["Phone"], record["First_Name"]) == ("222", "Annie")
    # Nothing flips on the next run either.
    again = synced.sync()
    assert again.counts.get("to_zoho.update", 0) == 0
    assert synced.contacts()["ann@example.org"]["first_name"] == "Ann"


def test_import_only_makes_no_write_call_to_zoho(synced: Synced) -> None:
    ann, ann_zoho = linked(synced, "ann@example.org", first_name="Ann", phone="111")
    bob, _bob_zoho = linked(synced, "bob@example.org", first_name="Bob")
    set_mode(synced, "import_only")
    synced.edit_contact(ann, phone="999")  # captured in the outbox; never sent
    synced.delete_contact(bob)
    synced.add_contact(last_name="Cho", email="cho@example.org", first_name="Cy")
    synced.zoho.update_record("Leads", ann_zoho, {"First_Name": "Annie"})
    synced.zoho.create_record(
        "Leads", {"Last_Name": "Dee", "First_Name": "Di", "Email": "dee@example.org"}
    )

    before = synced.calls()
    plan = synced.sync(mode="all", dry_run=True)
    assert zoho_writes(before, synced.calls()) == {}
    assert plan.counts.get("to_zoho.update", 0) == plan.counts.get("to_zoho.create", 0) == 0
    assert plan.counts.get("to_zoho.delete", 0) == 0

    before = synced.calls()
    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    assert zoho_writes(before, synced.calls()) == {}
    contacts = synced.contacts()
    assert contacts["ann@example.org"]["first_name"] == "Annie"  # Zoho -> host still flows
    assert contacts["ann@example.org"]["phone"] == "999"  # the host keeps its own value
    assert contacts["dee@example.org"]["first_name"] == "Di"
    leads = synced.leads()
    assert "cho@example.org" not in leads  # no create
    assert "bob@example.org" in leads  # no delete
    assert leads["ann@example.org"]["Phone"] == "111"  # no update
    assert not leads["dee@example.org"].get("Contact_Id")  # no Contact Id write-back
    # The host's captured edits are let go, not left to age in the outbox.
    before = synced.calls()
    assert synced.sync().status == "succeeded"
    assert zoho_writes(before, synced.calls()) == {}


def test_zoho_sync_mode_config_sets_the_mode_until_the_settings_store_one(
    synced: Synced,
) -> None:
    ann, _ = linked(synced, "ann@example.org", phone="111")
    synced.state.config = replace(synced.state.config, sync_mode="import_only")
    synced.edit_contact(ann, phone="222")
    before = synced.calls()
    synced.sync()
    assert zoho_writes(before, synced.calls()) == {}
    set_mode(synced, "two_way")  # the stored choice wins over the config
    synced.edit_contact(ann, phone="333")
    synced.sync()
    assert synced.leads()["ann@example.org"]["Phone"] == "333"


@pytest.mark.parametrize(
    ("mode", "winner"), [("export_only", "host"), ("import_only", "zoho")], ids=["export", "import"]
)
def test_in_a_one_way_mode_the_source_side_wins_a_conflict(
    synced: Synced, mode: str, winner: str
) -> None:
    ann, ann_zoho = linked(synced, "ann@example.org", phone="111")
    with synced.host.app.app_context():  # the field's own winner says the other side
        set_winner(synced.host.db.session, "phone", "zoho" if winner == "host" else "host")
        synced.host.db.session.commit()
    set_mode(synced, mode)
    synced.edit_contact(ann, phone="222")
    synced.zoho.update_record("Leads", ann_zoho, {"Phone": "333"})
    report = synced.sync()
    assert report.status == "succeeded", report.message
    expected = "222" if winner == "host" else "333"
    assert synced.contacts()["ann@example.org"]["phone"] == expected
    assert synced.zoho.record("Leads", ann_zoho)["Phone"] == expected
    [conflict] = [c for change in report.changes for c in change.conflicts]
    assert conflict["winner"] == winner
    assert "value wins" in conflict["reason"]


def test_update_only_creates_nothing_on_either_side(synced: Synced) -> None:
    ann, ann_zoho = linked(synced, "ann@example.org", phone="111")
    set_mode(synced, "update_only")
    synced.add_contact(last_name="Cho", email="cho@example.org", first_name="Cy")
    synced.zoho.create_record("Leads", {"Last_Name": "Dee", "Email": "dee@example.org"})
    # On both sides, unlinked: matched by email, so linked and updated, not created.
    eve = synced.add_contact(last_name="Eve", email="eve@example.org", phone="555")
    synced.zoho.create_record(
        "Leads", {"Last_Name": "Eve", "Email": "eve@example.org", "First_Name": "Eva"}
    )
    synced.edit_contact(ann, phone="222")

    plan = synced.sync(mode="all", dry_run=True)
    assert plan.counts.get("to_zoho.create", 0) == plan.counts.get("to_host.create", 0) == 0
    assert any("update only mode does not create" in (c.reason or "") for c in plan.changes)

    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    assert report.counts.get("to_zoho.create", 0) == report.counts.get("to_host.create", 0) == 0
    assert "cho@example.org" not in synced.leads()
    assert "dee@example.org" not in synced.contacts()
    assert synced.zoho.record("Leads", ann_zoho)["Phone"] == "222"
    assert synced.contacts()["eve@example.org"]["first_name"] == "Eva"
    assert synced.leads()["eve@example.org"]["Phone"] == "555"
    assert synced.contacts()["eve@example.org"]["id"] == eve


# -- overwrite policies ------------------------------------------------------------------


def test_fill_blanks_writes_only_into_an_empty_field(synced: Synced) -> None:
    ann, ann_zoho = linked(synced, "ann@example.org", phone="111", company="")
    overwrite(synced, "phone", "fill_blanks")
    overwrite(synced, "company", "fill_blanks")
    synced.zoho.update_record("Leads", ann_zoho, {"Phone": "999", "Company": "Acme"})
    plan = synced.sync(dry_run=True)
    [kept] = left_alone(plan, "to_host")
    assert kept.changes == {"Phone (Phone)": "999"}
    assert "fill blanks only" in (kept.reason or "")

    report = synced.sync()
    assert report.status == "succeeded", report.message
    contact = synced.contacts()["ann@example.org"]
    assert contact["phone"] == "111"  # not overwritten
    assert contact["company"] == "Acme"  # was blank: filled
    # The host's edit does not overwrite Zoho's non-empty value either, run after run.
    synced.edit_contact(ann, phone="222")
    for _ in range(2):
        assert synced.sync().counts.get("to_zoho.update", 0) == 0
    assert synced.zoho.record("Leads", ann_zoho)["Phone"] == "999"
    assert synced.contacts()["ann@example.org"]["phone"] == "222"


def test_fill_blanks_on_the_first_link_keeps_both_values(synced: Synced) -> None:
    overwrite(synced, "phone", "fill_blanks")
    overwrite(synced, "company", "fill_blanks")
    synced.add_contact(last_name="Lee", email="ann@example.org", phone="111", company="")
    synced.zoho.create_record(
        "Leads",
        {"Last_Name": "Lee", "Email": "ann@example.org", "Phone": "999", "Company": "Acme"},
    )
    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    # Linking two records that differ is a conflict the policy would settle by overwriting
    # one side; fill-blanks keeps both values, and fills only the empty one.
    assert synced.contacts()["ann@example.org"]["phone"] == "111"
    assert synced.contacts()["ann@example.org"]["company"] == "Acme"
    assert synced.leads()["ann@example.org"]["Phone"] == "999"


def test_first_sync_only_writes_when_the_record_is_first_linked(synced: Synced) -> None:
    overwrite(synced, "company", "first_sync")
    ann = synced.add_contact(last_name="Lee", email="ann@example.org", company="Acme")
    assert synced.sync(mode="all").status == "succeeded"
    ann_zoho = synced.leads()["ann@example.org"]["id"]
    assert synced.leads()["ann@example.org"]["Company"] == "Acme"  # the first sync wrote it

    synced.zoho.update_record("Leads", ann_zoho, {"Company": "Globex"})
    report = synced.sync()
    assert synced.contacts()["ann@example.org"]["company"] == "Acme"
    assert any("first sync only" in (c.reason or "") for c in left_alone(report, "to_host"))
    synced.edit_contact(ann, company="Initech")
    report = synced.sync()
    assert report.counts.get("to_zoho.update", 0) == 0
    assert synced.leads()["ann@example.org"]["Company"] == "Globex"


# -- per-field winner ----------------------------------------------------------------------


def test_a_field_winner_overrides_the_default_policy_for_that_field(synced: Synced) -> None:
    ann, ann_zoho = linked(synced, "ann@example.org", first_name="Ann", phone="111")
    with synced.host.app.app_context():
        set_winner(synced.host.db.session, "phone", "host")
        synced.host.db.session.commit()
    synced.edit_contact(ann, phone="222", first_name="Anna")
    synced.zoho.advance_clock(120)  # Zoho's edits are the newer ones
    synced.zoho.update_record("Leads", ann_zoho, {"Phone": "333", "First_Name": "Annie"})
    report = synced.sync()
    assert report.status == "succeeded", report.message
    contact, record = synced.contacts()["ann@example.org"], synced.zoho.record("Leads", ann_zoho)
    assert (contact["phone"], record["Phone"]) == ("222", "222")  # the host wins the phone
    assert (contact["first_name"], record["First_Name"]) == ("Annie", "Annie")  # newest wins
    winners = {c["key"]: c["winner"] for ch in report.changes for c in ch.conflicts}
    assert winners == {"field:phone": "host", "field:first_name": "zoho"}


# -- settings changes and reverts ------------------------------------------------------------


def test_changing_the_mode_or_a_policy_is_a_settings_change(synced: Synced) -> None:
    linked(synced, "ann@example.org", phone="111")
    with synced.host.app.app_context():
        session = synced.host.db.session
        ledger = Ledger(session, get_settings(session))
        ledger.pin_settings()
        get_settings(session).sync_mode = "import_only"
        session.commit()
        assert ledger.settings_change() == "the sync mode changed from the default to import_only"
        ledger.pin_settings()
        set_overwrite(session, "phone", "fill_blanks")
        session.commit()
        assert ledger.settings_change() == "the field mapping changed"


def test_import_only_refuses_a_revert_that_would_write_zoho(synced: Synced) -> None:
    ann, ann_zoho = linked(synced, "ann@example.org", phone="111")
    synced.edit_contact(ann, phone="222")
    report = synced.sync()
    assert synced.zoho.record("Leads", ann_zoho)["Phone"] == "222"
    set_mode(synced, "import_only")
    with synced.host.app.app_context(), pytest.raises(RevertRefused, match="import only"):
        revert_run(synced.state, int(report_run_id(synced)), dry_run=True)
    assert synced.zoho.record("Leads", ann_zoho)["Phone"] == "222"
    assert report.status == "succeeded"


def report_run_id(synced: Synced) -> int:
    """The id of the last real run (the history's newest)."""
    import sqlalchemy as sa

    from flask_zoho_sync.models import Run

    with synced.host.app.app_context():
        return int(
            synced.host.db.session.scalar(
                sa.select(Run.id).where(Run.dry_run.is_(False)).order_by(Run.id.desc())
            )
        )
