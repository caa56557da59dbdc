"""The cron endpoint, Zoho notification channels, and a notification pulling just its ids."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import requests
from werkzeug.serving import make_server

from flask_zoho_sync import jobs
from flask_zoho_sync.preferences import get_settings
from flask_zoho_sync.workers import SimpleSyncWorker
from tests.engine.conftest import Synced


def auto_sync(synced: Synced) -> None:
    """Automatic sync on, after the first manual sync an admin runs first."""
    synced.first_manual_sync()
    with synced.host.app.app_context():
        get_settings(synced.host.db.session).auto_sync = True
        synced.host.db.session.commit()
    synced.state.preferences_changed()


def post(synced: Synced, path: str, **kwargs):  # type: ignore[no-untyped-def]
    return synced.host.app.test_client().post(f"/admin/zoho{path}", **kwargs)


def test_cron_is_off_until_a_secret_is_configured(synced: Synced) -> None:
    response = post(synced, "/cron")
    assert response.status_code == 403
    assert "ZOHO_SYNC_CRON_SECRET" in response.get_json()["error"]


def test_cron_refuses_a_wrong_secret_and_schedules_nothing(synced: Synced) -> None:
    auto_sync(synced)
    synced.state.config = replace(synced.state.config, cron_secret="right-secret")
    response = post(synced, "/cron", headers={"X-Zoho-Sync-Secret": "wrong"})
    assert response.status_code == 403
    with synced.host.app.app_context():
        assert jobs.queue_for(synced.state).count == 0


def test_cron_with_the_secret_ticks_and_reports_json(synced: Synced) -> None:
    auto_sync(synced)
    with synced.host.app.app_context():  # the first sync's pull was two days ago
        settings = get_settings(synced.host.db.session)
        settings.last_pull_at = datetime.now(timezone.utc) - timedelta(days=2)
        synced.host.db.session.commit()
    synced.state.config = replace(synced.state.config, cron_secret="right-secret")
    response = post(synced, "/cron", headers={"X-Zoho-Sync-Secret": "right-secret"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["ok"] is True and body["pull_scheduled"]


def test_cron_before_the_first_manual_sync_schedules_nothing_and_says_why(
    synced: Synced,
) -> None:
    with synced.host.app.app_context():
        get_settings(synced.host.db.session).auto_sync = True
        synced.host.db.session.commit()
    synced.add_contact(last_name="Early", email="early@example.org")
    synced.state.config = replace(synced.state.config, cron_secret="right-secret")
    body = post(synced, "/cron", headers={"X-Zoho-Sync-Secret": "right-secret"}).get_json()
    assert body["pull_scheduled"] is None and body["push_scheduled"] is None
    assert "first sync is run by hand" in body["message"]
    assert body["outbox_pending"] >= 1


@pytest.mark.parametrize(
    ("body", "status"),
    [("not json", 400), ({"channel_id": "1", "token": "guess", "ids": ["1"]}, 403)],
)
def test_notify_refuses_what_is_not_our_channel(synced: Synced, body: object, status: int) -> None:
    kwargs = {"json": body} if isinstance(body, dict) else {"data": body}
    response = post(synced, "/notify", **kwargs)
    assert response.status_code == status
    with synced.host.app.app_context():
        assert jobs.queue_for(synced.state).count == 0


@pytest.fixture
def served(synced: Synced) -> Iterator[str]:
    """The host app on a real port, so the sandbox can POST notifications to it."""
    server = make_server("127.0.0.1", 0, synced.host.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    synced.state.config = replace(synced.state.config, base_url=url)
    yield url
    server.shutdown()
    thread.join(5)


def test_a_zoho_edit_is_pulled_by_id_soon_after_zoho_notifies(
    synced: Synced, served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "NOTIFY_DELAY", 0)
    auto_sync(synced)
    synced.add_contact(first_name="Ann", last_name="Lee", email="ann@example.org")
    synced.sync(mode="all")
    with synced.host.app.app_context():
        report = jobs.tick(synced.state)
    assert report.notifications == "renewed"
    [channel] = requests.get(f"{synced.zoho.url}/__sandbox__/channels", timeout=5).json()[
        "channels"
    ]
    assert channel["notify_url"] == f"{served}/admin/zoho/notify"
    # Contacts too: converted leads' contacts follow their Contacts (the default).
    assert channel["events"] == ["Leads.all", "Contacts.all"]
    with synced.host.app.app_context():
        assert jobs.tick(synced.state).notifications == "ok"  # not renewed again

    zoho_id = synced.leads()["ann@example.org"]["id"]
    before = synced.calls()
    synced.zoho.update_record("Leads", zoho_id, {"First_Name": "Annie"})
    deliveries = synced.zoho.notifications(wait=5)
    assert deliveries and deliveries[-1]["status_code"] == 200, deliveries
    with synced.host.app.app_context():
        SimpleSyncWorker([jobs.queue_for(synced.state)], connection=synced.state.redis()).work(
            burst=True, with_scheduler=True
        )
    assert synced.contacts()["ann@example.org"]["first_name"] == "Annie"
    after = synced.calls()
    assert after.get("GET /Leads", 0) - before.get("GET /Leads", 0) == 1  # the ids, nothing else
    assert after.get("GET /Leads/deleted", 0) == before.get("GET /Leads/deleted", 0)


def _work(synced: Synced) -> None:
    with synced.host.app.app_context():
        SimpleSyncWorker([jobs.queue_for(synced.state)], connection=synced.state.redis()).work(
            burst=True, with_scheduler=True
        )


def test_zoho_telling_us_of_a_delete_the_push_made_costs_no_call(
    synced: Synced, served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "NOTIFY_DELAY", 0)
    auto_sync(synced)
    kept = synced.add_contact(first_name="Ann", last_name="Lee", email="ann@example.org")
    gone = synced.add_contact(first_name="Bo", last_name="Ray", email="bo@example.org")
    synced.sync(mode="all")
    with synced.host.app.app_context():
        assert jobs.tick(synced.state).notifications == "renewed"
    synced.delete_contact(gone)
    synced.sync()  # the push deletes Bo's lead, and Zoho notifies the channel of it
    [delivery] = synced.zoho.notifications(wait=5)
    assert delivery["payload"]["operation"] == "delete" and delivery["status_code"] == 200
    before = synced.calls()
    _work(synced)
    assert synced.calls() == before  # nothing to read back: the sync made that delete
    assert set(synced.contacts()) == {"ann@example.org"}

    # A job holding both a known deletion and news reads the news alone.
    zoho_id = synced.leads()["ann@example.org"]["id"]
    synced.zoho.update_record("Leads", zoho_id, {"First_Name": "Annie"})
    synced.zoho.notifications(wait=5)
    with synced.host.app.app_context():
        jobs.schedule_notified_pull(synced.state, [delivery["payload"]["ids"][0], zoho_id])
    _work(synced)
    assert synced.contacts()["ann@example.org"]["first_name"] == "Annie"
    after = synced.calls()
    assert after.get("GET /Leads", 0) - before.get("GET /Leads", 0) == 1  # Ann's id alone
    assert after.get("GET /Leads/deleted", 0) == before.get("GET /Leads/deleted", 0)
    assert synced.contacts()["ann@example.org"]["id"] == kept
