"""A lead converted in Zoho, as the admin sees it: the overview counts and lists it with the
records Zoho made, and the contact's history names them, each linking to Zoho's page."""

from __future__ import annotations

from datetime import datetime, timezone

from flask_zoho_sync.models import LeadConversion, RecordHistory
from tests.web.conftest import Admin

ZOHO = "https://crm.zoho.eu/crm/org20051/tab"


def _converted(admin: Admin, outcome: str) -> str:
    admin.store_connection()
    admin.update_settings(module="Leads")
    with admin.host.app.app_context():
        session = admin.state.db.session
        contact = admin.host.Contact(first_name="Ann", last_name="Lee", email="ann@example.org")
        session.add(contact)
        session.flush()
        contact_id = str(contact.id)
        session.add(
            LeadConversion(
                module="Leads",
                contact_id=contact_id,
                lead_id="111000000000000001",
                contact_zoho_id="111000000000000002",
                account_id="111000000000000003",
                deal_id=None,
                converted_at=datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc),
                outcome=outcome,
            )
        )
        session.add(
            RecordHistory(
                contact_id=contact_id,
                zoho_id="111000000000000001",
                direction="to_host",
                action="convert",
                changes={
                    "made": {"Contact": "111000000000000002", "Account": "111000000000000003"},
                    "outcome": outcome,
                },
                reason="converted in Zoho into Contact 111000000000000002, Account "
                "111000000000000003; syncing goes on with the Contact",
            )
        )
        session.commit()
    return contact_id


def test_the_overview_counts_and_lists_conversions_with_what_zoho_made(admin: Admin) -> None:
    _converted(admin, "follow")
    text = admin.text("/")
    assert "whose leads were converted in Zoho" in text
    assert "1 synced with their new Contacts, 0 no longer synced" in text
    assert "Latest lead conversions" in text
    assert f'<a href="{ZOHO}/Contacts/111000000000000002">111000000000000002</a>' in text
    assert f'<a href="{ZOHO}/Accounts/111000000000000003">111000000000000003</a>' in text
    assert "Ann Lee (ann@example.org)" in text and "synced with the Contact" in text


def test_without_conversions_the_overview_says_nothing_of_them(admin: Admin) -> None:
    admin.store_connection()
    text = admin.text("/")
    assert "converted in Zoho" not in text and "Latest lead conversions" not in text


def test_the_contact_history_names_the_new_records(admin: Admin) -> None:
    contact_id = _converted(admin, "stop")
    text = admin.text(f"/history/contacts/{contact_id}")
    assert "Converted in Zoho" in text
    assert (
        f'New Contact in Zoho: <a href="{ZOHO}/Contacts/111000000000000002">'
        "111000000000000002</a>" in text
    )
    assert f'New Account in Zoho: <a href="{ZOHO}/Accounts/111000000000000003">' in text
    assert "New Deal" not in text
