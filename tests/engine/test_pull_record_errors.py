"""A Zoho value the host column cannot hold fails that record alone, never the run."""

from __future__ import annotations

import sqlalchemy as sa

from flask_zoho_sync.models import RecordHistory
from tests.engine.conftest import Synced


def test_a_phone_too_long_for_the_host_fails_its_record_not_the_run(synced: Synced) -> None:
    good = synced.zoho.create_record("Leads", {"Last_Name": "Good", "Email": "good@example.org"})
    odd = synced.zoho.create_record("Leads", {"Last_Name": "Long", "Email": "long@example.org"})
    listed = [
        synced.zoho.record("Leads", good["id"]),
        {**synced.zoho.record("Leads", odd["id"]), "Phone": "+1 555 0100 extension 1234567890"},
    ]
    listing = {
        "status": 200,
        "body": {"data": listed, "info": {"more_records": False}},
        "method": "POST",
        "path_contains": "/coql",  # the pull's read (COQL)
    }
    synced.zoho.faults(fail_next=[listing, listing])  # the plan's read, then the run's

    plan = synced.sync(dry_run=True)
    assert plan.status == "partial"
    assert plan.message == "1 record would fail (BAD_VALUE x1); the plan lists each one with why."
    assert plan.counts["to_host.create"] == 1  # the good one

    report = synced.sync()

    assert report.status == "partial", report.message
    assert (report.message or "").startswith("1 record could not be synced (BAD_VALUE x1)")
    assert set(synced.contacts()) == {"good@example.org"}  # nothing half-created
    with synced.host.app.app_context():
        errors = synced.host.db.session.scalars(
            sa.select(RecordHistory).where(RecordHistory.action == "error")
        ).all()
        assert [(e.zoho_id, e.error_code) for e in errors] == [(odd["id"], "BAD_VALUE")]
        assert "longer than the 30 characters phone holds" in (errors[0].reason or "")


def test_a_plan_shows_the_update_the_host_could_not_hold(synced: Synced) -> None:
    synced.add_contact(last_name="Kept", email="kept@example.org", phone="555 0100")
    assert synced.sync().status == "succeeded"
    [lead] = synced.leads().values()
    listing = {
        "status": 200,
        "body": {
            "data": [
                {
                    **synced.zoho.record("Leads", lead["id"]),
                    "Phone": "+1 555 0100 extension 1234567890",
                    "Modified_Time": "2099-01-01T00:00:00+00:00",
                }
            ],
            "info": {"more_records": False},
        },
        "method": "POST",
        "path_contains": "/coql",  # the pull's read (COQL)
    }
    synced.zoho.faults(fail_next=[listing])
    plan = synced.sync(dry_run=True)
    assert plan.status == "partial"
    [error] = [change for change in plan.changes if change.action == "error"]
    assert error.error_code == "BAD_VALUE" and error.zoho_id == lead["id"]
    assert synced.contacts()["kept@example.org"]["phone"] == "555 0100"
