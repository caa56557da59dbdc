"""Field metadata, org, current user and notification channels."""

from __future__ import annotations

import json

import responses

from flask_zoho_sync.zoho.client import ZohoClient

from .conftest import CRM, query_of

LEADS_FIELDS = {
    "fields": [
        {
            "api_name": "Last_Name",
            "data_type": "text",
            "json_type": "string",
            "length": 80,
            "system_mandatory": True,
            "custom_field": False,
            "operation_type": {"api_create": True, "api_update": True},
        },
        {
            "api_name": "Email",
            "data_type": "email",
            "json_type": "string",
            "length": 100,
            "system_mandatory": False,
            "unique": {"case_sensitive": False},
        },
    ]
}


def test_fields_lists_a_modules_field_metadata(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{CRM}/settings/fields", json=LEADS_FIELDS)

    fields = client.fields("Leads")

    assert [f["api_name"] for f in fields] == ["Last_Name", "Email"]
    assert fields[0]["system_mandatory"] is True
    assert query_of(rsps.calls[0]) == {"module": "Leads"}


def test_org_returns_the_first_org_with_its_time_zone(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(
        f"{CRM}/org",
        json={
            "org": [
                {
                    "id": "4150868000000225001",
                    "company_name": "Zylker",
                    "time_zone": "America/Los_Angeles",
                    "iso_code": "USD",
                    "type": "production",
                    "zgid": "4150868000000225002",
                }
            ]
        },
    )

    org = client.org()

    assert org["time_zone"] == "America/Los_Angeles"
    assert org["zgid"] == "4150868000000225002"


def test_current_user_asks_for_type_current_user(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(
        f"{CRM}/users",
        json={
            "users": [
                {
                    "id": "4150868000000225013",
                    "email": "patricia@zylker.example",
                    "full_name": "Patricia Boyle",
                    "time_zone": "Asia/Kolkata",
                    "offset": 19800000,
                    "status": "active",
                }
            ],
            "info": {"per_page": 200, "count": 1, "page": 1, "more_records": False},
        },
    )

    user = client.current_user()

    assert user["full_name"] == "Patricia Boyle"
    assert user["time_zone"] == "Asia/Kolkata"
    assert query_of(rsps.calls[0]) == {"type": "CurrentUser"}


def test_watch_subscribes_channels_and_returns_zohos_verdicts(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    verdict = {
        "code": "SUCCESS",
        "details": {
            "events": [
                {
                    "channel_expiry": "2026-01-22T10:20:30+05:30",
                    "resource_name": "Leads",
                    "channel_id": "1000000068001",
                }
            ]
        },
        "message": "Successfully subscribed for actions-watch of the given module",
        "status": "success",
    }
    rsps.post(f"{CRM}/actions/watch", json={"watch": [verdict]})
    channel = {
        "channel_id": "1000000068001",
        "events": ["Leads.all"],
        "notify_url": "https://app.example/admin/zoho/notify",
        "token": "verify-me",
        "channel_expiry": "2026-01-22T10:20:30+05:30",
        "notify_on_related_action": False,
    }

    assert client.watch([channel]) == [verdict]
    assert json.loads(rsps.calls[0].request.body) == {"watch": [channel]}


def test_watch_details_and_unwatch(client: ZohoClient, rsps: responses.RequestsMock) -> None:
    rsps.get(f"{CRM}/actions/watch", json={"watch": [{"channel_id": "1", "events": ["Leads.all"]}]})
    rsps.delete(
        f"{CRM}/actions/watch",
        json={
            "watch": [
                {
                    "code": "SUCCESS",
                    "details": {"channel_id": "1"},
                    "message": "Successfully un-subscribed from actions-watch",
                    "status": "success",
                }
            ]
        },
    )

    assert client.watch_details()[0]["channel_id"] == "1"
    assert client.unwatch(["1", 2])[0]["code"] == "SUCCESS"
    assert query_of(rsps.calls[1]) == {"channel_ids": "1,2"}


def test_no_channels_is_an_empty_list(client: ZohoClient, rsps: responses.RequestsMock) -> None:
    rsps.get(f"{CRM}/actions/watch", status=204)

    assert client.watch_details() == []
