"""A run taken back: each side gets the values from before it, edits made since are kept,
deleted records come back, and a run is reverted once."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from flask_zoho_sync.models import RecordHistory, Run, Tombstone
from flask_zoho_sync.undo import RevertOutcome, RevertRefused, revert_run
from tests.engine.conftest import Synced
from tests.engine.test_changes import delta, linked_pair
from tests.web.conftest import PREFIX, Admin


@pytest.fixture
def synced_config() -> dict[str, Any]:
    """A secret key, so the admin pages (the run page's revert) can keep a session."""
    return {"SECRET_KEY": "revert-tests-secret"}


def admin_pages(synced: Synced) -> Admin:
    from flask_zoho_sync.web import register_admin

    synced.state.admin_check = lambda: True
    register_admin(synced.host.app, synced.state)
    return Admin(host=synced.host, client=synced.host.app.test_client())


def last_run_id(synced: Synced) -> int:
    with synced.host.app.app_context():
        session = synced.host.db.session
        return int(session.scalar(sa.select(sa.func.max(Run.id)).where(Run.dry_run.is_(False))))


def revert(synced: Synced, run_id: int, *, dry_run: bool = False) -> RevertOutcome:
    with synced.host.app.app_context():
        return revert_run(synced.state, run_id, dry_run=dry_run)


def shown(outcome: RevertOutcome) -> list[tuple[Any, ...]]:
    """What a revert lists, record by record, in a form two outcomes can be compared in."""
    return [
        (
            record.direction,
            record.action,
            record.values,
            [(item.key, item.wrote, item.current) for item in record.skipped],
            record.reason,
        )
        for record in outcome.plan.records
    ]


def test_reverting_a_pull_puts_the_host_values_back(synced: Synced) -> None:
    _contact_id, zoho_id = linked_pair(synced, first_name="Ann")
    synced.zoho.update_record("Leads", zoho_id, {"First_Name": "Annie", "VIP": True})
    assert synced.sync().status == "succeeded"
    pulled = last_run_id(synced)
    assert synced.contacts()["ann@example.org"]["first_name"] == "Annie"

    outcome = revert(synced, pulled)

    contact = synced.contacts()["ann@example.org"]
    assert (contact["first_name"], contact["groups"]) == ("Ann", set())
    with synced.host.app.app_context():
        row = synced.host.db.session.get(Run, outcome.revert_run_id)
        assert (row.kind, row.trigger, row.status) == ("revert", f"revert:{pulled}", "succeeded")
    # The reverted values are a host edit like any other: the next sync carries them across.
    assert synced.sync().status == "succeeded"
    assert synced.zoho.record("Leads", zoho_id)["First_Name"] == "Ann"
    assert synced.zoho.record("Leads", zoho_id)["VIP"] is False


def test_reverting_a_push_writes_zoho_values_back_in_one_batched_call(synced: Synced) -> None:
    ids = [
        synced.add_contact(last_name="Lee", email=f"p{n}@example.org", phone=f"10{n}")
        for n in range(3)
    ]
    synced.first_manual_sync()
    for n, contact_id in enumerate(ids):
        synced.edit_contact(contact_id, phone=f"20{n}")
    assert synced.sync().status == "succeeded"
    pushed = last_run_id(synced)
    assert synced.leads()["p1@example.org"]["Phone"] == "201"

    before = synced.calls()
    outcome = revert(synced, pushed)

    assert outcome.status == "succeeded"
    assert {email: lead["Phone"] for email, lead in synced.leads().items()} == {
        f"p{n}@example.org": f"10{n}" for n in range(3)
    }
    # One read of today's values for the three-way check, one write for all three records.
    assert delta(before, synced.calls()) == {"GET /Leads": 1, "PUT /Leads": 1}
    assert synced.sync().status == "succeeded"
    assert synced.contacts()["p2@example.org"]["phone"] == "102"


def test_a_field_changed_since_the_run_is_skipped_with_both_values(synced: Synced) -> None:
    contact_id, zoho_id = linked_pair(synced, first_name="Ann")
    synced.zoho.update_record("Leads", zoho_id, {"First_Name": "Annie", "VIP": True})
    synced.sync()
    pulled = last_run_id(synced)
    synced.edit_contact(contact_id, first_name="Anna")  # edited again since the run

    outcome = revert(synced, pulled)

    contact = synced.contacts()["ann@example.org"]
    assert contact["first_name"] == "Anna"  # not clobbered
    assert contact["groups"] == set()  # VIP, untouched since, is reverted
    [record] = outcome.plan.records
    assert [(item.wrote, item.current) for item in record.skipped] == [("Annie", "Anna")]
    with synced.host.app.app_context():
        rows = synced.host.db.session.scalars(
            sa.select(RecordHistory).where(RecordHistory.run_id == outcome.revert_run_id)
        ).all()
    [row] = rows
    assert row.changes["skipped"] == {
        "First name (First_Name)": {"run wrote": "Annie", "now": "Anna"}
    }


def test_the_preview_lists_exactly_what_the_revert_does_and_writes_nothing(
    synced: Synced,
) -> None:
    contact_id, zoho_id = linked_pair(synced, first_name="Ann", phone="111")
    synced.zoho.update_record("Leads", zoho_id, {"First_Name": "Annie", "Phone": "222"})
    synced.sync()
    pulled = last_run_id(synced)
    synced.edit_contact(contact_id, phone="333")

    preview = revert(synced, pulled, dry_run=True)

    assert synced.contacts()["ann@example.org"]["first_name"] == "Annie"
    assert last_run_id(synced) == pulled  # a preview is no run
    done = revert(synced, pulled)
    assert shown(done) == shown(preview)
    assert synced.contacts()["ann@example.org"]["first_name"] == "Ann"


def test_a_run_is_reverted_once_and_a_revert_is_not_reverted(synced: Synced) -> None:
    _contact_id, zoho_id = linked_pair(synced, first_name="Ann")
    synced.zoho.update_record("Leads", zoho_id, {"First_Name": "Annie"})
    synced.sync()
    pulled = last_run_id(synced)
    first = revert(synced, pulled)

    with pytest.raises(RevertRefused, match=f"already reverted by run {first.revert_run_id}"):
        revert(synced, pulled)
    with pytest.raises(RevertRefused, match="is itself a revert"):
        revert(synced, first.revert_run_id or 0)
    with pytest.raises(RevertRefused, match="no run 9999"):
        revert(synced, 9999)


def test_a_run_recorded_before_runs_kept_before_values_cannot_be_reverted(
    synced: Synced,
) -> None:
    _contact_id, zoho_id = linked_pair(synced, first_name="Ann")
    synced.zoho.update_record("Leads", zoho_id, {"First_Name": "Annie"})
    synced.sync()
    pulled = last_run_id(synced)
    with synced.host.app.app_context():
        session = synced.host.db.session
        for row in session.scalars(sa.select(RecordHistory).where(RecordHistory.run_id == pulled)):
            row.changes = {key: value for key, value in row.changes.items() if key != "undo"}
        session.commit()

    with pytest.raises(RevertRefused, match="recorded before runs kept"):
        revert(synced, pulled)
    assert synced.contacts()["ann@example.org"]["first_name"] == "Annie"


def test_reverting_a_push_that_deleted_a_zoho_record_brings_the_record_back(
    synced: Synced,
) -> None:
    contact_id, zoho_id = linked_pair(synced, first_name="Ann", phone="111")
    synced.delete_contact(contact_id)
    assert synced.sync().counts["to_zoho.delete"] == 1
    deleting = last_run_id(synced)

    outcome = revert(synced, deleting)

    [back] = outcome.plan.of("to_zoho", "create")
    lead = synced.leads()["ann@example.org"]
    assert (lead["First_Name"], lead["Phone"]) == ("Ann", "111")
    with synced.host.app.app_context():
        buried = synced.host.db.session.scalars(sa.select(Tombstone.zoho_id)).all()
    assert zoho_id not in buried
    # Its tombstone gone, the record is no longer kept out: the next pull links it again.
    assert synced.sync().status == "succeeded"
    assert synced.contacts()["ann@example.org"]["phone"] == "111"
    assert back.zoho_id == lead["id"]


def test_reverting_a_pull_that_deleted_a_contact_brings_the_contact_back(
    synced: Synced,
) -> None:
    _contact_id, zoho_id = linked_pair(synced, first_name="Ann", groups=["VIP"])
    synced.zoho.delete_record("Leads", zoho_id)
    assert synced.sync().counts["to_host.delete"] == 1
    deleting = last_run_id(synced)
    assert "ann@example.org" not in synced.contacts()

    revert(synced, deleting)

    contact = synced.contacts()["ann@example.org"]
    assert (contact["first_name"], contact["groups"]) == ("Ann", {"VIP"})
    # The contact reaches Zoho again on the next sync, as a new record linked to it.
    assert synced.sync().status == "succeeded"
    assert synced.leads()["ann@example.org"]["First_Name"] == "Ann"
    # A second revert is refused; the contact is not made twice.
    with pytest.raises(RevertRefused, match="already reverted"):
        revert(synced, deleting)
    assert len([c for c in synced.contacts() if c == "ann@example.org"]) == 1


def test_a_contact_deleted_since_the_run_is_not_brought_back(synced: Synced) -> None:
    contact_id, zoho_id = linked_pair(synced, first_name="Ann")
    synced.zoho.update_record("Leads", zoho_id, {"First_Name": "Annie"})
    synced.sync()
    pulled = last_run_id(synced)
    synced.delete_contact(contact_id)  # the admin deleted it after the run

    outcome = revert(synced, pulled)

    assert "ann@example.org" not in synced.contacts()
    [record] = outcome.plan.records
    assert (record.action, record.reason) == ("skip", "the contact was deleted since the run")


def test_the_command_line_previews_then_reverts_and_refuses_a_second_time(
    synced: Synced,
) -> None:
    from tests.engine.test_cli import invoke

    contact_id, zoho_id = linked_pair(synced, first_name="Ann")
    synced.zoho.update_record("Leads", zoho_id, {"First_Name": "Annie"})
    # The sync names its run, so the command line alone finds what to revert.
    ran = invoke(synced, "sync")
    assert ran.exit_code == 0, ran.output
    pulled = last_run_id(synced)
    assert f"Run {pulled} in History; take it back with 'zoho-sync sync --revert {pulled}'" in (
        ran.output
    )
    as_json = json.loads(invoke(synced, "sync", "--json").output)
    assert as_json["run_id"] == last_run_id(synced) == pulled + 1
    plan = invoke(synced, "sync", "--dry-run")
    assert "Plan: succeeded" in plan.output and "--revert" not in plan.output
    synced.edit_contact(contact_id, phone="555")  # a field the run did not write

    preview = invoke(synced, "sync", "--revert", str(pulled), "--dry-run")
    assert preview.exit_code == 0, preview.output
    assert f"Revert of run {pulled} (preview): 1 record(s) would change" in preview.output
    assert "put back First name (First_Name) = 'Ann'" in preview.output
    assert synced.contacts()["ann@example.org"]["first_name"] == "Annie"

    done = invoke(synced, "sync", "--revert", str(pulled), "--json")
    assert done.exit_code == 0, done.output
    assert '"to_host.update": 1' in done.output
    assert synced.contacts()["ann@example.org"]["first_name"] == "Ann"
    assert synced.contacts()["ann@example.org"]["phone"] == "555"

    again = invoke(synced, "sync", "--revert", str(pulled))
    assert again.exit_code == 1
    assert "already reverted" in again.output
    mixed = invoke(synced, "sync", "--revert", str(pulled), "--all")
    assert mixed.exit_code == 2
    assert "--revert takes only --dry-run and --json" in mixed.output


def test_the_run_page_previews_the_revert_then_reverts_and_links_both_runs(
    synced: Synced,
) -> None:
    admin = admin_pages(synced)
    contact_id, zoho_id = linked_pair(synced, first_name="Ann", phone="111")
    synced.zoho.update_record("Leads", zoho_id, {"First_Name": "Annie", "Phone": "222"})
    synced.sync()
    pulled = last_run_id(synced)
    synced.edit_contact(contact_id, phone="333")

    run_page = admin.text(f"/history/runs/{pulled}")
    assert "Preview reverting this run" in run_page
    preview = admin.text(f"/history/runs/{pulled}/revert")
    assert "Put back <strong>First name (First_Name)</strong>: “Ann”" in preview
    assert (
        "Skipped <strong>Phone (Phone)</strong>: changed since the run "
        "(the run wrote “222”, it is now “333”)"
    ) in preview
    assert synced.contacts()["ann@example.org"]["first_name"] == "Annie"

    done = admin.post(f"/history/runs/{pulled}/revert")
    assert done.status_code == 302
    reverting = last_run_id(synced)
    assert done.headers["Location"].endswith(f"{PREFIX}/history/runs/{reverting}")
    assert synced.contacts()["ann@example.org"]["first_name"] == "Ann"
    revert_page = admin.text(f"/history/runs/{reverting}")
    assert f"Revert of run {pulled}" in revert_page
    assert "changed since the reverted run (it wrote “222”, it is now “333”)" in revert_page
    assert f'reverted by <a href="{PREFIX}/history/runs/{reverting}">run {reverting}</a>' in (
        admin.text(f"/history/runs/{pulled}")
    )
    again = admin.post(f"/history/runs/{pulled}/revert", follow_redirects=True)
    assert "already reverted" in again.get_data(as_text=True)


def test_a_zoho_field_edited_since_a_push_is_not_clobbered(synced: Synced) -> None:
    contact_id, zoho_id = linked_pair(synced, first_name="Ann", phone="111")
    synced.edit_contact(contact_id, first_name="Annie", phone="222")
    synced.sync()
    pushed = last_run_id(synced)
    synced.zoho.advance_clock(60)
    synced.zoho.update_record("Leads", zoho_id, {"Phone": "999"})  # a salesperson's edit

    outcome = revert(synced, pushed)

    lead = synced.zoho.record("Leads", zoho_id)
    assert (lead["First_Name"], lead["Phone"]) == ("Ann", "999")
    [record] = outcome.plan.records
    assert [(item.wrote, item.current) for item in record.skipped] == [("222", "999")]
    assert outcome.status == "succeeded"


def test_a_revert_stopped_by_zoho_is_recorded_as_failed_and_can_be_run_again(
    synced: Synced,
) -> None:
    from flask_zoho_sync.zoho.errors import ZohoError

    contact_id, zoho_id = linked_pair(synced, first_name="Ann")
    synced.edit_contact(contact_id, first_name="Annie")
    synced.sync()
    pushed = last_run_id(synced)
    synced.zoho.faults(
        fail_next=[{"status": 400, "method": "PUT", "body": {"code": "INVALID_REQUEST"}}]
    )

    with pytest.raises(ZohoError):
        revert(synced, pushed)

    with synced.host.app.app_context():
        failed = synced.host.db.session.get(Run, last_run_id(synced))
        assert (failed.kind, failed.status) == ("revert", "failed")
        assert "The revert stopped" in (failed.error or "")
    assert synced.zoho.record("Leads", zoho_id)["First_Name"] == "Annie"
    again = revert(synced, pushed)
    assert again.status == "succeeded"
    assert synced.zoho.record("Leads", zoho_id)["First_Name"] == "Ann"


def test_a_record_zoho_refuses_fails_alone_and_is_listed(synced: Synced) -> None:
    contact_id, zoho_id = linked_pair(synced, first_name="Ann")
    synced.edit_contact(contact_id, first_name="Annie")
    synced.sync()
    pushed = last_run_id(synced)
    refusal = {
        "code": "INVALID_DATA",
        "status": "error",
        "message": "the id given seems to be invalid",
        "details": {"id": zoho_id},
    }
    synced.zoho.faults(fail_next=[{"status": 400, "method": "PUT", "body": {"data": [refusal]}}])

    outcome = revert(synced, pushed)

    assert outcome.status == "partial"
    [record] = outcome.plan.records
    assert record.action == "error"
    assert outcome.errors == [
        f"Zoho refused record {zoho_id}: INVALID_DATA the id given seems to be invalid"
    ]
    with synced.host.app.app_context():
        [row] = synced.host.db.session.scalars(
            sa.select(RecordHistory).where(RecordHistory.run_id == outcome.revert_run_id)
        ).all()
        assert (row.action, row.error_code) == ("error", "INVALID_DATA")
    assert synced.zoho.record("Leads", zoho_id)["First_Name"] == "Annie"


def test_with_the_recycle_bin_allowed_a_deleted_record_comes_back_under_its_own_id(
    database_url: str, redis_client: Any, zoho_sandbox: Any
) -> None:
    from flask_zoho_sync.models import Link
    from tests.engine.conftest import connect_synced, dispose_synced

    synced = connect_synced(database_url, zoho_sandbox, ZOHO_SYNC_REVERT_FROM_RECYCLE_BIN=True)
    try:
        contact_id, zoho_id = linked_pair(synced, first_name="Ann", phone="111")
        synced.delete_contact(contact_id)
        synced.sync()
        deleting = last_run_id(synced)

        before = synced.calls()
        revert(synced, deleting)

        assert delta(before, synced.calls()) == {
            "GET /Leads": 1,
            "POST /settings/recycle_bin/{id}/actions/restore": 1,
        }
        assert synced.zoho.record("Leads", zoho_id)["First_Name"] == "Ann"
        contact = synced.contacts()["ann@example.org"]
        assert contact["phone"] == "111"
        with synced.host.app.app_context():
            link = synced.host.db.session.scalar(sa.select(Link))
            assert (link.contact_id, link.zoho_id) == (str(contact["id"]), zoho_id)
        # Linked already: the next sync has nothing to create on either side.
        report = synced.sync()
        assert report.status == "succeeded", report.message
        assert [lead["id"] for lead in synced.zoho.records("Leads")] == [zoho_id]
        assert not report.counts.get("to_zoho.create") and not report.counts.get("to_host.create")
    finally:
        dispose_synced(synced)


def test_a_revert_is_announced_like_a_run_and_a_failed_one_with_its_error(
    synced: Synced,
) -> None:
    from flask_zoho_sync import signals
    from flask_zoho_sync.incidents import open_incident, open_incidents
    from flask_zoho_sync.zoho.errors import ZohoError

    heard: list[tuple[str, dict[str, Any]]] = []

    def on_started(sender: Any, **details: Any) -> None:
        heard.append(("started", details))

    def on_finished(sender: Any, **details: Any) -> None:
        heard.append(("finished", details))

    contact_id, _zoho_id = linked_pair(synced, first_name="Ann")
    synced.edit_contact(contact_id, first_name="Annie")
    synced.sync()
    pushed = last_run_id(synced)
    with synced.host.app.app_context():  # trouble a revert proves nothing about
        open_incident(synced.host.db.session, "breaker_tripped", "30 deletions wait")
        synced.host.db.session.commit()
    app = synced.host.app
    with (
        signals.run_started.connected_to(on_started, sender=app),
        signals.run_finished.connected_to(on_finished, sender=app),
    ):
        revert(synced, pushed, dry_run=True)
        synced.zoho.faults(
            fail_next=[{"status": 400, "method": "PUT", "body": {"code": "INVALID_REQUEST"}}]
        )
        with pytest.raises(ZohoError):
            revert(synced, pushed)
        stopped = last_run_id(synced)
        done = revert(synced, pushed)

    trigger = f"revert:{pushed}"
    assert [(kind, d["trigger"], d["dry_run"]) for kind, d in heard] == [
        ("started", trigger, True),
        ("finished", trigger, True),
        ("started", trigger, False),
        ("finished", trigger, False),
        ("started", trigger, False),
        ("finished", trigger, False),
    ]
    preview, failed, succeeded = (d for kind, d in heard if kind == "finished")
    assert (preview["run_id"], preview["report"].status) == (None, "succeeded")
    assert (failed["run_id"], failed["report"].status) == (stopped, "failed")
    assert isinstance(failed["report"].error, ZohoError)
    assert succeeded["run_id"] == done.revert_run_id
    assert succeeded["report"].status == "succeeded"
    assert succeeded["report"].counts["to_zoho.update"] == 1
    assert succeeded["duration"] >= 0
    with synced.host.app.app_context():
        kinds = [incident.kind for incident in open_incidents(synced.host.db.session)]
    assert kinds == ["breaker_tripped"]  # neither cleared nor joined by a run_failed
