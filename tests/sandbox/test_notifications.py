"""Watch channels and notification delivery; edits made as a Zoho user."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from flask_zoho_sync.sandbox import SandboxHandle

from .conftest import Api


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Receiver:
    """A local HTTP endpoint standing in for the host app's notify URL."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[dict[str, Any]] = []

        @Request.application
        def app(request: Request) -> Response:
            self.received.append(json.loads(request.get_data()))
            return Response("ok", status=self.status)

        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
        self.url = f"http://127.0.0.1:{self.server.server_port}/zoho/notify?key=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def _subscribe(api: Api, url: str, events: list[str], **extra: Any) -> dict[str, Any]:
    item = {
        "channel_id": "1000000068001",
        "events": events,
        "notify_url": url,
        "token": "verify-me",
        **extra,
    }
    response = api.post("/actions/watch", json={"watch": [item]})
    assert response.status_code == 201, response.text
    return response.json()["watch"][0]


def test_enable_details_patch_disable(sandbox: SandboxHandle, api: Api, receiver: Receiver) -> None:
    enabled = _subscribe(api, receiver.url, ["Leads.all", "Contacts.create"])
    assert enabled["code"] == "SUCCESS"
    assert enabled["message"] == "Successfully subscribed for actions-watch of the given module"
    resources = {e["resource_name"]: e for e in enabled["details"]["events"]}
    assert set(resources) == {"Leads", "Contacts"}
    assert resources["Leads"]["channel_id"] == "1000000068001"
    details = api.get("/actions/watch").json()["watch"]
    leads = next(d for d in details if d["resource_name"] == "Leads")
    assert leads["events"] == ["Leads.all"] and leads["token"] == "verify-me"
    assert leads["notify_url"] == receiver.url and leads["notify_on_related_action"] is True
    patched = api.request(
        "PATCH", "/actions/watch", json={"watch": [{"channel_id": "1000000068001", "token": "new"}]}
    )
    assert patched.status_code == 200
    assert (
        api.get("/actions/watch", params={"module": "Leads"}).json()["watch"][0]["token"] == "new"
    )
    gone = api.delete("/actions/watch", params={"channel_ids": "1000000068001"})
    assert gone.json()["watch"][0]["message"] == "Successfully un-subscribed from actions-watch"
    assert api.get("/actions/watch").status_code == 204


def test_channel_validation_and_expiry_rules(
    sandbox: SandboxHandle, api: Api, receiver: Receiver
) -> None:
    long_token = api.post(
        "/actions/watch",
        json={
            "watch": [
                {
                    "channel_id": "1",
                    "events": ["Leads.all"],
                    "notify_url": receiver.url,
                    "token": "x" * 51,
                }
            ]
        },
    )
    assert long_token.status_code == 400
    element = long_token.json()["watch"][0]
    assert element["code"] == "INVALID_DATA" and element["details"]["api_name"] == "token"
    bad_event = api.post(
        "/actions/watch",
        json={"watch": [{"channel_id": "1", "events": ["Deals.all"], "notify_url": receiver.url}]},
    )
    assert bad_event.json()["watch"][0]["code"] == "INVALID_DATA"
    now = sandbox.now()
    too_far = (now + timedelta(days=8)).isoformat()
    enabled = _subscribe(api, receiver.url, ["Leads.all"], channel_expiry=too_far)
    expiry = enabled["details"]["events"][0]["channel_expiry"]
    from flask_zoho_sync.zoho.timefmt import parse_datetime

    delta = parse_datetime(expiry) - now
    assert timedelta(minutes=59) <= delta <= timedelta(minutes=61)  # capped to one hour
    six_days = (now + timedelta(days=6)).isoformat()
    kept = _subscribe(api, receiver.url, ["Leads.all"], channel_expiry=six_days)
    assert parse_datetime(kept["details"]["events"][0]["channel_expiry"]) - now > timedelta(days=5)


def test_api_writes_notify_in_one_batch_per_request(
    sandbox: SandboxHandle, api: Api, receiver: Receiver
) -> None:
    _subscribe(api, receiver.url, ["Leads.all"], return_affected_field_values=True)
    created = api.insert("Leads", {"Last_Name": "One"}, {"Last_Name": "Two"})
    ids = [e["details"]["id"] for e in created]
    api.put("/Leads", json={"data": [{"id": ids[0], "City": "Perth"}]})
    api.delete("/Leads", params={"ids": ids[1]})
    api.insert("Contacts", {"Last_Name": "Not watched"})
    deliveries = sandbox.notifications(wait=5)
    assert [d["operation"] for d in deliveries] == ["insert", "update", "delete"]
    assert all(d["status_code"] == 200 for d in deliveries)
    insert_payload = receiver.received[0]
    assert set(insert_payload) == {
        "server_time", "query_params", "module", "resource_uri", "ids", "affected_fields",
        "affected_values", "operation", "channel_id", "token",
    }  # fmt: skip
    assert insert_payload["affected_fields"] == []
    assert insert_payload["affected_values"] == [
        {"record_id": ids[0], "values": {"Last_Name": "One"}},
        {"record_id": ids[1], "values": {"Last_Name": "Two"}},
    ]
    assert insert_payload["ids"] == ids and insert_payload["module"] == "Leads"
    assert insert_payload["query_params"] == {"key": "abc"}
    assert (
        insert_payload["token"] == "verify-me" and insert_payload["channel_id"] == "1000000068001"
    )
    assert insert_payload["resource_uri"].endswith("/crm/v2/Leads")
    assert isinstance(insert_payload["server_time"], int) and insert_payload["server_time"] > 10**12
    assert receiver.received[1]["affected_fields"] == [{ids[0]: ["City"]}]
    deleted = receiver.received[2]
    assert deleted["ids"] == [ids[1]] and deleted["affected_fields"] == []
    assert "affected_values" not in deleted


