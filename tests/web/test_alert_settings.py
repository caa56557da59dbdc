"""Alert recipients on the settings page, and the banner of open incidents on every page."""

from __future__ import annotations

from flask_zoho_sync.alerts import NO_MAIL_TRANSPORT
from flask_zoho_sync.incidents import alert_recipients, open_incident
from tests.web.conftest import Admin

VALID = {"module": "Leads", "time_zone": "Europe/Berlin", "conflict_policy": "newest"}


def _recipients(admin: Admin):  # type: ignore[no-untyped-def]
    with admin.host.app.app_context():
        return alert_recipients(admin.state.db.session, admin.state.config.operations)


def test_alert_recipients_are_saved_from_the_settings_page(admin: Admin) -> None:
    response = admin.post(
        "/settings",
        {
            **VALID,
            "alert_emails": "ops@example.com, oncall@example.com",
            "alert_webhook": "https://hooks.example.com/T0/B0/x",
        },
    )
    assert response.status_code == 302
    stored = _recipients(admin)
    assert stored.emails == ("ops@example.com", "oncall@example.com")
    assert stored.webhook_url == "https://hooks.example.com/T0/B0/x"
    text = admin.text("/settings")
    assert 'value="ops@example.com, oncall@example.com"' in text
    # The host gave no send_mail and has no Flask-Mail: the page says so, and what happens.
    assert NO_MAIL_TRANSPORT in text


def test_a_bad_recipient_saves_nothing_and_says_what_is_wrong(admin: Admin) -> None:
    response = admin.post(
        "/settings", {**VALID, "alert_emails": "ops at example", "alert_webhook": "hooks"}
    )
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "&#39;ops&#39; is not an email address" in text
    assert "is not a web address" in text
    assert 'value="ops at example"' in text  # what was typed stays, to correct it
    assert _recipients(admin).emails == ()
    assert admin.settings().time_zone == "UTC"  # nothing else was saved either


def test_a_form_without_the_alert_fields_keeps_the_stored_recipients(admin: Admin) -> None:
    admin.post("/settings", {**VALID, "alert_emails": "ops@example.com"})
    admin.post("/settings", VALID)
    assert _recipients(admin).emails == ("ops@example.com",)


def test_open_incidents_show_on_every_page_until_they_clear(admin: Admin) -> None:
    with admin.host.app.app_context():
        open_incident(admin.state.db.session, "connection_lost", "Zoho refused the token.")
        admin.state.db.session.commit()
    for path in ("/", "/settings", "/history"):
        text = admin.text(path)
        assert "Needs attention" in text
        assert ">The Zoho connection is lost</a>: Zoho refused the token." in text
    assert 'href="/admin/zoho/"' in admin.text("/settings")
