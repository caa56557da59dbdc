"""Alerts reach a real SMTP server and a real HTTP receiver: one per incident, one when it
clears, sent after the run or by the worker, never per record."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import pytest
from flask_mail import Mail

from flask_zoho_sync import jobs
from flask_zoho_sync.alerts import NO_MAIL_TRANSPORT, SIGNATURE_HEADER, deliver_pending
from flask_zoho_sync.incidents import alert_recipients, set_alert_recipients
from flask_zoho_sync.models import Incident
from flask_zoho_sync.workers import SimpleSyncWorker
from tests.engine.conftest import Synced
from tests.operations.receivers import (
    Hook,
    Inbox,
    smtp_sender,
    smtp_server,
    webhook_receiver,
)

SECRET = "webhook-secret-for-tests"


@pytest.fixture
def synced_config() -> dict[str, Any]:
    return {
        "ZOHO_SYNC_ALERT_WEBHOOK_SECRET": SECRET,
        "ZOHO_SYNC_BASE_URL": "https://crm.example.com",
    }


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as served:
        yield served


@pytest.fixture
def hook() -> Iterator[tuple[Hook, str]]:
    with webhook_receiver() as served:
        yield served


def cli(synced: Synced, *args: str) -> Any:
    return synced.host.app.test_cli_runner().invoke(args=["zoho-sync", *args])


def work(synced: Synced) -> None:
    with synced.host.app.app_context():
        queue = jobs.queue_for(synced.state)
        SimpleSyncWorker([queue], connection=synced.state.redis()).work(burst=True)


def test_a_lost_connection_is_told_once_by_email_and_webhook_and_once_when_it_clears(
    synced: Synced, inbox: tuple[Inbox, int], hook: tuple[Hook, str]
) -> None:
    mailbox, smtp_port = inbox
    received, url = hook
    synced.state.send_mail = smtp_sender(smtp_port)
    settings = cli(synced, "settings", "--alert-emails", "ops@example.com", "--alert-webhook", url)
    assert settings.exit_code == 0, settings.output
    assert f"Alerts: email ops@example.com; webhook {url}" in settings.output
    synced.first_manual_sync()
    assert mailbox.messages == [] and received.posts == []

    synced.zoho.faults(revoke_all_tokens=True, expire_access_tokens=True)
    assert cli(synced, "sync").exit_code == 1
    assert cli(synced, "sync").exit_code == 1  # the same trouble again: no second alert

    assert len(mailbox.messages) == 1
    assert mailbox.recipients == [["ops@example.com"]]
    assert mailbox.messages[0]["Subject"] == "[Zoho sync] The Zoho connection is lost"
    body = mailbox.messages[0].get_payload()
    assert "https://crm.example.com/admin/zoho/" in body
    assert len(received.posts) == 1
    headers, raw = received.posts[0]
    assert headers["Content-Type"] == "application/json"
    expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
    assert received.texts()[0].startswith("The Zoho connection is lost: ")

    # Reconnecting clears it; the tick queues the resolved alert and the worker sends it.
    token = synced.zoho.mint_refresh_token()["refresh_token"]
    assert cli(synced, "connect", "--refresh-token", token).exit_code == 0
    tick = cli(synced, "tick")
    assert '"alerts_scheduled": "zoho-sync-alerts-' in tick.output
    assert len(mailbox.messages) == 1  # nothing sent from the tick itself
    work(synced)
    assert [m["Subject"] for m in mailbox.messages][1:] == [
        "[Zoho sync] Resolved: The Zoho connection is lost"
    ]
    assert received.texts()[1].startswith("Resolved: The Zoho connection is lost.")
    work(synced)
    cli(synced, "tick")
    work(synced)
    assert len(mailbox.messages) == 2 and len(received.posts) == 2


def test_many_failed_records_make_no_alert_and_a_failed_run_makes_one(
    synced: Synced, hook: tuple[Hook, str]
) -> None:
    received, url = hook
    with synced.host.app.app_context():
        set_alert_recipients(synced.host.db.session, webhook_url=url)
        synced.host.db.session.commit()
    for number in range(5):
        synced.add_contact(first_name="F", last_name=f"F{number}", email=f"f{number}@x.org")
    synced.zoho.faults(fail_records=[{"positions": "all", "code": "INVALID_DATA"}])
    assert cli(synced, "sync", "--all").exit_code == 0  # partial: records failed, not the run
    assert received.posts == []

    synced.zoho.faults(
        fail_next=[{"status": 400, "body": {"code": "INVALID_MODULE", "message": "gone"}}]
    )
    cli(synced, "sync")
    assert len(received.posts) == 1
    assert received.texts()[0].startswith("A Zoho sync run failed: ")
    assert "https://crm.example.com/admin/zoho/history" in received.texts()[0]


def test_flask_mail_carries_the_alerts_when_the_host_gave_no_callable(
    synced: Synced, inbox: tuple[Inbox, int]
) -> None:
    mailbox, smtp_port = inbox
    app = synced.host.app
    app.config.update(
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=smtp_port,
        MAIL_DEFAULT_SENDER="zoho-sync@example.com",
        MAIL_SUPPRESS_SEND=False,
    )
    Mail(app)
    with app.app_context():
        session = synced.host.db.session
        set_alert_recipients(session, emails="a@example.com, b@example.com")
        session.add(Incident(kind="budget_low", summary="the budget is nearly spent"))
        session.commit()
        report = deliver_pending(synced.state)
    assert report.problems == []
    assert [sorted(rcpt) for rcpt in mailbox.recipients] == [["a@example.com", "b@example.com"]]
    assert mailbox.messages[0]["Subject"] == "[Zoho sync] The sync's Zoho credits run low"


def test_without_a_mail_transport_the_alert_waits_and_says_why(synced: Synced) -> None:
    with synced.host.app.app_context():
        session = synced.host.db.session
        set_alert_recipients(session, emails="ops@example.com")
        session.add(Incident(kind="run_failed", summary="it failed"))
        session.commit()
        report = deliver_pending(synced.state)
        incident = session.query(Incident).one()
        assert report.problems == [NO_MAIL_TRANSPORT]
        assert incident.delivery_error == NO_MAIL_TRANSPORT
        assert incident.opened_alert_at is None  # tried again once a transport exists


def test_an_unreachable_webhook_is_tried_again_later(
    synced: Synced, hook: tuple[Hook, str]
) -> None:
    received, url = hook
    received.status = 500
    with synced.host.app.app_context():
        session = synced.host.db.session
        set_alert_recipients(session, webhook_url=url)
        session.add(Incident(kind="breaker_tripped", summary="30 deletions wait"))
        session.commit()
        first = deliver_pending(synced.state)
        assert "HTTP 500" in first.problems[0]
        received.status = 200
        second = deliver_pending(synced.state)
        assert second.sent == ["[Zoho sync] A sync stopped before mass deletions"]
        assert deliver_pending(synced.state).sent == []
    assert len(received.posts) == 2


def test_recipients_are_checked_before_they_are_stored(synced: Synced) -> None:
    refused = cli(synced, "settings", "--alert-emails", "not-an-address")
    assert refused.exit_code == 1
    assert "'not-an-address' is not an email address" in refused.output
    refused = cli(synced, "settings", "--alert-webhook", "ftp://example.com/x")
    assert "is not a web address" in refused.output
    with synced.host.app.app_context():
        stored = alert_recipients(synced.host.db.session, synced.state.config.operations)
    assert stored.emails == () and stored.webhook_url is None
