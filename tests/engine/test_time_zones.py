"""Naive host times are read in the configured zone; both sides agree on the instant even
when the Zoho org lives in another zone, across a daylight-saving change."""

from __future__ import annotations

from datetime import datetime

from flask_zoho_sync.preferences import set_field_map
from flask_zoho_sync.status import sync_status
from flask_zoho_sync.zoho.timefmt import parse_datetime
from tests.engine.conftest import Synced


def map_last_seen(synced: Synced) -> None:
    synced.zoho.add_custom_field(
        "Leads", api_name="Last_Seen", field_label="Last seen", data_type="datetime"
    )
    with synced.host.app.app_context():
        set_field_map(
            synced.host.db.session, kind="field", host_key="last_seen", zoho_field="Last_Seen"
        )
        synced.host.db.session.commit()


def test_a_naive_host_time_reaches_zoho_as_the_same_instant(synced: Synced) -> None:
    map_last_seen(synced)  # host zone: Australia/Sydney (see conftest); org: Los Angeles
    synced.add_contact(
        last_name="Lee", email="ann@example.org", last_seen=datetime(2026, 1, 15, 9, 0)
    )
    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    sent = synced.leads()["ann@example.org"]["Last_Seen"]
    assert sent.endswith("-08:00")  # written in the org's zone, as Zoho does
    assert parse_datetime(sent) == parse_datetime("2026-01-15T09:00:00+11:00")


def test_a_zoho_time_after_the_dst_change_comes_back_in_the_host_zone(synced: Synced) -> None:
    map_last_seen(synced)
    synced.add_contact(last_name="Lee", email="ann@example.org")
    synced.sync(mode="all")
    zoho_id = synced.leads()["ann@example.org"]["id"]
    # Sydney left daylight saving on 2026-04-05: 10:00 on the 6th is +10:00, not +11:00.
    synced.zoho.update_record("Leads", zoho_id, {"Last_Seen": "2026-04-05T17:00:00-07:00"})
    synced.sync()
    assert synced.contacts()["ann@example.org"]["last_seen"] == datetime(2026, 4, 6, 10, 0)


def test_status_shows_both_zones_when_they_differ(synced: Synced) -> None:
    with synced.host.app.app_context():
        status = sync_status(synced.host.db.session)
    assert status["time_zone"] == "Australia/Sydney"
    assert status["connection"]["org_time_zone"] == "America/Los_Angeles"
    assert status["time_zone_differs"] is True