def test_affected_values_carry_what_each_update_wrote(
    sandbox: SandboxHandle, api: Api, receiver: Receiver
) -> None:
    """With ``return_affected_field_values`` an update's payload names each record's changed
    fields and their values as that write left them, even when a later write changed them
    again before the notification went out; an insert's carries the values it wrote
    (recorded Zoho payloads); without the flag there are neither."""
    _subscribe(api, receiver.url, ["Leads.all"], return_affected_field_values=True)
    (created,) = api.insert("Leads", {"Last_Name": "Held", "City": "Perth"})
    record_id = created["details"]["id"]
    sandbox.update_record("Leads", record_id, {"City": "Hobart", "Phone": "+61 3 6000 0000"})
    api.put("/Leads", json={"data": [{"id": record_id, "City": "Darwin"}]})
    deliveries = sandbox.notifications(wait=5)
    assert [d["operation"] for d in deliveries] == ["insert", "update", "update"]
    by_user, by_api = receiver.received[1], receiver.received[2]
    assert by_user["affected_values"] == [
        {"record_id": record_id, "values": {"City": "Hobart", "Phone": "+61 3 6000 0000"}}
    ]
    assert by_user["affected_fields"] == [{record_id: ["City", "Phone"]}]
    assert by_api["affected_values"] == [{"record_id": record_id, "values": {"City": "Darwin"}}]
    assert receiver.received[0]["affected_values"] == [
        {"record_id": record_id, "values": {"Last_Name": "Held", "City": "Perth"}}
    ]
    assert receiver.received[0]["affected_fields"] == []

    sandbox.notifications(wait=0)
    api.request(
        "PATCH",
        "/actions/watch",
        json={"watch": [{"channel_id": "1000000068001", "return_affected_field_values": False}]},
    )
    receiver.received.clear()
    sandbox.update_record("Leads", record_id, {"City": "Cairns"})
    sandbox.notifications(wait=5)
    assert receiver.received[-1]["affected_fields"] == []
    assert "affected_values" not in receiver.received[-1]


def test_zoho_user_edits_notify_change_modified_by_and_cost_nothing(
    sandbox: SandboxHandle, api: Api, receiver: Receiver
) -> None:
    _subscribe(api, receiver.url, ["Contacts.create", "Contacts.edit", "Contacts.delete"])
    (created,) = api.insert("Contacts", {"Last_Name": "Shared"})
    record_id = created["details"]["id"]
    credits_before = sandbox.stats()["total_credits"]
    sandbox.advance_clock(60)
    edited = sandbox.update_record("Contacts", record_id, {"Title": "Chair"})
    assert edited["Modified_By"]["name"] == "Sales Rep"
    assert edited["Modified_Time"] != created["details"]["Modified_Time"]
    by_patricia = sandbox.update_record(
        "Contacts", record_id, {"Title": "Treasurer"}, user="Patricia Boyle"
    )
    assert by_patricia["Modified_By"]["name"] == "Patricia Boyle"
    sandbox.delete_record("Contacts", record_id)
    assert sandbox.stats()["total_credits"] == credits_before
    operations = [d["operation"] for d in sandbox.notifications(wait=5)]
    assert operations == ["insert", "update", "update", "delete"]
    fetched = api.get("/Contacts/deleted").json()["data"][0]
    assert fetched["deleted_by"]["name"] == "Sales Rep"


def test_expired_channel_gets_nothing_and_failures_are_logged(
    sandbox: SandboxHandle, api: Api
) -> None:
    dead = Receiver(status=500)
    try:
        _subscribe(api, dead.url, ["Leads.create"])
        sandbox.create_record("Leads", {"Last_Name": "Logged"})
        (delivery,) = sandbox.notifications(wait=5)
        assert delivery["status_code"] == 500
        sandbox.advance_clock(3601)  # default channel life is one hour
        sandbox.create_record("Leads", {"Last_Name": "Unheard"})
        assert len(sandbox.notifications(wait=5)) == 1
    finally:
        dead.stop()


def test_user_control_errors_are_zoho_elements(sandbox: SandboxHandle) -> None:
    from flask_zoho_sync.sandbox.handle import SandboxControlError

    with pytest.raises(SandboxControlError) as caught:
        sandbox.create_record("Leads", {"First_Name": "No last name"})
    assert caught.value.body["error"]["code"] == "MANDATORY_NOT_FOUND"
