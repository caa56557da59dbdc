"""Every endpoint answers with Zoho's status, headers, keys and JSON types (issue 24).

The expected shapes come from Zoho's own answers: recorded replies quoted in open-source
clients (a full Leads record, an upsert's 200 with ``X-ACCESSTOKEN-RESET``, insert
notifications with ``affected_values``) and the documented samples of the v7/v8 pages (the
Leads fields sample, users, org, watch details and disable, bulk job details, search). Each
test names what a client would trip over if the sandbox answered otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from flask_zoho_sync.sandbox import SandboxHandle

from .conftest import ZOHO_DATETIME, Api
from .test_bulk import bulk, poll, start_read, start_write
from .test_notifications import Receiver

JSON = "application/json;charset=UTF-8"
NULL = type(None)


def assert_shape(body: dict[str, Any], expected: dict[str, type | tuple[type, ...]]) -> None:
    """Every expected key present with a value of the expected JSON type."""
    missing = sorted(set(expected) - set(body))
    assert not missing, f"missing keys {missing}"
    wrong = {
        key: type(body[key]).__name__
        for key, kind in expected.items()
        if not isinstance(body[key], kind) or (kind is int and isinstance(body[key], bool))
    }
    assert not wrong, f"keys of the wrong JSON type: {wrong}"


# ---------------------------------------------------------------------- full record
#: A Leads record fetched on its own: the ``$``-keys of recorded answers, with their types.
RECORD_PROPERTIES: dict[str, type | tuple[type, ...]] = {
    "$approval_state": str,
    "$editable": bool,
    "$locked_for_me": bool,
    "$layout_id": dict,
    "$approval": dict,
    "$review_process": dict,
    "$process_flow": bool,
    "$orchestration": bool,
    "$pathfinder": bool,
    "$in_merge": bool,
    "$currency_symbol": str,
    "$sharing_permission": str,
    "$zia_owner_assignment": str,
    "$stop_processing": bool,
    "$field_states": NULL,
    "$review": NULL,
    "$converted_detail": dict,
    "$converted": bool,
    "$data_source_details": dict,
}
#: Standard Leads fields of a recorded record and the Leads fields sample, fresh from a write
#: that set only the name: null where Zoho sends null, arrays and objects where it sends them.
LEAD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "Rating": NULL,
    "Skype_ID": NULL,
    "Twitter": NULL,
    "Fax": NULL,
    "Tag": list,
    "Unsubscribed_Mode": NULL,
    "Unsubscribed_Time": NULL,
    "Last_Activity_Time": NULL,
    "Locked__s": bool,
    "Record_Image": NULL,
    "Record_Status__s": str,
    "Data_Source": str,
    "Layout": dict,
    "Converted__s": bool,
    "Converted_Contact": NULL,
    "Email_Opt_Out": bool,
    "Owner": dict,
    "Created_By": dict,
    "Modified_By": dict,
    "Created_Time": str,
    "Modified_Time": str,
    "id": str,
}


def test_a_record_fetched_on_its_own_has_zohos_keys_and_types(api: Api) -> None:
    (created,) = api.insert("Leads", {"Last_Name": "Whole", "Email": "whole@example.test"})
    response = api.get(f"/Leads/{created['details']['id']}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON
    (record,) = response.json()["data"]
    assert_shape(record, {**RECORD_PROPERTIES, **LEAD_FIELDS})
    assert record["$approval_state"] == "approved" and record["$editable"] is True
    assert set(record["$layout_id"]) == {"display_label", "name", "id"}
    assert set(record["$approval"]) >= {"delegate", "approve", "reject", "resubmit"}
    assert record["Record_Status__s"] == "Available" and record["Tag"] == []
    assert set(record["Owner"]) == {"name", "id", "email"}
    assert ZOHO_DATETIME.match(record["Modified_Time"])


def test_a_contact_has_no_lead_only_keys_and_the_same_properties(api: Api) -> None:
    (created,) = api.insert("Contacts", {"Last_Name": "Contact"})
    (record,) = api.get(f"/Contacts/{created['details']['id']}").json()["data"]
    lead_only = ("$converted_detail", "$converted")
    properties = {k: v for k, v in RECORD_PROPERTIES.items() if k not in lead_only}
    assert_shape(record, properties)
    assert "$converted" not in record and "Company" not in record
    assert_shape(record, {"Account_Name": NULL, "Reporting_To": NULL, "Other_City": NULL})


def test_a_list_gives_only_the_fields_asked_for(api: Api) -> None:
    api.insert("Leads", {"Last_Name": "Listed"})
    (record,) = api.get("/Leads", params={"fields": "Last_Name,Tag"}).json()["data"]
    assert set(record) == {"Last_Name", "Tag", "id"}


def test_tags_are_written_as_names_and_read_back_as_objects(api: Api) -> None:
    (created,) = api.insert("Leads", {"Last_Name": "Tagged", "Tag": [{"name": "vip"}]})
    assert created["status"] == "success"
    (record,) = api.get(f"/Leads/{created['details']['id']}").json()["data"]
    (tag,) = record["Tag"]
    assert tag["name"] == "vip" and isinstance(tag["id"], str)
    refused = api.post("/Leads", json={"data": [{"Last_Name": "Bad", "Tag": "vip"}]})
    assert refused.json()["data"][0]["details"]["expected_data_type"] == "jsonarray"


def test_a_converted_lead_names_its_contact(api: Api, sandbox: SandboxHandle) -> None:
    (created,) = api.insert("Leads", {"Last_Name": "Turning"})
    lead_id = created["details"]["id"]
    converted = api.post(f"/Leads/{lead_id}/actions/convert", json={"data": [{}]})
    contact = converted.json()["data"][0]["details"]["Contacts"]
    (record,) = api.get(f"/Leads/{lead_id}").json()["data"]
    assert record["Converted__s"] is True
    assert record["Converted_Contact"] == {"name": contact["name"], "id": contact["id"]}
    assert record["$converted"] is True


# ------------------------------------------------------------------------- writes
@pytest.mark.parametrize("phone", ["call me maybe", "12ab", "-"])
def test_a_phone_made_of_words_is_refused_as_zoho_refuses_it(api: Api, phone: str) -> None:
    response = api.post("/Leads", json={"data": [{"Last_Name": "Boyle", "Phone": phone}]})
    assert response.status_code == 400
    (element,) = response.json()["data"]
    assert (element["code"], element["message"], element["status"]) == (
        "INVALID_DATA",
        "invalid data",
        "error",
    )
    assert element["details"]["expected_data_type"] == "phone"
    assert element["details"]["api_name"] == "Phone"


@pytest.mark.parametrize(
    "phone", ["+61 2 9000 1234", "(02) 9000-1234", "555.0100", "+1 555 0100 ext. 12", "1"]
)
def test_written_phone_numbers_are_kept_as_sent(api: Api, phone: str) -> None:
    (created,) = api.insert("Leads", {"Last_Name": "Boyle", "Mobile": phone})
    (record,) = api.get(f"/Leads/{created['details']['id']}").json()["data"]
    assert record["Mobile"] == phone


def test_upsert_answers_200_insert_201_or_202(api: Api) -> None:
    one = api.post("/Leads", json={"data": [{"Last_Name": "A"}]})
    two = api.post("/Leads", json={"data": [{"Last_Name": "B"}, {"Last_Name": "C"}]})
    assert (one.status_code, two.status_code) == (201, 202)
    body = {"data": [{"Last_Name": "D", "Email": "d@example.test"}]}
    inserted = api.post("/Leads/upsert", json=body)
    updated = api.post("/Leads/upsert", json=body)
    assert (inserted.status_code, updated.status_code) == (200, 200)
    assert inserted.json()["data"][0]["action"] == "insert"
    assert updated.json()["data"][0]["action"] == "update"


# ------------------------------------------------------------------------- headers
def test_answers_name_when_the_access_token_resets(api: Api, sandbox: SandboxHandle) -> None:
    response = api.get("/org")
    reset = response.headers["X-ACCESSTOKEN-RESET"]
    assert ZOHO_DATETIME.match(reset)
    left = datetime.fromisoformat(reset) - sandbox.now()
    assert 0 < left.total_seconds() <= 3600
    assert response.headers["Content-Disposition"] == "attachment; filename=response.json"
    refused = api.get("/org", token="not-a-token")
    assert refused.status_code == 401 and "X-ACCESSTOKEN-RESET" not in refused.headers


def test_an_empty_answer_is_a_bodiless_204_labelled_json(api: Api) -> None:
    response = api.get("/Leads", params={"fields": "Last_Name"})
    assert response.status_code == 204 and response.content == b""
    assert response.headers["Content-Type"] == JSON
    since = api.get(
        "/Leads",
        params={"fields": "Last_Name"},
        headers={"If-Modified-Since": "2030-01-01T00:00:00+00:00"},
    )
    assert since.status_code == 304 and "Content-Type" not in since.headers


# ------------------------------------------------------------------------ metadata
#: Keys of every element of the Leads fields sample, with their JSON types.
FIELD_META: dict[str, type | tuple[type, ...]] = {
    "api_name": str,
    "field_label": str,
    "display_label": str,
    "data_type": str,
    "json_type": str,
    "type": str,
    "ui_type": int,
    "length": int,
    "view_type": dict,
    "profiles": list,
    "searchable": bool,
    "sortable": bool,
    "filterable": bool,
    "lookup": dict,
    "unique": dict,
    "currency": dict,
    "formula": dict,
    "auto_number": dict,
    "multiselectlookup": dict,
    "multi_module_lookup": dict,
    "rollup_summary": dict,
    "email_parser": dict,
    "operation_type": dict,
    "layout_associations": list,
    "pick_list_values": list,
    "system_mandatory": bool,
    "custom_field": bool,
    "read_only": bool,
    "field_read_only": bool,
    "visible": bool,
    "webhook": bool,
    "mass_update": bool,
    "display_type": int,
    "id": str,
    "created_source": str,
    "tooltip": NULL,
    "external": NULL,
    "crypt": NULL,
    "associated_module": NULL,
}


def _fields(api: Api, module: str) -> dict[str, dict[str, Any]]:
    response = api.get("/settings/fields", params={"module": module})
    assert response.status_code == 200
    return {f["api_name"]: f for f in response.json()["fields"]}


@pytest.mark.parametrize("module", ["Leads", "Contacts"])
def test_every_field_has_zohos_metadata_keys_and_types(api: Api, module: str) -> None:
    for name, meta in _fields(api, module).items():
        try:
            assert_shape(meta, FIELD_META)
        except AssertionError as error:
            raise AssertionError(f"{module}.{name}: {error}") from None
        assert set(meta["view_type"]) == {"view", "edit", "quick_create", "create"}
        assert all(set(p) == {"permission_type", "name", "id"} for p in meta["profiles"])


def test_field_metadata_matches_the_leads_sample(api: Api) -> None:
    leads = _fields(api, "Leads")
    assert (leads["Fax"]["data_type"], leads["Fax"]["length"]) == ("text", 30)
    assert leads["Owner"]["lookup"] == {} and leads["Owner"]["length"] == 120
    assert leads["Email_Opt_Out"]["length"] == 5 and leads["Created_Time"]["length"] == 120
    assert leads["Tag"]["data_type"] == "text" and leads["Tag"]["json_type"] == "jsonarray"
    assert leads["Record_Image"]["data_type"] == "profileimage"
    assert leads["Converted_Contact"]["lookup"]["module"]["api_name"] == "Contacts"
    assert leads["Locked__s"]["read_only"] is True
    assert leads["Locked__s"]["operation_type"]["api_update"] is False
    assert leads["Annual_Revenue"]["currency"] == {"rounding_option": "normal", "precision": 2}
    assert leads["Description"]["textarea"] == {"type": "large"}
    assert (leads["Last_Name"]["ui_type"], leads["Email"]["ui_type"]) == (127, 25)
    assert leads["Email"]["quick_sequence_number"] == "4"
    assert leads["Email"]["view_type"]["quick_create"] is True
    assert "quick_sequence_number" not in leads["Company"]
    ratings = [p["actual_value"] for p in leads["Rating"]["pick_list_values"]]
    assert ratings[0] == "-None-" and "Acquired" in ratings
    assert set(leads["Rating"]["pick_list_values"][0]) == {
        "display_value", "sequence_number", "reference_value", "colour_code", "actual_value",
        "id", "type",
    }  # fmt: skip
    assert "Website" in leads and "Website" not in _fields(api, "Contacts")


def test_read_only_fields_are_not_written(api: Api) -> None:
    (created,) = api.insert("Leads", {"Last_Name": "Plain", "Locked__s": True, "Rating": "Active"})
    (record,) = api.get(f"/Leads/{created['details']['id']}").json()["data"]
    assert record["Locked__s"] is False and record["Rating"] == "Active"


def test_the_current_user_and_the_org_have_zohos_keys(api: Api) -> None:
    (user,) = api.get("/users", params={"type": "CurrentUser"}).json()["users"]
    assert_shape(
        user,
        {
            "id": str,
            "zuid": str,
            "created_time": str,
            "Modified_Time": str,
            "Modified_By": dict,
            "created_by": dict,
            "role": dict,
            "profile": dict,
            "offset": int,
            "confirm": bool,
            "status": str,
            "type__s": str,
            "customize_info": dict,
            "theme": dict,
            "name_format__s": str,
            "sort_order_preference__s": str,
            "Isonline": bool,
            "microsoft": bool,
            "personal_account": bool,
            "default_tab_group": str,
            "phone": str,
            "dob": str,
            "country": str,
            "state": str,
            "$current_shift": NULL,
        },
    )
    assert set(user["Modified_By"]) == {"name", "id"}
    assert ZOHO_DATETIME.match(user["created_time"])
    (org,) = api.get("/org").json()["org"]
    assert_shape(
        org,
        {
            "created_time": str,
            "license_details": dict,
            "hierarchy_preferences": dict,
            "mc_status": bool,
            "employee_count": str,
            "zgid": str,
            "primary_zuid": str,
            "privacy_settings": bool,
        },
    )
    assert ZOHO_DATETIME.match(org["created_time"])


# ------------------------------------------------------------------------ watch
@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def _watch(api: Api, url: str, **extra: Any) -> None:
    item = {
        "channel_id": "1000000068001",
        "events": ["Leads.all", "Contacts.create"],
        "notify_url": url,
        "token": "verify-me",
        **extra,
    }
    response = api.post("/actions/watch", json={"watch": [item]})
    assert response.status_code == 201, response.text


def test_watch_details_carry_fields_and_the_notification_condition(
    api: Api, receiver: Receiver
) -> None:
    condition = {
        "type": "field_selection",
        "module": {"api_name": "Leads"},
        "field_selection": {
            "group_operator": "or",
            "group": [{"field": {"api_name": "Email"}}, {"field": {"api_name": "Phone"}}],
        },
    }
    _watch(api, receiver.url, notification_condition=[condition])
    details = {d["resource_name"]: d for d in api.get("/actions/watch").json()["watch"]}
    leads, contacts = details["Leads"], details["Contacts"]
    assert leads["fields"] is None and contacts["notification_condition"] is None
    (kept,) = leads["notification_condition"]
    assert kept["type"] == "field_selection" and kept["module"]["api_name"] == "Leads"
    assert kept["module"]["id"] == leads["resource_id"]
    email, phone = kept["field_selection"]["group"]
    assert email == {
        "field": {"api_name": "Email", "id": email["field"]["id"]},
        "group_operator": None,
        "group": None,
    }
    assert phone["field"]["api_name"] == "Phone"
    bad = {**condition, "module": {"api_name": "Deals"}}
    item = {"channel_id": "2", "events": ["Leads.all"], "notify_url": receiver.url}
    refused = api.post(
        "/actions/watch", json={"watch": [{**item, "notification_condition": [bad]}]}
    )
    assert refused.status_code == 400
    assert refused.json()["watch"][0]["code"] == "INVALID_DATA"


def test_disabling_answers_one_element_per_watched_module(api: Api, receiver: Receiver) -> None:
    _watch(api, receiver.url)
    response = api.delete("/actions/watch", params={"channel_ids": "1000000068001"})
    assert response.status_code == 200
    elements = response.json()["watch"]
    assert len(elements) == 2
    for element in elements:
        assert element["code"] == "SUCCESS" and element["status"] == "success"
        assert element["message"] == "Successfully un-subscribed from actions-watch"
        assert set(element["details"]) == {"resource_uri", "resource_id", "channel_id"}
        assert element["details"]["channel_id"] == "1000000068001"
    uris = sorted(e["details"]["resource_uri"].rsplit("/", 1)[1] for e in elements)
    assert uris == ["Contacts", "Leads"]


# ---------------------------------------------------------------------------- bulk
def test_a_read_jobs_query_is_echoed_normalised(api: Api) -> None:
    job_id = start_read(
        api,
        {
            "module": {"api_name": "Leads"},
            "fields": ["Last_Name", "Last_Name", "id"],
            "criteria": {"field": {"api_name": "Last_Name"}, "comparator": "equal", "value": "X"},
        },
    )
    (detail,) = bulk(api, "GET", f"/read/{job_id}").json()["data"]
    query = detail["query"]
    assert query["module"] == {"id": query["module"]["id"], "api_name": "Leads"}
    assert isinstance(query["module"]["id"], str) and query["page"] == 1
    assert query["fields"] == ["Last_Name"]
    assert query["criteria"]["field"]["api_name"] == "Last_Name"
    assert isinstance(query["criteria"]["field"]["id"], str)
    bare = start_read(api, {"module": {"api_name": "Contacts"}})
    (plain,) = bulk(api, "GET", f"/read/{bare}").json()["data"]
    assert set(plain["query"]) == {"module", "page"}


def test_a_write_jobs_resource_carries_a_code(api: Api) -> None:
    mappings = [{"api_name": "Last_Name", "index": 0}]
    job_id = start_write(api, "Last_Name\nAda\n", resource={"field_mappings": mappings})
    codes = [(d["status"], d["resource"][0]["code"]) for d in poll(api, "write", job_id)]
    assert codes == [("IN PROGRESS", "ADDED"), ("COMPLETED", "SUCCESS")]


# -------------------------------------------------------------------------- search
@pytest.fixture
def searchable(api: Api) -> dict[str, str]:
    mia = {"Last_Name": "Burns", "First_Name": "Mia", "Email": "mia@example.test"}
    mia.update({"Phone": "+61 2 9000 1234", "No_of_Employees": 40})
    max_ = {"Last_Name": "Burns,B", "First_Name": "Max", "Email": "max@other.test"}
    max_["No_of_Employees"] = 5
    stone = {"Last_Name": "Stone", "Email": "stone@example.test"}
    stone["Secondary_Email"] = "MIA@second.test"
    results = api.insert("Leads", mia, max_, stone)
    return {r: e["details"]["id"] for r, e in zip(("mia", "max", "stone"), results, strict=True)}


def _found(api: Api, **params: str) -> list[str]:
    response = api.get("/Leads/search", params=params)
    if response.status_code == 204:
        assert response.content == b""
        return []
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["info"]) == {
        "per_page",
        "count",
        "sort_by",
        "page",
        "sort_order",
        "more_records",
    }
    return [record["id"] for record in body["data"]]


def test_search_by_email_phone_and_word(api: Api, searchable: dict[str, str]) -> None:
    assert _found(api, email="MIA@example.test") == [searchable["mia"]]
    assert _found(api, email="mia@second.test") == [searchable["stone"]]  # any email field
    assert _found(api, phone="+61 2 9000 1234") == [searchable["mia"]]
    assert sorted(_found(api, word="burns")) == sorted([searchable["mia"], searchable["max"]])
    assert _found(api, word="nobody") == []


def test_search_by_criteria(api: Api, searchable: dict[str, str]) -> None:
    assert _found(api, criteria="(Last_Name:equals:Burns\\,B)") == [searchable["max"]]
    both = _found(api, criteria="((Last_Name:starts_with:burns)and(First_Name:equals:Mia))")
    assert both == [searchable["mia"]]
    either = _found(
        api, criteria="((Email:equals:stone@example.test)or(No_of_Employees:less_than:10))"
    )
    assert sorted(either) == sorted([searchable["max"], searchable["stone"]])
    assert _found(api, criteria="(No_of_Employees:between:10,50)") == [searchable["mia"]]
    assert _found(api, criteria="(Last_Name:in:Stone,Nobody)") == [searchable["stone"]]
    shouted = _found(api, criteria="((First_Name:equals:Max)OR(First_Name:equals:Mia))")
    assert sorted(shouted) == sorted([searchable["mia"], searchable["max"]])


def test_search_returns_whole_records_in_zohos_shape(api: Api, searchable: dict[str, str]) -> None:
    response = api.get("/Leads/search", params={"email": "mia@example.test"})
    (record,) = response.json()["data"]
    assert_shape(record, {**RECORD_PROPERTIES, **LEAD_FIELDS})
    assert response.json()["info"]["count"] == 1


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "EXPECTED_PARAM_MISSING"),
        ({"criteria": "Last_Name:equals:Burns"}, "INVALID_QUERY"),
        ({"criteria": "(Nope:equals:x)"}, "INVALID_QUERY"),
        ({"criteria": "(Last_Name:greater_than:x)"}, "INVALID_QUERY"),
        ({"criteria": "(No_of_Employees:equals:many)"}, "INVALID_QUERY"),
        ({"criteria": "((Last_Name:equals:a)and(First_Name:equals:b)"}, "INVALID_QUERY"),
        ({"word": "x"}, "INVALID_DATA"),
    ],
)
def test_search_refuses_bad_requests_with_zohos_codes(
    api: Api, params: dict[str, str], code: str
) -> None:
    response = api.get("/Leads/search", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code and body["status"] == "error"
    assert isinstance(body["details"], dict) and isinstance(body["message"], str)


def test_search_leaves_converted_leads_out_and_needs_a_module(api: Api) -> None:
    (created,) = api.insert("Leads", {"Last_Name": "Gone", "Email": "gone@example.test"})
    api.post(f"/Leads/{created['details']['id']}/actions/convert", json={"data": [{}]})
    assert _found(api, email="gone@example.test") == []
    assert _found(api, email="gone@example.test", converted="true") == [created["details"]["id"]]
    assert api.get("/Deals/search", params={"word": "gone"}).json()["code"] == "INVALID_MODULE"


def test_modules_are_listed_with_zohos_keys(api: Api) -> None:
    response = api.get("/settings/modules")
    assert response.status_code == 200
    modules = {m["api_name"]: m for m in response.json()["modules"]}
    assert set(modules) == {"Leads", "Contacts"}
    for module in modules.values():
        assert_shape(
            module,
            {
                "id": str,
                "module_name": str,
                "singular_label": str,
                "plural_label": str,
                "api_supported": bool,
                "creatable": bool,
                "convertable": bool,
                "profiles": list,
                "arguments": list,
                "parent_module": dict,
                "visibility": int,
                "profile_count": int,
                "generated_type": str,
                "status": str,
                "modified_time": NULL,
                "web_link": NULL,
            },
        )
    assert modules["Leads"]["convertable"] is True and modules["Contacts"]["convertable"] is False
    assert modules["Leads"]["singular_label"] == "Lead"
