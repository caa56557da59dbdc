"""The meter counts every call and what it cost, as the sandbox's ledger does."""

from __future__ import annotations

import json
import threading
from typing import Any

import responses

from flask_zoho_sync.zoho.client import ZohoClient
from flask_zoho_sync.zoho.meter import CallRecord, UsageMeter

from .conftest import CRM, TOKEN_URL, token_reply

INVALID_TOKEN = {"code": "INVALID_TOKEN", "details": {}, "message": "invalid", "status": "error"}


def successes(request: Any) -> tuple[int, dict[str, str], str]:
    count = len(json.loads(request.body)["data"])
    data = [
        {"code": "SUCCESS", "details": {"id": str(n)}, "status": "success"} for n in range(count)
    ]
    return 200, {"Content-Type": "application/json"}, json.dumps({"data": data})


def test_upsert_of_100_records_costs_10_credits(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.add_callback(responses.POST, f"{CRM}/Leads/upsert", callback=successes)

    client.upsert("Leads", [{"Last_Name": str(n)} for n in range(100)])

    snapshot = client.meter.snapshot()
    assert snapshot["calls"] == {"POST /Leads/upsert": 1}
    assert snapshot["credits"] == {"POST /Leads/upsert": 10}


def test_calls_and_credits_are_counted_per_endpoint(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{CRM}/org", status=401, json=INVALID_TOKEN)
    rsps.post(TOKEN_URL, json=token_reply())
    rsps.get(f"{CRM}/org", json={"org": [{"id": "1"}]})
    rsps.get(f"{CRM}/Leads", json={"data": [{"id": "1"}], "info": {"more_records": False}})
    rsps.add_callback(responses.POST, f"{CRM}/Leads/upsert", callback=successes)

    client.org()
    list(client.iter_records("Leads", ["Email"]))
    client.upsert("Leads", [{"Last_Name": str(n)} for n in range(205)])

    snapshot = client.meter.snapshot()
    assert snapshot["calls"] == {
        "GET /org": 2,
        "POST /oauth/v2/token": 1,
        "GET /Leads": 1,
        "POST /Leads/upsert": 3,
    }
    assert snapshot["credits"] == {
        "GET /org": 1,  # the rejected (401) call is not charged
        "POST /oauth/v2/token": 0,
        "GET /Leads": 1,
        "POST /Leads/upsert": 10 + 10 + 1,
    }
    assert snapshot["total_calls"] == 7
    assert snapshot["total_credits"] == 23


def test_remaining_credits_header_is_recorded(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{CRM}/org", json={"org": [{"id": "1"}]}, headers={"X-API-CREDITS-REMAINING": "812"})

    client.org()

    assert client.meter.credits_remaining == 812
    assert client.meter.snapshot()["credits_remaining"] == 812


def test_listener_hears_every_call(manager: Any, rsps: responses.RequestsMock) -> None:
    heard: list[CallRecord] = []
    client = ZohoClient(manager, meter=UsageMeter(listener=heard.append), sleep=lambda _s: None)
    rsps.get(f"{CRM}/org", json={"org": [{"id": "1"}]})

    client.org()

    (call,) = heard
    assert (call.endpoint, call.method, call.status, call.credits) == ("GET /org", "GET", 200, 1)
    assert call.records == 0
    assert call.duration_s >= 0
    assert call.at.tzinfo is not None


def test_a_failing_listener_does_not_fail_the_call(
    manager: Any, rsps: responses.RequestsMock
) -> None:
    def broken(_call: CallRecord) -> None:
        raise RuntimeError("usage table is locked")

    client = ZohoClient(manager, meter=UsageMeter(listener=broken), sleep=lambda _s: None)
    rsps.get(f"{CRM}/org", json={"org": [{"id": "1"}]})

    assert client.org()["id"] == "1"


def test_reset_clears_the_counts() -> None:
    meter = UsageMeter()
    meter.record("GET", "/crm/v8/Leads", status=200)

    meter.reset()

    assert meter.snapshot()["total_calls"] == 0


def test_meter_is_thread_safe() -> None:
    meter = UsageMeter()

    def hammer() -> None:
        for _ in range(1000):
            meter.record("GET", "/crm/v8/Leads", status=200)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert meter.snapshot()["calls"] == {"GET /Leads": 8000}
    assert meter.snapshot()["credits"] == {"GET /Leads": 8000}
