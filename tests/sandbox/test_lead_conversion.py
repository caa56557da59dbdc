"""Lead conversion as Zoho's convert-lead page describes it (docs/zoho-api-notes.md, "Lead
conversion"): what the answer names, what the lead keeps, what listings and the recycle bin
show afterwards, what a second conversion gets, and what it costs."""

from __future__ import annotations

from flask_zoho_sync.sandbox import SandboxHandle

from .conftest import Api

DEAL = {
    "Deal_Name": "Zylker renewal",
    "Closing_Date": "2026-12-31",
    "Pipeline": "Standard (Standard)",
    "Stage": "Qualification",
}


def _lead(api: Api, **values: str) -> str:
    (created,) = api.insert("Leads", {"Last_Name": "Boyle", "First_Name": "Pat", **values})
    return str(created["details"]["id"])


def test_convert_answers_with_the_contact_account_and_deal_it_made(
    sandbox: SandboxHandle, api: Api
) -> None:
    lead_id = _lead(api, Company="Zylker", Email="pat@zylker.test")
    response = api.post(f"/Leads/{lead_id}/actions/convert", json={"data": [{"Deals": DEAL}]})
    assert response.status_code == 200
    (element,) = response.json()["data"]
    assert element["code"] == "SUCCESS" and element["status"] == "success"
    assert element["message"] == "The record has been converted successfully"
    details = element["details"]
    assert details["Contacts"]["name"] == "Pat Boyle"
    assert details["Accounts"]["name"] == "Zylker"
    assert details["Deals"]["name"] == "Zylker renewal"
    assert len({details[key]["id"] for key in ("Contacts", "Accounts", "Deals")}) == 3
    lead = api.get(f"/Leads/{lead_id}").json()["data"][0]
    assert lead["Converted__s"] is True and lead["$converted"] is True
    assert lead["Converted_Contact"] == details["Contacts"]
    assert lead["Converted_Account"] == details["Accounts"]
    assert lead["Converted_Deal"] == details["Deals"]
    assert lead["Converted_Date_Time"] == lead["Modified_Time"]
    contact = api.get(f"/Contacts/{details['Contacts']['id']}").json()["data"][0]
    assert contact["Email"] == "pat@zylker.test"
    assert contact["Account_Name"] == details["Accounts"]


def test_a_lead_without_company_or_deal_makes_only_a_contact(api: Api) -> None:
    lead_id = _lead(api)
    details = api.post(f"/Leads/{lead_id}/actions/convert", json={"data": [{}]}).json()["data"][0][
        "details"
    ]
    assert details["Accounts"] is None and details["Deals"] is None
    lead = api.get(f"/Leads/{lead_id}").json()["data"][0]
    assert lead["Converted_Account"] is None and lead["Converted_Deal"] is None


def test_a_named_existing_contact_is_used_instead_of_a_new_one(
    sandbox: SandboxHandle, api: Api
) -> None:
    existing = sandbox.create_record("Contacts", {"Last_Name": "Boyle"})
    before = len(sandbox.records("Contacts"))
    lead_id = _lead(api)
    body = {"data": [{"Contacts": {"id": existing["id"]}}]}
    details = api.post(f"/Leads/{lead_id}/actions/convert", json=body).json()["data"][0]["details"]
    assert details["Contacts"]["id"] == existing["id"]
    assert len(sandbox.records("Contacts")) == before


def test_second_conversion_and_unknown_ids_are_refused(api: Api) -> None:
    lead_id = _lead(api)
    assert api.post(f"/Leads/{lead_id}/actions/convert", json={"data": [{}]}).status_code == 200
    again = api.post(f"/Leads/{lead_id}/actions/convert", json={"data": [{}]})
    assert again.status_code == 400
    assert again.json()["code"] == "ID_ALREADY_CONVERTED"
    assert again.json()["details"] == {"resource_path_index": 1}
    unknown = api.post("/Leads/111111111111111111/actions/convert", json={"data": [{}]})
    assert unknown.json()["code"] == "INVALID_DATA"
    other = _lead(api)
    missing_stage = {k: v for k, v in DEAL.items() if k != "Stage"}
    refused = api.post(f"/Leads/{other}/actions/convert", json={"data": [{"Deals": missing_stage}]})
    assert refused.json()["code"] == "MANDATORY_NOT_FOUND"
    assert refused.json()["details"] == {"api_name": "Stage", "json_path": "$.data[0].Deals.Stage"}
    assert api.get(f"/Leads/{other}").json()["data"][0]["Converted__s"] is False


def test_a_converted_lead_leaves_the_default_listing_but_not_for_the_recycle_bin(
    sandbox: SandboxHandle, api: Api
) -> None:
    lead_id = _lead(api, Company="Zylker")
    before = api.get("/Leads", params={"fields": "Last_Name"}).json()["data"]
    assert [record["id"] for record in before] == [lead_id]
    sandbox.convert_lead(lead_id)
    assert api.get("/Leads", params={"fields": "Last_Name"}).status_code == 204
    listed = api.get(
        "/Leads", params={"fields": "Converted_Contact,Converted__s", "converted": "true"}
    ).json()["data"]
    assert [record["id"] for record in listed] == [lead_id]
    assert listed[0]["Converted_Contact"]["id"]
    assert api.get("/Leads/deleted").status_code == 204
    assert sandbox.deleted("Leads") == []


def test_conversion_costs_five_credits(sandbox: SandboxHandle, api: Api) -> None:
    lead_id = _lead(api)
    before = sandbox.stats()
    api.post(f"/Leads/{lead_id}/actions/convert", json={"data": [{}]})
    after = sandbox.stats()
    assert after["total_credits"] - before["total_credits"] == 5
