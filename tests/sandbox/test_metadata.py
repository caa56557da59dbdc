"""Fields metadata, org and current user, as the client and the official SDK read them."""

from __future__ import annotations

from flask_zoho_sync.sandbox import SandboxHandle

from .conftest import Api

FIELD_KEYS = {
    "api_name", "field_label", "display_label", "data_type", "json_type", "length",
    "system_mandatory", "custom_field", "read_only", "unique", "operation_type",
    "pick_list_values", "id",
}  # fmt: skip
LEADS = {
    "First_Name", "Last_Name", "Full_Name", "Email", "Secondary_Email", "Phone", "Mobile", "Fax",
    "Website", "Salutation", "Description", "Email_Opt_Out", "Owner", "Created_Time",
    "Modified_Time", "Created_By", "Modified_By", "Lead_Source", "Company", "Designation",
    "Street", "City", "State", "Zip_Code", "Country", "Lead_Status", "Industry",
    "No_of_Employees", "Annual_Revenue", "Converted__s",
}  # fmt: skip
CONTACTS_ONLY = {
    "Account_Name", "Title", "Department", "Date_of_Birth", "Mailing_Street", "Mailing_City",
    "Mailing_State", "Mailing_Zip", "Mailing_Country", "Home_Phone", "Other_Phone", "Assistant",
    "Asst_Phone",
}  # fmt: skip


def _fields(api: Api, module: str) -> dict[str, dict]:
    response = api.get("/settings/fields", params={"module": module})
    assert response.status_code == 200
    return {f["api_name"]: f for f in response.json()["fields"]}


def test_standard_fields_of_both_modules(api: Api) -> None:
    leads = _fields(api, "Leads")
    assert set(leads) >= LEADS
    contacts = _fields(api, "Contacts")
    assert set(contacts) >= CONTACTS_ONLY and "Company" not in contacts
    for field in [*leads.values(), *contacts.values()]:
        assert set(field) >= FIELD_KEYS, field["api_name"]
        assert set(field["operation_type"]) == {
            "web_create",
            "web_update",
            "api_create",
            "api_update",
        }
        assert len(field["id"]) == 19
    assert leads["Last_Name"]["system_mandatory"] is True and leads["Last_Name"]["length"] == 80
    assert leads["Company"]["system_mandatory"] is False
    assert leads["Email"]["unique"] == {"case_sensitive": False}
    assert leads["Full_Name"]["operation_type"]["api_create"] is False
    assert leads["Modified_Time"]["operation_type"]["api_update"] is False
    assert leads["Designation"]["field_label"] == "Title"
    assert contacts["Account_Name"]["data_type"] == "lookup"
    assert contacts["Account_Name"]["json_type"] == "jsonobject"
    statuses = [p["actual_value"] for p in leads["Lead_Status"]["pick_list_values"]]
    assert "Contacted" in statuses
    assert set(leads["Lead_Status"]["pick_list_values"][0]) >= {"display_value", "actual_value"}


def test_custom_fields_appear_in_metadata(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.add_custom_field("Leads", api_name="Newsletter", data_type="boolean")
    sandbox.add_custom_field(
        "Leads", api_name="Contact_Id", data_type="text", length=50, unique=True
    )
    sandbox.add_custom_field(
        "Leads",
        api_name="Membership_Level",
        data_type="picklist",
        pick_list_values=["Bronze", "Gold"],
    )
    leads = _fields(api, "Leads")
    assert (
        leads["Newsletter"]["custom_field"] is True
        and leads["Newsletter"]["data_type"] == "boolean"
    )
    assert leads["Contact_Id"]["unique"] == {"case_sensitive": False}
    assert leads["Contact_Id"]["length"] == 50
    values = [p["actual_value"] for p in leads["Membership_Level"]["pick_list_values"]]
    assert values == ["-None-", "Bronze", "Gold"]
    assert "Newsletter" not in _fields(api, "Contacts")


def test_bad_custom_field_definitions_are_refused(sandbox: SandboxHandle) -> None:
    import pytest

    from flask_zoho_sync.sandbox.handle import SandboxControlError

    with pytest.raises(SandboxControlError):
        sandbox.add_custom_field("Leads", api_name="Flag", data_type="boolean", unique=True)
    with pytest.raises(SandboxControlError):
        sandbox.add_custom_field("Leads", api_name="Email", data_type="email")


def test_fields_needs_a_valid_module(api: Api) -> None:
    assert api.get("/settings/fields").json()["code"] == "REQUIRED_PARAM_MISSING"
    assert (
        api.get("/settings/fields", params={"module": "Deals"}).json()["code"] == "INVALID_MODULE"
    )


def test_org_time_zone_is_configurable(sandbox: SandboxHandle, api: Api) -> None:
    (org,) = api.get("/org").json()["org"]
    assert org["time_zone"] == "America/Los_Angeles"
    assert {
        "id",
        "company_name",
        "domain_name",
        "zgid",
        "currency",
        "iso_code",
        "type",
        "license_details",
    } <= set(org)
    sandbox.set_org(time_zone="Australia/Sydney")
    assert api.get("/org").json()["org"][0]["time_zone"] == "Australia/Sydney"


def test_current_user(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.set_org(time_zone="Asia/Kolkata")
    body = api.get("/users", params={"type": "CurrentUser"}).json()
    (user,) = body["users"]
    assert user["email"] == "sync.admin@zylker.example" and user["full_name"] == "Sync Admin"
    assert user["time_zone"] == "Asia/Kolkata" and user["offset"] == 19_800_000
    assert user["status"] == "active" and user["role"]["name"] and user["profile"]["name"]
    everyone = api.get("/users", params={"type": "AllUsers"}).json()["users"]
    assert {u["full_name"] for u in everyone} >= {"Sync Admin", "Sales Rep"}
