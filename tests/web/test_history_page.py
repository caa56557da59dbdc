"""History: runs, failed records with Zoho's reason and a Retry, a record's own history."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from flask_zoho_sync.models import OutboxEntry, RecordHistory
from flask_zoho_sync.preferences import add_default_mappings, get_settings, set_field_map
from tests.web.conftest import Admin


@pytest.fixture
def failed(connected_admin: Admin, zoho_sandbox: Any) -> Admin:
    """Two contacts share a unique Zoho value, so the second one fails."""
    zoho_sandbox.add_custom_field(
        "Leads", api_name="Badge", field_label="Badge", data_type="text", length=20, unique=True
    )
    host = connected_admin.host
    with host.app.app_context():
        session = host.db.session
        get_settings(session).module = "Leads"
        add_default_mappings(session, connected_admin.state.adapter, "Leads")
        set_field_map(session, kind="field", host_key="company", zoho_field="Badge")
        session.add_all(
            [
                host.Contact(last_name="A", email="a@example.org", company="SAME"),
                host.Contact(last_name="B", email="b@example.org", company="SAME"),
            ]
        )
        session.commit()
        connected_admin.state.run_sync(mode="all")
    return connected_admin


def test_history_lists_runs_and_the_failed_record_with_its_reason(failed: Admin) -> None:
    text = failed.get("/history").get_data(as_text=True)
    assert "Records that failed" in text
    assert "DUPLICATE_CONTACT" in text or "DUPLICATE_DATA" in text
    assert "Badge" in text
    assert "Retry" in text
    assert "1 created" in text  # the run's counts


def test_retry_requeues_the_contact_and_resolves_the_error(failed: Admin) -> None:
    with failed.host.app.app_context():
        error = failed.state.db.session.scalar(
            sa.select(RecordHistory).where(RecordHistory.action == "error")
        )
        error_id, contact_id = error.id, error.contact_id
    response = failed.post(f"/history/errors/{error_id}/retry", follow_redirects=True)
    assert response.status_code == 200
    assert "B (b@example.org) will be sent to Zoho again" in response.get_data(as_text=True)
    with failed.host.app.app_context():
        session = failed.state.db.session
        assert session.get(RecordHistory, error_id).resolved_at is not None
        pending = session.scalars(
            sa.select(OutboxEntry.contact_id).where(OutboxEntry.processed_at.is_(None))
        ).all()
    assert contact_id in pending


def test_a_contacts_history_and_a_runs_changes_are_shown(failed: Admin) -> None:
    with failed.host.app.app_context():
        row = failed.state.db.session.scalar(
            sa.select(RecordHistory).where(RecordHistory.action == "create")
        )
        contact_id, run_id = row.contact_id, row.run_id
    contact_page = failed.get(f"/history/contacts/{contact_id}").get_data(as_text=True)
    assert "To Zoho" in contact_page and "Created" in contact_page
    run_page = failed.get(f"/history/runs/{run_id}").get_data(as_text=True)
    assert "Record changes" in run_page and "A (a@example.org)" in run_page
    assert failed.get("/history/runs/999999").status_code == 404


def test_an_empty_history_says_so(admin: Admin) -> None:
    text = admin.get("/history").get_data(as_text=True)
    assert "No record is failing." in text
    assert "No sync has run yet." in text


def test_retry_without_the_token_is_refused(failed: Admin) -> None:
    response = failed.client.post("/admin/zoho/history/errors/1/retry")
    assert response.status_code == 400


def test_zoho_record_links_point_at_zoho_or_at_the_sandbox() -> None:
    from flask_zoho_sync.connection import ConnectedAccount
    from flask_zoho_sync.web.history_page import zoho_record_url

    def account(api_domain: str) -> ConnectedAccount:
        return ConnectedAccount(
            "https://accounts.zoho.eu",
            api_domain,
            "eu",
            None,
            None,
            "1",
            "Acme",
            None,
            "org4876876",
        )

    assert (
        zoho_record_url(account("https://www.zohoapis.eu"), "Leads", "123")
        == "https://crm.zoho.eu/crm/org4876876/tab/Leads/123"
    )
    assert (
        zoho_record_url(account("http://127.0.0.1:8765"), "Contacts", "9")
        == "http://127.0.0.1:8765/crm/org4876876/tab/Contacts/9"
    )
    assert zoho_record_url(None, "Leads", "1") is None
