"""Field metadata shaped like Zoho's ``GET /settings/fields`` answer, and a host to match.

The Zoho elements copy the keys and values of reference §3.1 (lengths, ``operation_type``,
``unique``, ``json_type``), so ``ZohoField.from_metadata`` is tested on realistic input.
Fixtures are session-scoped because everything here is immutable, and hypothesis refuses
function-scoped fixtures.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flask_zoho_sync.sync import FieldMapping, HostField, Mapping, default_field_mappings

SYDNEY = ZoneInfo("Australia/Sydney")

WRITABLE = {"web_update": True, "api_create": True, "web_create": True, "api_update": True}
READ_ONLY = {"web_update": False, "api_create": False, "web_create": False, "api_update": False}


def zoho_meta(api_name: str, data_type: str, length: int | None = None, **extra: Any) -> dict:
    """One element of Zoho's ``fields`` array with the keys the sync reads."""
    json_types = {
        "multiselectpicklist": "jsonarray",
        "boolean": "boolean",
        "integer": "integer",
        "double": "double",
        "currency": "double",
        "percent": "double",
        "lookup": "jsonobject",
        "ownerlookup": "jsonobject",
        "subform": "jsonarray",
        "fileupload": "jsonarray",
    }
    meta: dict[str, Any] = {
        "api_name": api_name,
        "field_label": api_name.replace("_", " "),
        "display_label": api_name.replace("_", " "),
        "data_type": data_type,
        "json_type": json_types.get(data_type, "string"),
        "system_mandatory": False,
        "custom_field": False,
        "read_only": False,
        "field_read_only": False,
        "length": length,
        "visible": True,
        "unique": {},
        "operation_type": dict(WRITABLE),
        "pick_list_values": [],
        "lookup": {},
    }
    meta.update(extra)
    return meta


def picklist(*values: str) -> list[dict[str, Any]]:
    return [
        {"display_value": value, "actual_value": value}
        for value in ("-None-", *values)  # Zoho lists its placeholder first
    ]


COMMON = [
    zoho_meta("First_Name", "text", 40),
    zoho_meta("Last_Name", "text", 80, system_mandatory=True),
    zoho_meta("Email", "email", 100, unique={"case_sensitive": False}),
    zoho_meta("Phone", "phone", 30),
    zoho_meta("Mobile", "phone", 30),
    zoho_meta("Description", "textarea", 32000),
    zoho_meta("Email_Opt_Out", "boolean"),
    zoho_meta("Modified_Time", "datetime", operation_type=dict(READ_ONLY)),
    zoho_meta("Full_Name", "text", 120, operation_type=dict(READ_ONLY)),
    zoho_meta("Owner", "ownerlookup", field_read_only=True),
    zoho_meta("Tag", "text", json_type="jsonarray"),
    zoho_meta("Lead_Source", "picklist", 120, pick_list_values=picklist("Web", "Event")),
    # Custom fields an admin would add for the sync.
    zoho_meta("Host_Contact_Id", "text", 64, custom_field=True, unique={"case_sensitive": True}),
    zoho_meta("Host_Contact_URL", "website", 255, custom_field=True),
    zoho_meta("Newsletter", "boolean", custom_field=True),
    zoho_meta("Members_Only", "boolean", custom_field=True),
    zoho_meta(
        "Interests",
        "multiselectpicklist",
        custom_field=True,
        pick_list_values=picklist("Golf", "Tennis", "Chess"),
    ),
    zoho_meta(
        "Tier", "picklist", 120, custom_field=True, pick_list_values=picklist("Gold", "Silver")
    ),
    zoho_meta("Member_Since", "date", custom_field=True),
    zoho_meta("Last_Visit", "datetime", custom_field=True),
    zoho_meta("Score", "double", 16, custom_field=True, decimal_place=2),
    zoho_meta("Visits", "integer", 9, custom_field=True),
    zoho_meta("Big_Number", "bigint", 18, custom_field=True),
    zoho_meta("Lifetime_Value", "formula", custom_field=True, json_type="double"),
    zoho_meta("Serial", "autonumber", custom_field=True, operation_type=dict(READ_ONLY)),
    zoho_meta("Attachments", "fileupload", custom_field=True),
]

LEADS_METADATA = [
    *COMMON,
    zoho_meta("Company", "text", 200),
    zoho_meta("Designation", "text", 100),
    zoho_meta("Street", "text", 250),
    zoho_meta("City", "text", 100),
    zoho_meta("State", "text", 100),
    zoho_meta("Zip_Code", "text", 30),
    zoho_meta("Country", "text", 100),
    zoho_meta("Website", "website", 255),
    zoho_meta("Annual_Revenue", "currency", 16, decimal_place=2),
]

CONTACTS_METADATA = [
    *COMMON,
    zoho_meta(
        "Account_Name",
        "lookup",
        lookup={"module": {"api_name": "Accounts", "id": "111"}, "display_label": "Account"},
    ),
    zoho_meta("Title", "text", 100),
    zoho_meta("Mailing_Street", "text", 250),
    zoho_meta("Mailing_City", "text", 100),
    zoho_meta("Mailing_State", "text", 100),
    zoho_meta("Mailing_Zip", "text", 30),
    zoho_meta("Mailing_Country", "text", 100),
]

HOST_FIELDS = [
    HostField("first_name", "text", max_length=40),
    HostField("last_name", "text", max_length=80),
    HostField("email", "email", max_length=120),
    HostField("phone", "phone", max_length=30),
    HostField("mobile", "phone", max_length=30),
    HostField("company", "text", max_length=120),
    HostField("job_title", "text", max_length=100),
    HostField("street", "text"),
    HostField("city", "text", max_length=100),
    HostField("state", "text", max_length=100),
    HostField("postcode", "text", max_length=20),
    HostField("country", "text", max_length=100),
    HostField("description", "text"),
    HostField("website", "url", max_length=255),
    HostField("tier", "choice", choices=("Gold", "Silver")),
    HostField("interests", "multichoice", choices=("Golf", "Tennis", "Chess")),
    HostField("member_since", "date"),
    HostField("last_visit", "datetime"),
    HostField("score", "decimal"),
    HostField("visits", "integer"),
]

CUSTOM_FIELD_MAPPINGS = [
    FieldMapping("tier", "Tier"),
    FieldMapping("interests", "Interests"),
    FieldMapping("member_since", "Member_Since"),
    FieldMapping("last_visit", "Last_Visit"),
    FieldMapping("score", "Score"),
    FieldMapping("visits", "Visits"),
]


def build_mapping(module: str, **overrides: Any) -> Mapping:
    """The standard mapping for ``module`` plus the custom fields, Sydney time."""
    metadata = LEADS_METADATA if module == "Leads" else CONTACTS_METADATA
    settings: dict[str, Any] = {
        "module": module,
        "zone": SYDNEY,
        "fields": [*default_field_mappings(module, HOST_FIELDS), *CUSTOM_FIELD_MAPPINGS],
        "host_fields": HOST_FIELDS,
        "zoho_fields": metadata,
    }
    settings.update(overrides)
    return Mapping(**settings)


@pytest.fixture(scope="session")
def leads_mapping() -> Mapping:
    return build_mapping("Leads")


@pytest.fixture(scope="session")
def contacts_mapping() -> Mapping:
    return build_mapping("Contacts")
