"""Insert, update, upsert, delete: per-record results in order, validation, duplicates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flask_zoho_sync.sandbox import SandboxHandle
from flask_zoho_sync.zoho.timefmt import parse_datetime

from .conftest import ZOHO_DATETIME, Api


@pytest.fixture
def contact_id_field(sandbox: SandboxHandle) -> None:
    for module in ("Leads", "Contacts"):
        sandbox.add_custom_field(
            module, api_name="Contact_Id", data_type="text", length=50, unique=True
        )


def test_single_insert_is_201_with_zoho_details(api: Api) -> None:
    response = api.post(
        "/Leads", json={"data": [{"Last_Name": "Patel", "Email": "p@example.test"}], "trigger": []}
    )
    assert response.status_code == 201
    (element,) = response.json()["data"]
    assert element["code"] == "SUCCESS" and element["status"] == "success"
    assert element["message"] == "record added"
    details = element["details"]
    assert {"id", "Modified_Time", "Modified_By", "Created_Time", "Created_By"} <= set(details)
    assert len(details["id"]) == 19 and details["id"].isdigit()
    assert ZOHO_DATETIME.match(details["Modified_Time"]) and details["Modified_Time"].endswith(
        ("-08:00", "-07:00")
    )
    assert details["Modified_By"] == {"name": "Sync Admin", "id": "4876876000000050001"}


def test_multi_insert_is_202_and_duplicate_email_is_allowed(api: Api) -> None:
    response = api.post(
        "/Contacts",
        json={
            "data": [
                {"Last_Name": "A", "Email": "same@example.test"},
                {"Last_Name": "B", "Email": "SAME@example.test"},
            ]
        },
    )
    assert response.status_code == 202
    assert [e["code"] for e in response.json()["data"]] == ["SUCCESS", "SUCCESS"]


def test_mixed_batch_reports_each_record_in_input_order(api: Api, contact_id_field: None) -> None:
    api.insert("Leads", {"Last_Name": "Existing", "Contact_Id": "C-1"})
    response = api.post(
        "/Leads",
        json={"data": [
            {"Last_Name": "Fine", "Contact_Id": "C-2"},
            {"First_Name": "No last name"},
            {"Last_Name": "Clash", "Contact_Id": "c-1"},
        ]},
    )  # fmt: skip
    assert response.status_code == 207
    first, second, third = response.json()["data"]
    assert first["code"] == "SUCCESS"
    assert second == {
        "code": "MANDATORY_NOT_FOUND",
        "details": {"api_name": "Last_Name", "json_path": "$.data[1].Last_Name"},
        "message": "required field not found",
        "status": "error",
    }
    assert third["code"] == "DUPLICATE_DATA" and third["status"] == "error"
    details = third["details"]
    assert details["api_name"] == "Contact_Id" and details["json_path"] == "$.data[2].Contact_Id"
    assert details["duplicate_record"]["module"]["api_name"] == "Leads"
    assert details["more_records"] is False


def test_all_failed_batch_is_400_with_data(api: Api) -> None:
    response = api.post("/Leads", json={"data": [{"Email": "x@example.test"}]})
    assert response.status_code == 400
    assert response.json()["data"][0]["code"] == "MANDATORY_NOT_FOUND"


def test_more_than_100_records_is_limit_exceeded(api: Api) -> None:
    response = api.post("/Leads", json={"data": [{"Last_Name": str(n)} for n in range(101)]})
    assert response.status_code == 400
    assert response.json()["code"] == "LIMIT_EXCEEDED"


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("First_Name", "x" * 41, {"maximum_length": 40}),
        ("Email", "not-an-email", {"expected_data_type": "email"}),
        ("Email", 42, {"expected_data_type": "email"}),
        ("No_of_Employees", "many", {"expected_data_type": "integer"}),
        ("Annual_Revenue", "lots", {"expected_data_type": "double"}),
        ("Email_Opt_Out", "yes", {"expected_data_type": "boolean"}),
        ("Lead_Status", "Sleeping", {"expected_data_type": "picklist"}),
        ("Phone", "1" * 31, {"maximum_length": 30}),
    ],
)
def test_type_and_length_validation(
    api: Api, field: str, value: Any, detail: dict[str, Any]
) -> None:
    response = api.post("/Leads", json={"data": [{"Last_Name": "V", field: value}]})
    assert response.status_code == 400
    element = response.json()["data"][0]
    assert element["code"] == "INVALID_DATA"
    assert element["details"]["api_name"] == field
    assert element["details"]["json_path"] == f"$.data[0].{field}"
    for key, expected in detail.items():
        assert element["details"][key] == expected


def test_custom_field_types_are_validated(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.add_custom_field("Contacts", api_name="Birthday", data_type="date")
    sandbox.add_custom_field("Contacts", api_name="Last_Seen", data_type="datetime")
    sandbox.add_custom_field(
        "Contacts",
        api_name="Interests",
        data_type="multiselectpicklist",
        pick_list_values=["Art", "Golf"],
    )
    bad = api.post(
        "/Contacts",
        json={"data": [
            {"Last_Name": "D", "Birthday": "15/01/1990"},
            {"Last_Name": "D", "Last_Seen": "2026-01-15T10:20:30"},
            {"Last_Name": "D", "Interests": ["Chess"]},
        ]},
    )  # fmt: skip
    assert [e["details"]["expected_data_type"] for e in bad.json()["data"]] == [
        "date", "datetime", "multiselectpicklist",
    ]  # fmt: skip
    good = api.insert(
        "Contacts",
        {
            "Last_Name": "D",
            "Birthday": "1990-01-15",
            "Last_Seen": "2026-01-15T10:20:30+05:30",
            "Interests": ["Golf"],
        },
    )
    record = api.get(f"/Contacts/{good[0]['details']['id']}").json()["data"][0]
    assert record["Birthday"] == "1990-01-15" and record["Interests"] == ["Golf"]
    assert parse_datetime(record["Last_Seen"]) == parse_datetime("2026-01-15T10:20:30+05:30")
    assert ZOHO_DATETIME.match(record["Last_Seen"])


def test_read_only_fields_are_ignored(api: Api) -> None:
    (element,) = api.insert(
        "Leads",
        {
            "Last_Name": "R",
            "id": "123",
            "Created_Time": "2000-01-01T00:00:00+00:00",
            "Full_Name": "Bogus",
        },
    )
    record = api.get(f"/Leads/{element['details']['id']}").json()["data"][0]
    assert record["id"] != "123" and record["Full_Name"] == "R"
    assert not record["Created_Time"].startswith("2000")


def test_update_rules(sandbox: SandboxHandle, api: Api) -> None:
    (created,) = api.insert("Leads", {"First_Name": "Ann", "Last_Name": "Lee"})
    record_id = created["details"]["id"]
    sandbox.advance_clock(30)
    ok = api.put("/Leads", json={"data": [{"id": record_id, "City": "Hobart"}]})
    assert ok.status_code == 200
    details = ok.json()["data"][0]["details"]
    assert ok.json()["data"][0]["message"] == "record updated"
    assert parse_datetime(details["Modified_Time"]) - parse_datetime(
        details["Created_Time"]
    ) >= timedelta(seconds=30)
    emptied = api.put(f"/Leads/{record_id}", json={"data": [{"Last_Name": ""}]})
    assert emptied.json()["data"][0]["code"] == "MANDATORY_NOT_FOUND"
    no_id = api.put("/Leads", json={"data": [{"City": "X"}]})
    assert no_id.json()["data"][0]["details"]["api_name"] == "id"
    unknown = api.put("/Leads", json={"data": [{"id": "4876876999999999999", "City": "X"}]})
    assert unknown.json()["data"][0]["message"] == "the id given seems to be invalid"


def test_if_unmodified_since_conflict_is_412(sandbox: SandboxHandle, api: Api) -> None:
    (created,) = api.insert("Leads", {"Last_Name": "Conflict"})
    seen = created["details"]["Modified_Time"]
    sandbox.advance_clock(10)
    sandbox.update_record("Leads", created["details"]["id"], {"City": "Darwin"})
    response = api.put(
        "/Leads",
        json={"data": [{"id": created["details"]["id"], "City": "Cairns"}]},
        headers={"If-Unmodified-Since": seen},
    )
    assert response.status_code == 412
    assert response.json()["data"][0]["code"] == "ALREADY_MODIFIED"
    current = sandbox.record("Leads", created["details"]["id"])
    ok = api.put(
        "/Leads",
        json={"data": [{"id": created["details"]["id"], "City": "Cairns"}]},
        headers={"If-Unmodified-Since": current["Modified_Time"]},
    )
    assert ok.status_code == 200


def test_upsert_matches_email_case_insensitively(api: Api) -> None:
    (created,) = api.insert("Contacts", {"Last_Name": "Old", "Email": "Kim@Example.test"})
    response = api.post(
        "/Contacts/upsert",
        json={
            "data": [
                {"Last_Name": "New", "Email": "kim@example.TEST"},
                {"Last_Name": "Fresh", "Email": "f@example.test"},
            ]
        },
    )
    assert response.status_code == 200  # upsert answers 200, mixed insert/update or not
    update, insert = response.json()["data"]
    assert update["action"] == "update" and update["duplicate_field"] == "Email"
    assert update["details"]["id"] == created["details"]["id"]
    assert insert["action"] == "insert" and insert["duplicate_field"] is None
    assert insert["message"] == "record added"


def test_upsert_with_unique_custom_field(api: Api, contact_id_field: None) -> None:
    (created,) = api.insert(
        "Leads", {"Last_Name": "Host", "Email": "host@example.test", "Contact_Id": "42"}
    )
    response = api.post(
        "/Leads/upsert",
        json={"data": [{"Last_Name": "Host", "Email": "changed@example.test", "Contact_Id": "42"}],
              "duplicate_check_fields": ["Contact_Id"]},
    )  # fmt: skip
    (element,) = response.json()["data"]
    assert element["action"] == "update" and element["duplicate_field"] == "Contact_Id"
    assert element["details"]["id"] == created["details"]["id"]
    bad = api.post(
        "/Leads/upsert",
        json={"data": [{"Last_Name": "X"}], "duplicate_check_fields": ["Last_Name"]},
    )
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_DATA"
    assert bad.json()["details"]["api_name"] == "Last_Name"


def test_upsert_email_match_that_clashes_on_a_unique_field(
    api: Api, contact_id_field: None
) -> None:
    api.insert("Leads", {"Last_Name": "A", "Email": "a@example.test", "Contact_Id": "1"})
    api.insert("Leads", {"Last_Name": "B", "Email": "b@example.test", "Contact_Id": "2"})
    response = api.post(
        "/Leads/upsert",
        json={"data": [{"Last_Name": "A", "Email": "a@example.test", "Contact_Id": "2"}],
              "duplicate_check_fields": ["Email"]},
    )  # fmt: skip
    assert response.json()["data"][0]["code"] == "DUPLICATE_DATA"


def test_delete_recycle_bin_and_deleted_listing(sandbox: SandboxHandle, api: Api) -> None:
    a, b = (e["details"]["id"] for e in api.insert("Leads", {"Last_Name": "A"}, {"Last_Name": "B"}))
    before = sandbox.now()
    sandbox.advance_clock(5)
    response = api.delete(
        "/Leads", params={"ids": f"{a},4876876999999999999", "wf_trigger": "false"}
    )
    assert response.status_code == 207
    ok, missing = response.json()["data"]
    assert ok == {
        "code": "SUCCESS",
        "details": {"id": a},
        "message": "record deleted",
        "status": "success",
    }
    assert missing["code"] == "INVALID_DATA" and missing["message"] == "record not deleted"
    again = api.delete("/Leads", params={"ids": a})
    assert again.status_code == 400 and again.json()["data"][0]["message"] == "record not deleted"
    assert api.delete("/Leads").json()["code"] == "REQUIRED_PARAM_MISSING"
    assert [r["id"] for r in sandbox.records("Leads")] == [b]

    deleted = api.get("/Leads/deleted", params={"type": "all"}).json()
    (entry,) = deleted["data"]
    assert set(entry) == {"deleted_by", "id", "display_name", "type", "created_by", "deleted_time"}
    assert entry["id"] == a and entry["type"] == "recycle" and entry["display_name"] == "A"
    assert ZOHO_DATETIME.match(entry["deleted_time"])
    assert set(deleted["info"]) == {"per_page", "count", "page", "more_records"}
    since_before = api.get("/Leads/deleted", headers={"If-Modified-Since": before.isoformat()})
    assert since_before.status_code == 200
    later = (parse_datetime(entry["deleted_time"]) + timedelta(seconds=1)).isoformat()
    assert api.get("/Leads/deleted", headers={"If-Modified-Since": later}).status_code == 304
    assert api.get("/Contacts/deleted").status_code == 204
    assert api.get("/Leads/deleted", params={"type": "permanent"}).status_code == 204
    assert (
        api.get("/Leads/deleted", params={"type": "bogus"}).json()["code"] == "PATTERN_NOT_MATCHED"
    )


def test_permanent_deletion_hides_who_and_what(sandbox: SandboxHandle, api: Api) -> None:
    record = sandbox.create_record("Contacts", {"Last_Name": "Purged"})
    sandbox.delete_record("Contacts", record["id"], permanent=True)
    (entry,) = api.get("/Contacts/deleted", params={"type": "permanent"}).json()["data"]
    assert (
        entry["deleted_by"] is None
        and entry["display_name"] is None
        and entry["created_by"] is None
    )


def test_delete_more_than_100_ids_is_limit_exceeded(api: Api) -> None:
    ids = ",".join(str(4876876000000000000 + n) for n in range(101))
    assert api.delete("/Leads", params={"ids": ids}).json()["code"] == "LIMIT_EXCEEDED"


def test_malformed_bodies(api: Api) -> None:
    not_json = api.post("/Leads", data="{nope", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["code"] == "INVALID_DATA"
    assert api.post("/Leads", json={"rows": []}).json()["code"] == "REQUIRED_PARAM_MISSING"


def test_several_problems_in_one_record_are_multiple_or_multi_errors(api: Api) -> None:
    response = api.post("/Leads", json={"data": [{"Email": "bad", "Phone": "9" * 40}]})
    (element,) = response.json()["data"]
    assert element["code"] == "MULTIPLE_OR_MULTI_ERRORS"
    codes = [e["code"] for e in element["details"]["errors"]]
    assert codes == ["MANDATORY_NOT_FOUND", "INVALID_DATA", "INVALID_DATA"]


def test_upsert_honours_if_unmodified_since(sandbox: SandboxHandle, api: Api) -> None:
    (created,) = api.insert("Leads", {"Last_Name": "U", "Email": "u@example.test"})
    sandbox.advance_clock(5)
    sandbox.update_record("Leads", created["details"]["id"], {"City": "Alice Springs"})
    response = api.post(
        "/Leads/upsert",
        json={"data": [{"Last_Name": "U", "Email": "u@example.test"}]},
        headers={"If-Unmodified-Since": created["details"]["Modified_Time"]},
    )
    assert response.status_code == 412
    assert response.json()["data"][0]["code"] == "ALREADY_MODIFIED"


def test_convert_lead_through_the_api(sandbox: SandboxHandle, api: Api) -> None:
    (created,) = api.insert("Leads", {"Last_Name": "Convert", "Designation": "CEO"})
    response = api.post(f"/Leads/{created['details']['id']}/actions/convert", json={"data": [{}]})
    assert response.status_code == 200
    details = response.json()["data"][0]["details"]
    contact = sandbox.record("Contacts", details["Contacts"]["id"])
    assert contact["Title"] == "CEO"
    lead = sandbox.record("Leads", created["details"]["id"])
    assert lead["Converted__s"] is True


def test_module_scoped_token_cannot_touch_other_modules(sandbox: SandboxHandle) -> None:
    limited = Api(sandbox, scope="ZohoCRM.modules.leads.READ")
    try:
        assert limited.get("/Leads", params={"fields": "Last_Name"}).status_code == 204
        refused = limited.get("/Contacts", params={"fields": "Last_Name"})
        assert refused.status_code == 401 and refused.json()["code"] == "OAUTH_SCOPE_MISMATCH"
        write = limited.post("/Leads", json={"data": [{"Last_Name": "X"}]})
        assert write.json()["code"] == "OAUTH_SCOPE_MISMATCH"
    finally:
        limited.close()
