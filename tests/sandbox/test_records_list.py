"""`GET /{module}`: fields rules, sorting, pagination walls, page tokens, 204/304, IMS."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import requests

from flask_zoho_sync.sandbox import SandboxHandle, SandboxServer
from flask_zoho_sync.zoho.timefmt import parse_datetime

from .conftest import ZOHO_DATETIME, Api


def test_fields_param_is_required(api: Api) -> None:
    response = api.get("/Leads")
    assert response.status_code == 400
    assert response.json() == {
        "code": "REQUIRED_PARAM_MISSING",
        "details": {"param_name": "fields"},
        "message": "One of the expected parameter is missing",
        "status": "error",
    }


def test_more_than_fifty_fields_is_limit_exceeded(api: Api) -> None:
    fields = ",".join(f"Field_{n}" for n in range(51))
    response = api.get("/Leads", params={"fields": fields})
    assert response.status_code == 400
    assert response.json()["code"] == "LIMIT_EXCEEDED"


def test_only_requested_fields_and_id_come_back(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.create_record("Leads", {"Last_Name": "Ng", "Email": "ng@example.test", "Company": "X"})
    body = api.get("/Leads", params={"fields": "Last_Name,Email,Modified_Time"}).json()
    (record,) = body["data"]
    assert set(record) == {"Last_Name", "Email", "Modified_Time", "id"}
    assert len(record["id"]) == 19 and record["id"].isdigit()
    assert ZOHO_DATETIME.match(record["Modified_Time"])
    assert set(body["info"]) == {
        "call", "per_page", "next_page_token", "count", "sort_by", "page",
        "previous_page_token", "page_token_expiry", "sort_order", "email", "more_records",
    }  # fmt: skip
    assert body["info"]["more_records"] is False and body["info"]["next_page_token"] is None


def test_no_records_is_204_with_empty_body(api: Api) -> None:
    response = api.get("/Contacts", params={"fields": "Last_Name"})
    assert response.status_code == 204
    assert response.content == b""


def test_unknown_module_and_wrong_path(api: Api) -> None:
    bad_module = api.get("/Deals", params={"fields": "Last_Name"})
    assert bad_module.status_code == 400 and bad_module.json()["code"] == "INVALID_MODULE"
    bad_path = api.get("/Leads/1234567890123456789/nothing/here")
    assert bad_path.status_code == 404 and bad_path.json()["code"] == "INVALID_URL_PATTERN"


def test_sort_orders(sandbox: SandboxHandle, api: Api) -> None:
    first = sandbox.create_record("Leads", {"Last_Name": "First"})
    sandbox.advance_clock(5)
    second = sandbox.create_record("Leads", {"Last_Name": "Second"})
    sandbox.advance_clock(5)
    sandbox.update_record("Leads", first["id"], {"City": "Perth"})

    def order(**params: str) -> list[str]:
        body = api.get("/Leads", params={"fields": "Last_Name", **params}).json()
        return [r["Last_Name"] for r in body["data"]]

    assert order() == ["Second", "First"]  # default: id desc
    assert order(sort_order="asc") == ["First", "Second"]
    assert order(sort_by="Modified_Time", sort_order="asc") == ["Second", "First"]
    assert order(sort_by="Created_Time", sort_order="desc") == ["Second", "First"]
    assert api.get("/Leads", params={"fields": "Last_Name", "sort_by": "Email"}).status_code == 400
    assert second["id"] > first["id"]


def test_converted_leads_are_hidden_unless_asked(sandbox: SandboxHandle, api: Api) -> None:
    kept = sandbox.create_record("Leads", {"Last_Name": "Kept"})
    gone = sandbox.create_record("Leads", {"Last_Name": "Gone", "Email": "gone@example.test"})
    converted = sandbox.convert_lead(gone["id"])

    def names(**params: str) -> set[str]:
        body = api.get("/Leads", params={"fields": "Last_Name,Converted__s", **params}).json()
        return {r["Last_Name"] for r in body["data"]}

    assert names() == {"Kept"}
    assert names(converted="true") == {"Gone"}
    assert names(converted="both") == {"Kept", "Gone"}
    assert api.get("/Leads/actions/count").json() == {"count": 1}
    contact = api.get(f"/Contacts/{converted['Contacts']['id']}").json()["data"][0]
    assert contact["Email"] == "gone@example.test"
    assert kept["id"] in {r["id"] for r in sandbox.records("Leads")}


def test_ids_param_and_single_record(sandbox: SandboxHandle, api: Api) -> None:
    a = sandbox.create_record("Contacts", {"Last_Name": "A"})
    sandbox.create_record("Contacts", {"Last_Name": "B"})
    body = api.get("/Contacts", params={"ids": a["id"], "fields": "Last_Name"}).json()
    assert [r["id"] for r in body["data"]] == [a["id"]]
    one = api.get(f"/Contacts/{a['id']}").json()["data"][0]
    assert one["Last_Name"] == "A" and "Mailing_City" in one and one["Owner"]["name"] == "Sales Rep"
    missing = api.get("/Contacts/4876876999999999999")
    assert (
        missing.status_code == 400
        and missing.json()["message"] == "the id given seems to be invalid"
    )
    too_many = ",".join(str(4876876000000000000 + n) for n in range(101))
    assert api.get("/Contacts", params={"ids": too_many}).json()["code"] == "LIMIT_EXCEEDED"


def test_page_stops_at_2000_and_page_token_walks_2500(sandbox: SandboxHandle, api: Api) -> None:
    ids = set(sandbox.generate_records("Leads", 2500))
    params = {"fields": "Last_Name,Email", "per_page": "200"}
    tenth = api.get("/Leads", params={**params, "page": "10"})
    assert tenth.status_code == 200 and tenth.json()["info"]["more_records"] is True
    wall = api.get("/Leads", params={**params, "page": "11"})
    assert wall.status_code == 400
    assert wall.json() == {
        "code": "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
        "details": {"limit": 2000},
        "message": "You can only get the first 2000 records without using page_token param",
        "status": "error",
    }
    seen: list[str] = []
    body = api.get("/Leads", params=params).json()
    assert body["info"]["next_page_token"]  # available from the first call
    assert ZOHO_DATETIME.match(body["info"]["page_token_expiry"])
    seen += [r["id"] for r in body["data"]]
    calls = 1
    while body["info"]["more_records"]:
        token = body["info"]["next_page_token"]
        body = api.get("/Leads", params={**params, "page_token": token}).json()
        seen += [r["id"] for r in body["data"]]
        calls += 1
    assert calls == 13
    assert len(seen) == 2500 and set(seen) == ids


def test_page_token_rules(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.generate_records("Contacts", 5)
    params = {"fields": "Last_Name", "per_page": "2"}
    token = api.get("/Contacts", params=params).json()["info"]["next_page_token"]
    both = api.get("/Contacts", params={**params, "page": "2", "page_token": token})
    assert both.json()["code"] == "AMBIGUITY_DURING_PROCESSING"
    other = api.get(
        "/Contacts", params={"fields": "Last_Name,Email", "per_page": "2", "page_token": token}
    )
    assert other.json()["code"] == "TOKEN_BOUND_DATA_MISMATCH"
    assert api.get("/Contacts", params={**params, "page_token": token}).status_code == 200
    sandbox.advance_clock(24 * 3600 + 1)
    fresh = api.refresh()["access_token"]
    expired = api.get("/Contacts", params={**params, "page_token": token}, token=fresh)
    assert expired.status_code == 400 and expired.json()["code"] == "EXPIRED_VALUE"


def test_page_token_walk_stops_at_the_pagination_cap() -> None:
    with SandboxServer(page_token_limit=300) as server, SandboxHandle(server.url) as handle:
        handle.generate_records("Leads", 500)
        api = Api(handle)
        params = {"fields": "Last_Name", "per_page": "200"}
        body = api.get("/Leads", params=params).json()
        body = api.get(
            "/Leads", params={**params, "page_token": body["info"]["next_page_token"]}
        ).json()
        assert body["info"]["count"] == 100 and body["info"]["more_records"] is True
        capped = api.get("/Leads", params={**params, "page_token": body["info"]["next_page_token"]})
        assert capped.status_code == 400 and capped.json()["code"] == "PAGINATION_LIMIT_EXCEEDED"
        api.close()


def test_if_modified_since_304_when_nothing_changed(sandbox: SandboxHandle, api: Api) -> None:
    record = sandbox.create_record("Leads", {"Last_Name": "Old"})
    later = parse_datetime(record["Modified_Time"]) + timedelta(seconds=1)
    response = api.get(
        "/Leads", params={"fields": "Last_Name"}, headers={"If-Modified-Since": later.isoformat()}
    )
    assert response.status_code == 304 and response.content == b""


@pytest.mark.parametrize("zone", ["Australia/Sydney", "America/Los_Angeles"])
def test_if_modified_since_is_inclusive_across_a_dst_change(
    sandbox: SandboxHandle, api: Api, zone: str
) -> None:
    sandbox.set_org(time_zone=zone)
    # Sydney moves from +10:00 to +11:00 at 02:00 local on 2026-10-04; LA from -07:00
    # to -08:00 on 2026-11-01. Start half an hour before each change.
    start = {
        "Australia/Sydney": "2026-10-04T01:30:00+10:00",
        "America/Los_Angeles": "2026-11-01T01:30:00-07:00",
    }[zone]
    sandbox.set_clock(start)
    before = sandbox.create_record("Leads", {"Last_Name": "Before"})
    sandbox.advance_clock(3600)
    after = sandbox.create_record("Leads", {"Last_Name": "After"})
    expected = {
        "Australia/Sydney": ("+10:00", "+11:00"),
        "America/Los_Angeles": ("-07:00", "-08:00"),
    }[zone]
    assert before["Modified_Time"].endswith(expected[0])
    assert after["Modified_Time"].endswith(expected[1])
    for value in (before["Modified_Time"], after["Modified_Time"]):
        assert ZOHO_DATETIME.match(value)

    def names(since: str) -> list[str]:
        response = api.get(
            "/Leads",
            params={
                "fields": "Last_Name,Modified_Time",
                "sort_by": "Modified_Time",
                "sort_order": "asc",
            },
            headers={"If-Modified-Since": since},
        )
        return (
            [] if response.status_code == 304 else [r["Last_Name"] for r in response.json()["data"]]
        )

    assert names(before["Modified_Time"]) == ["Before", "After"]
    assert names(after["Modified_Time"]) == ["After"]  # inclusive
    as_utc = parse_datetime(after["Modified_Time"]).isoformat()
    assert names(as_utc) == ["After"]  # any offset names the same instant
    one_more = (parse_datetime(after["Modified_Time"]) + timedelta(seconds=1)).isoformat()
    assert names(one_more) == []
    api_now = sandbox.now()
    assert isinstance(api_now, datetime) and api_now.utcoffset() == timedelta(
        hours=int(expected[1][:3])
    )


def test_count_endpoint(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.generate_records("Contacts", 3)
    assert api.get("/Contacts/actions/count").json() == {"count": 3}


def test_list_requires_token(sandbox: SandboxHandle) -> None:
    response = requests.get(
        f"{sandbox.url}/crm/v8/Leads", params={"fields": "Last_Name"}, timeout=10
    )
    assert response.status_code == 401
