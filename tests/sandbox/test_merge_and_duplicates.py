"""The sandbox merges records and refuses duplicate unique values as Zoho does
(docs/zoho-api-notes.md, "Merge records"; reference §2.6 and §4.5)."""

from __future__ import annotations

import requests

from flask_zoho_sync.sandbox import SandboxHandle

from .conftest import Api


def test_merge_keeps_the_master_takes_the_chosen_values_and_deletes_the_child(
    sandbox: SandboxHandle, api: Api
) -> None:
    master = sandbox.create_record(
        "Contacts", {"Last_Name": "Master", "Email": "m@example.test", "Phone": "111"}
    )
    child = sandbox.create_record(
        "Contacts", {"Last_Name": "Child", "Email": "c@example.test", "Phone": "222"}
    )
    body = {"merge": [{"data": [{"id": child["id"], "_fields": [{"api_name": "Email"}]}]}]}
    response = api.post(f"/Contacts/{master['id']}/actions/merge", json=body)
    assert response.status_code == 201, response.text
    (element,) = response.json()["merge"]
    assert element["code"] == "SUCCESS" and element["details"]["id"] == master["id"]
    merged = sandbox.record("Contacts", master["id"])
    assert merged["Email"] == "c@example.test"  # taken from the child
    assert merged["Phone"] == "111" and merged["Last_Name"] == "Master"  # the master's own
    assert child["id"] not in {r["id"] for r in sandbox.records("Contacts")}
    gone = api.get("/Contacts/deleted", params={"type": "all"}).json()["data"]
    assert [(d["id"], d["type"]) for d in gone] == [(child["id"], "recycle")]
    assert api.get(f"/Contacts/{master['id']}/actions/merge").status_code == 204


def test_a_refused_merge_changes_nothing(sandbox: SandboxHandle, api: Api) -> None:
    master = sandbox.create_record("Leads", {"Last_Name": "M", "Email": "m@example.test"})
    child = sandbox.create_record("Leads", {"Last_Name": "C"})
    missing = api.post(
        "/Leads/4876876999999999999/actions/merge",
        json={"merge": [{"data": [{"id": child["id"]}]}]},
    )
    assert missing.status_code == 400 and missing.json()["code"] == "INVALID_DATA"
    too_many = api.post(
        f"/Leads/{master['id']}/actions/merge",
        json={"merge": [{"data": [{"id": "1"}, {"id": "2"}, {"id": "3"}]}]},
    )
    assert too_many.json()["code"] == "LIMIT_EXCEEDED"
    no_data = api.post(f"/Leads/{master['id']}/actions/merge", json={"merge": [{}]})
    assert no_data.json()["code"] == "MANDATORY_NOT_FOUND"
    unknown_field = api.post(
        f"/Leads/{master['id']}/actions/merge",
        json={"merge": [{"data": [{"id": child["id"], "_fields": [{"api_name": "Nope"}]}]}]},
    )
    assert unknown_field.json()["code"] == "INVALID_DATA"
    assert {r["id"] for r in sandbox.records("Leads")} == {master["id"], child["id"]}
    assert sandbox.deleted("Leads") == []


def test_upsert_matching_one_record_meets_duplicate_data_on_another_unique_field(
    sandbox: SandboxHandle, api: Api
) -> None:
    """Upsert matches on Email, then the update would give the matched record a unique
    value another record holds: DUPLICATE_DATA naming that other record (reference §2.6)."""
    sandbox.add_custom_field("Contacts", api_name="Member_No__c", data_type="text", unique=True)
    by_email = sandbox.create_record("Contacts", {"Last_Name": "Mail", "Email": "h@example.test"})
    holder = sandbox.create_record("Contacts", {"Last_Name": "Holder", "Member_No__c": "m-1"})
    body = {
        "data": [{"Last_Name": "New", "Email": "h@example.test", "Member_No__c": "M-1"}],
        "duplicate_check_fields": ["Email"],
    }
    (element,) = api.post("/Contacts/upsert", json=body).json()["data"]
    assert element["code"] == "DUPLICATE_DATA"
    assert element["details"]["api_name"] == "Member_No__c"
    assert element["details"]["duplicate_record"]["id"] == holder["id"]
    assert sandbox.record("Contacts", by_email["id"])["Last_Name"] == "Mail"


def test_the_ui_merges_a_record_into_another(sandbox: SandboxHandle) -> None:
    master = sandbox.create_record("Contacts", {"Last_Name": "Keep", "Email": "k@example.test"})
    child = sandbox.create_record("Contacts", {"Last_Name": "Fold", "Email": "f@example.test"})
    page = requests.get(f"{sandbox.url}/", timeout=10).text
    assert "Merge into this" in page
    response = requests.post(
        f"{sandbox.url}/ui/Contacts/{master['id']}/merge",
        data={"child": child["id"], "fields": "Email"},
        timeout=10,
        allow_redirects=False,
    )
    assert response.status_code == 302
    assert sandbox.record("Contacts", master["id"])["Email"] == "f@example.test"
    assert [d["id"] for d in sandbox.deleted("Contacts")] == [child["id"]]


def test_with_email_duplicates_refused_an_insert_repeating_an_email_is_duplicate_data(
    sandbox: SandboxHandle, api: Api
) -> None:
    """Email's "Do not allow duplicate values" is an org's choice in Zoho; ticked, a create
    repeating an Email is refused naming the record that has it (an upsert listing only a
    custom unique field does not match on Email, so it meets the same refusal)."""
    first = sandbox.create_record("Leads", {"Last_Name": "First", "Email": "Same@example.test"})
    sandbox.refuse_duplicate_email("Leads")
    response = api.post(
        "/Leads", json={"data": [{"Last_Name": "Second", "Email": "same@example.test"}]}
    )
    (element,) = response.json()["data"]
    assert element["code"] == "DUPLICATE_DATA"
    assert element["details"]["api_name"] == "Email"
    assert element["details"]["duplicate_record"]["id"] == first["id"]
    sandbox.add_custom_field("Leads", api_name="Member_No__c", data_type="text", unique=True)
    upsert = {
        "data": [{"Last_Name": "Third", "Email": "same@example.test", "Member_No__c": "M-9"}],
        "duplicate_check_fields": ["Member_No__c"],
    }
    (refused,) = api.post("/Leads/upsert", json=upsert).json()["data"]
    assert refused["code"] == "DUPLICATE_DATA"
    assert refused["details"]["duplicate_record"]["id"] == first["id"]
    assert len(sandbox.records("Leads")) == 1
    sandbox.refuse_duplicate_email("Leads", refuse=False)
    assert (
        api.insert("Leads", {"Last_Name": "Again", "Email": "same@example.test"})[0]["code"]
        == "SUCCESS"
    )
